"""The documentation site: it builds with no broken link or reference (mkdocs --strict, where mkdocs is installed),
and every code block marked runnable runs as written: here, or in the test file its marker names."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, doc_blocks

BLOCKS = doc_blocks()


def test_runnable_blocks_are_marked_and_each_named_runner_runs_its_block():
    assert {b.page for b in BLOCKS} >= {"api.md", "formats.md"}
    for block in BLOCKS:
        # this file runs Python; a test file that reads a block (a cameras YAML) may take another language
        assert block.lang == "python" or block.runner is not None, \
            f"docs/{block.page}:{block.line}: only Python blocks are run here: name the test file that reads it"
        if block.runner is not None:
            runner = ROOT / block.runner
            assert runner.is_file(), f"docs/{block.page}:{block.line}: {block.runner} does not exist"
            assert f'doc_block("{block.page}", "{block.runner}")' in runner.read_text(encoding="utf-8"), \
                f"docs/{block.page}:{block.line}: {block.runner} does not run this block"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.runner is None], ids=lambda b: f"{b.page}:{b.line}")
def test_a_runnable_block_runs_as_written(block, tmp_path: Path):
    done = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"docs/{block.page}:{block.line} failed:\n{done.stderr[-3000:]}"


def test_the_test_command_is_the_same_in_the_readme_the_site_and_ci():
    def commands(path: Path) -> list[str]:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if "-m pytest" in line]

    assert commands(ROOT / "README.md") == commands(ROOT / "docs" / "index.md") == commands(ROOT / ".ci" / "run") != []


def test_the_readme_stays_short_and_links_into_the_site():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    linked = {p.split(")")[0] for p in readme.split("(docs/")[1:]}
    assert linked and all((ROOT / "docs" / p.split("#")[0]).is_file() for p in linked), linked


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (the docs extra)")
def test_the_site_builds_strictly(tmp_path: Path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8").count("detft.api.train") > 0
