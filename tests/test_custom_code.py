"""Custom code and what training wrote, contained (#50): a user's adapter (``--from my_adapter.py`` or an
entry-point format) ends in a named error whatever it does, ``--pseudo-labels`` takes only what ``detft pseudo``
wrote and counts its missing images, and ``detft eval --weights RUN`` keeps the sections training wrote."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import config, make_data, make_image

import detft
from detft.cli import main
from detft.errors import DetftError

RECORDS = "[{'image': 'a.jpg', 'objects': [{'class': 'crack', 'box': [1, 1, 20, 20]}]}, {'image': 'b.jpg'}]"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    make_image(tmp_path / "data" / "a.jpg", 64, 48)
    make_image(tmp_path / "data" / "b.jpg", 64, 48, seed=1)
    return tmp_path / "data"


def convert_with(code: str, data: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``detft convert`` of ``data`` through an adapter file holding ``code``: the exit code and stderr, once
    checked that nothing was written."""
    adapter = data.parent / "my_adapter.py"
    adapter.write_text(code)
    out = data.parent / "out"
    rc = main(["convert", str(data), str(out), "--from", str(adapter)])
    assert rc == 0 or not out.exists()
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("code,rc,message", [
    ("import sys\ndef read(root):\n    sys.exit(0)\n",
     1, r"error: adapter .*my_adapter.py called sys.exit\(0\) on .*data after 0 record\(s\)"),
    ("def read(root):\n    yield {'image': 'a.jpg'}\n    raise ValueError('row 7 is bad')\n",
     1, r"error: adapter .*my_adapter.py failed on .*data after 1 record\(s\): ValueError: row 7 is bad"),
    ("def read(root):\n    yield {'image': 'a.jpg'}\n    raise KeyboardInterrupt\n",
     130, r"detft: interrupted: adapter .*my_adapter.py stopped on .*data after 1 record\(s\)"),
    ("import sys\nsys.exit(3)\n", 1, r"adapter .*my_adapter.py called sys.exit\(3\) to load"),
    ("def read(root):\n    return [{'image': 'a.jpg'}, {'image': 'b.jpg', 'objects': 5}]\n",
     1, r"my_adapter.py \(record 1\): 'objects' is a list of objects, not 5"),
    ("def read(root):\n    return [{'image': 'a.jpg', 'split': 5}]\n",
     1, r"my_adapter.py \(record 0\): 'split' is a split name .*, not 5"),
    ("def read(root):\n    return [{'image': 'a.jpg'}, ['b.jpg']]\n",
     1, r"my_adapter.py \(record 1\): a record is a dict with 'image' .*not list \['b.jpg'\]"),
    ("def read(root):\n    return [{'image': 'x.jpg', 'objects': [{'class': 'a', 'box': [1, 1, 5, 5]}]},\n"
     "            {'image': 'y.jpg'}]\n",
     1, r"adapter .*my_adapter.py: none of its 2 record\(s\) names an image found under .*data \(record 0: 'x.jpg'\)"),
    ("def read(root):\n    return [{'image': 'x.jpg'}]\n", 1, r"none of its 1 record\(s\) names an image"),
    ("def read(root):\n    return iter([])\n", 1, r"adapter .*my_adapter.py gave no image records for .*data"),
    ("def read(root):\n    return [{'image': 'a.jpg', 'objects': [{'class': 'a', 'box': [1, 1]}]}]\n",
     1, r"holds 1 annotation\(s\) and none could be kept; most were lost to bad_object"),
], ids=["sys.exit(0)", "ValueError", "Ctrl-C", "sys.exit on load", "objects: 5", "split: 5", "not a dict",
        "no image found", "no image, no objects", "no records", "every object lost"])
def test_whatever_an_adapter_does_ends_in_a_message_naming_it(data: Path, capsys, code: str, rc: int, message: str):
    got, err = convert_with(code, data, capsys)
    assert got == rc, err
    assert re.search(message, err) and "Traceback" not in err, err
    assert not [t for t in threading.enumerate() if t.name.startswith("progress:")]  # the counter stopped too


def test_an_adapter_that_works_still_converts(data: Path, capsys):
    rc, err = convert_with(f"def read(root):\n    return {RECORDS}\n", data, capsys)
    assert rc == 0, err
    assert json.loads((data.parent / "out" / "annotations" / "instances_train.json").read_text())["annotations"]


def test_an_entry_point_format_is_held_to_the_same_rules(data: Path, tmp_path: Path, monkeypatch, capsys):
    from importlib.metadata import EntryPoint

    import detft.formats.adapters as adapters

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "quitting_reader.py").write_text("import sys\ndef read(root):\n    sys.exit(0)\n")
    (tmp_path / "pkg" / "lost_reader.py").write_text("def read(root):\n    return [{'image': 'gone.jpg'}]\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setattr(adapters, "entry_points", lambda group: [
        EntryPoint("quitting", "quitting_reader:read", group), EntryPoint("lost", "lost_reader:read", group),
        EntryPoint("broken", "no_such_module:read", group)] if group == adapters.GROUP else [])
    for fmt, message in (("quitting", "adapter quitting called sys.exit(0)"),
                         ("lost", "adapter lost: none of its 1 record(s) names an image"),
                         ("broken", "adapter broken failed to load (no_such_module:read): ModuleNotFoundError")):
        assert main(["convert", str(data), str(tmp_path / fmt), "--from", fmt]) == 1
        assert message in capsys.readouterr().err and not (tmp_path / fmt).exists()


