"""What a user gets from ``pip install detft``: a wheel built from this tree, installed into a fresh
virtual environment (no network: built without isolation, installed from the file), runs the default
training data and imports every module on its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def listed_packages() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_subpackage_is_listed_for_the_wheel():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "detft").rglob("*.py")}
    assert found | {"detft.datasets"} == listed_packages()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; the dependencies come from this environment's site-packages
    through a path file (so nothing is downloaded, and the editable checkout is not on the path)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: building in the checkout leaves build/lib, whose stale files a later wheel would carry
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("detft", "datasets"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("detft-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run_in(venv: Path, code: str, cwd: Path) -> str:
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_the_wheel_carries_the_default_data_and_every_module_imports_alone(installed: Path, tmp_path: Path):
    code = """
import importlib, pkgutil, subprocess, sys
import detft
from detft.config import EMBEDDED_DATA
from detft.operations.convert import load
from detft.annotations.report import Report
print(detft.__file__)
print(EMBEDDED_DATA)
ds = load(EMBEDDED_DATA, None, Report())
print(len(ds.images), ds.num_annotations)
names = [m.name for m in pkgutil.walk_packages(detft.__path__, "detft.") if not m.name.endswith("__main__")]
for name in names:  # each in a fresh interpreter: an import that only works after another module fails here
    subprocess.run([sys.executable, "-c", f"import {name}"], check=True)
print(len(names))
from detft.models.yolov5_seg import CFG
print(CFG.with_name("yolov5-seg.yaml").is_file())  # package data: the network the COCO mask start maps into
"""
    out = run_in(installed, code, tmp_path).split("\n")
    assert str(installed) in out[0] and "/work/" not in out[0].replace(str(installed), "")
    assert str(installed) in out[1]
    n_images, n_annotations = map(int, out[2].split())
    assert n_images >= 20 and n_annotations > n_images
    assert int(out[3]) >= 50  # every module of the installed package imported on its own
    assert out[4] == "True"


@pytest.mark.slow
def test_detft_train_runs_on_the_default_data_from_the_wheel(installed: Path, tmp_path: Path):
    code = ("from detft.cli import main; raise SystemExit(main(['train', '--arch', 'yolo', '--model', 'yolov8n.yaml',"
            " '--weights', 'none', '--epochs', '1', '--imgsz', '64', '--batch', '8', '--workers', '0', '--device', 'cpu',"
            " '--project', 'runs']))")
    out = run_in(installed, code, tmp_path)
    assert "run folder:" in out and (tmp_path / "runs" / "train" / "weights" / "best.pt").is_file()
