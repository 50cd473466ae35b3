"""The embedded default dataset is reproducible from code and passes its own checks."""

from __future__ import annotations

import json
from pathlib import Path

from detft.cli import main
from detft.operations.synthetic import generate

EMBEDDED = Path(__file__).resolve().parents[1] / "datasets" / "shapes"


def test_embedded_dataset_is_what_the_generator_makes(tmp_path: Path):
    generate(tmp_path / "shapes")
    for split in ("train", "val"):
        ours = json.loads((tmp_path / "shapes" / "annotations" / f"instances_{split}.json").read_text())
        committed = json.loads((EMBEDDED / "annotations" / f"instances_{split}.json").read_text())
        assert ours == committed


def test_readme_main_job_on_embedded_data(tmp_path: Path, capsys):
    out = tmp_path / "shapes-yolo"
    assert main(["convert", str(EMBEDDED), str(out), "--to", "yolo", "--strict"]) == 0
    assert "no annotation or image was dropped or changed" in capsys.readouterr().out
    assert (out / "data.yaml").read_text().count("segment") == 1
    assert main(["inspect", str(out), "--grid", str(tmp_path / "p.png"), "-n", "4"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