def test_a_slow_adapter_shows_a_progress_line_in_a_log(data: Path, monkeypatch, capsys):
    from detft.util import progress

    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.05)
    code = (f"import time\ndef read(root):\n    for rec in {RECORDS}:\n        time.sleep(0.3)\n        yield rec\n")
    rc, err = convert_with(code, data, capsys)
    assert rc == 0, err
    counts = [ln.rsplit(": ", 1)[1].split()[0] for ln in err.splitlines()
              if ln.startswith("adapter ") and "my_adapter.py: " in ln and "records so far" in ln]
    assert {"0", "1"} <= set(counts), err  # said while the adapter worked, and counting its records


def test_a_quick_adapter_says_nothing_in_a_log(data: Path, capsys):
    rc, err = convert_with(f"def read(root):\n    return {RECORDS}\n", data, capsys)
    assert rc == 0 and "records so far" not in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[detft.Run, Path]:
    """A tiny R-CNN trained for two epochs (so its overfitting watch has something to say), and its data."""
    root = tmp_path_factory.mktemp("custom")
    data = make_data(root / "data", n=4)
    return detft.train(config(data, root, epochs=2, name="teacher")), data


def train_args(data: Path, tmp: Path, name: str, *extra: str) -> list[str]:
    """``detft train`` of the tiny R-CNN for one epoch, as tests/helpers.config sets it."""
    return ["train", "--data", str(data), "--arch", "fasterrcnn", "--model", "tiny_fasterrcnn", "--weights", "none",
            "--epochs", "1", "--batch", "4", "--augment", "none", "--workers", "0", "--imgsz", "96",
            "--project", str(tmp / "runs"), "--name", name, "--device", "cpu", *extra]


def test_pseudo_labels_must_be_a_detft_pseudo_output(trained, tmp_path: Path, capsys):
    _, data = trained
    assert main(train_args(data, tmp_path, "plain", "--pseudo-labels", str(data))) == 1  # a labelled dataset
    err = capsys.readouterr().err
    assert "not a pseudo-label folder (no pseudo.json" in err and "detft pseudo --weights" in err
    fake = tmp_path / "fake"
    shutil.copytree(data, fake)
    (fake / "pseudo.json").write_text(json.dumps({"teacher": "me"}))
    assert main(train_args(data, tmp_path, "fake", "--pseudo-labels", str(fake))) == 1
    assert "not the summary detft pseudo writes" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


def test_missing_pseudo_label_images_are_counted_and_all_missing_is_an_error(trained, tmp_path: Path, capsys):
    from detft.operations.synthetic import generate

    teacher, data = trained
    generate(tmp_path / "more", n_train=3, n_val=0, size=96, seed=9)
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(tmp_path / "more" / "images" / "train", unlabelled)
    pseudo = tmp_path / "pseudo"
    assert main(["pseudo", "--weights", str(teacher.folder), "--source", str(unlabelled), "--out", str(pseudo),
                 "--conf", "0.0", "--device", "cpu"]) == 0
    images = sorted(unlabelled.iterdir())
    for p in images[:2]:
        p.unlink()
    assert main(train_args(data, tmp_path, "student", "--pseudo-labels", str(pseudo))) == 0
    out = capsys.readouterr().out
    assert f"pseudo-labels {pseudo}: 3 images of {unlabelled}" in out and f"by teacher {teacher.weights}" in out
    assert (f"training on 4 labelled and 1 pseudo-labelled images (3 listed in {pseudo}, 2 missing, e.g. "
            f"{images[0].name})") in out
    images[2].unlink()
    with pytest.raises(DetftError, match=r"all 3 of its images are missing .*moved or deleted since detft pseudo"):
        detft.train(config(data, tmp_path, epochs=1, name="none_left", pseudo_labels=str(pseudo)))


def test_eval_keeps_the_sections_training_wrote(trained, tmp_path: Path, capsys):
    """Two re-evaluations with different flags replace the scores in RUN/eval.json and keep training's overfitting
    watch and (here written as the YOLO family writes it) ultralytics' numbers; a failed one changes nothing, and one
    over a damaged file writes a whole one."""
    run = tmp_path / "run"
    shutil.copytree(trained[0].folder, run)
    doc = json.loads((run / "eval.json").read_text())
    assert isinstance(doc["overfitting"], dict)
    doc["ultralytics"] = {"bbox_AP": 0.5, "bbox_AP50": 0.7, "max_det": 300, "note": "ultralytics' own evaluator"}
    (run / "eval.json").write_text(json.dumps(doc))
    for flags, max_dets in (([], 100), (["--no-slice", "--max-dets", "10", "--conf", "0.05"], 10)):
        assert main(["eval", "--weights", str(run), "--device", "cpu", *flags]) == 0
        again = json.loads((run / "eval.json").read_text())
        assert [again[k] for k in ("overfitting", "ultralytics")] == [doc["overfitting"], doc["ultralytics"]]
        assert again["settings"]["max_dets"] == max_dets and again["thresholds"] and again["metrics"]["bbox"]
    written = (run / "eval.json").read_bytes()
    assert main(["eval", "--weights", str(run), "--device", "cpu", "--split", "nosuch"]) == 1
    assert (run / "eval.json").read_bytes() == written
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temp file left behind
    (run / "eval.json").write_text('{"metrics": ')  # damaged: nothing in it to keep, and re-evaluating repairs it
    assert main(["eval", "--weights", str(run), "--device", "cpu"]) == 0
    assert json.loads((run / "eval.json").read_text())["metrics"]["bbox"]
