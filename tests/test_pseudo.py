"""Pseudo-labels (#26): `detft train --pseudo UNLABELLED --weights TEACHER_RUN` writes the teacher's detections into
the run, trains on them beside the labelled data, never validates on them, and leaves out an unlabelled image
that is a labelled one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
import yaml
from helpers import config, make_data

import detft
from detft.errors import DetftError


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[detft.Run, Path, Path]:
    from detft.operations.synthetic import generate

    root = tmp_path_factory.mktemp("pseudo")
    data = make_data(root / "data", n=6)
    run = detft.train(config(data, root, epochs=1, name="teacher"))
    generate(root / "more", n_train=3, n_val=0, size=96, seed=9)  # new images: their labels are not used
    unlabelled = root / "unlabelled"
    shutil.copytree(root / "more" / "images" / "train", unlabelled)
    for p in sorted((data / "images" / "train").iterdir())[:2]:  # and two the labelled data already has
        shutil.copy(p, unlabelled / f"copy_{p.name}")
    return run, data, unlabelled


def test_a_student_trains_on_the_teacher_s_detections_and_is_validated_on_labels_only(teacher, tmp_path: Path, capsys):
    run_t, data, unlabelled = teacher
    run = detft.train(config(data, tmp_path, epochs=1, name="student", pseudo=str(unlabelled),
                             weights=str(run_t.folder), pseudo_conf="0.0"))
    printed = capsys.readouterr().out
    pseudo = run.folder / "pseudo"
    summary = json.loads((pseudo / "pseudo.json").read_text())
    assert summary["images"] == 5 and summary["teacher"] == str(run_t.weights) and sum(summary["detections"].values())
    assert "duplicate_image" in printed and "training on 6 labelled and 3 pseudo-labelled images" in printed
    saved = yaml.safe_load((run.folder / "run.yaml").read_text())["config"]
    assert saved["pseudo_labels"] == str(pseudo) and saved["weights"] == str(run_t.weights)  # started from the teacher
    assert json.loads((run.folder / "eval.json").read_text())["n_images"] == 6  # the labelled val split alone

    again = detft.train(config(data, tmp_path, epochs=1, name="again", pseudo_labels=str(pseudo)))  # no re-predicting
    assert not (again.folder / "pseudo").exists() and "pseudo-labelling" not in capsys.readouterr().out


def test_pseudo_labels_at_auto_thresholds_need_an_evaluated_teacher_and_bad_settings_are_named(teacher, tmp_path: Path):
    run_t, data, unlabelled = teacher
    with pytest.raises(DetftError, match="need a teacher"):
        detft.train(config(data, tmp_path, epochs=1, name="x", pseudo=str(unlabelled)))
    with pytest.raises(DetftError, match="--pseudo-conf 'high'"):
        detft.train(config(data, tmp_path, epochs=1, name="x", pseudo=str(unlabelled), teacher=str(run_t.folder),
                           pseudo_conf="high"))
    assert not (tmp_path / "runs" / "x").exists()  # refused before a run folder was made
    with pytest.raises(DetftError, match="not a pseudo-label folder"):
        detft.train(config(data, tmp_path, epochs=1, name="y", pseudo_labels=str(unlabelled)))
    run = detft.train(config(data, tmp_path, epochs=1, name="auto", pseudo=str(unlabelled), teacher=str(run_t.folder)))
    summary = json.loads((run.folder / "pseudo" / "pseudo.json").read_text())
    assert summary["conf"] == "auto" and summary["thresholds"] == run_t.thresholds()
    assert yaml.safe_load((run.folder / "run.yaml").read_text())["config"]["weights"] == "none"  # --teacher: own start


def test_pseudo_labels_are_a_data_step_that_training_takes_like_any_data(teacher, tmp_path: Path, capsys):
    """`detft pseudo` writes the teacher's labels as a dataset; `train --pseudo-labels` takes them, and run.yaml says
    which images and teacher they came from, as it does for the --pseudo shortcut."""
    from detft.annotations.report import Report
    from detft.cli import main
    from detft.operations.convert import load

    run_t, data, unlabelled = teacher
    out = tmp_path / "pseudo_out"
    assert main(["pseudo", "--weights", str(run_t.folder), "--source", str(unlabelled), "--out", str(out),
                 "--conf", "0.0", "--data", str(data), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"--pseudo-labels {out}" in printed
    summary = json.loads((out / "pseudo.json").read_text())
    assert summary["conf"] == 0.0 and summary["images"] == 5 and summary["teacher"] == str(run_t.weights)
    labels = load(out, None, Report())  # a dataset like any other: read back with no flag
    assert len(labels.images) == 5 and sum(len(im.annotations) for im in labels.images) == sum(summary["detections"].values())

    run = detft.train(config(data, tmp_path, epochs=1, name="two-step", pseudo_labels=str(out)))
    assert "training on 6 labelled and 3 pseudo-labelled images" in capsys.readouterr().out
    saved = yaml.safe_load((run.folder / "run.yaml").read_text())["config"]
    assert saved["pseudo_labels"] == str(out) and saved["pseudo"] == str(unlabelled)
    assert saved["teacher"] == str(run_t.weights) and not (run.folder / "pseudo").exists()

    other = tmp_path / "other"
    make_data(other, n=2)
    for labels in (other / "annotations").glob("*.json"):
        labels.write_text(labels.read_text().replace('"circle"', '"wheel"'))
    refused = tmp_path / "refused"
    assert main(["pseudo", "--weights", str(run_t.folder), "--source", str(unlabelled), "--out", str(refused),
                 "--data", str(other), "--device", "cpu"]) == 1
    assert "its classes circle are not classes of" in capsys.readouterr().err and not refused.exists()
