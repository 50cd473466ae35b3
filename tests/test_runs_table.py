"""`detft runs`: the table lists the runs a test trains (both families, nested folders) with the numbers their
files hold, sorts them, tells finished from running, stopped, failed and damaged runs, and `detft runs compare`
puts the config keys that differ and every score side by side."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import config, make_data

import detft
from detft.cli import main
from detft.config import TrainConfig
from detft.engine import checkpoint
from detft.engine.metrics import write_csv
from detft.models.labels import LabelMap
from detft.runs import Run, RunInfo

HOUR = 3600.0


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def eval_doc(run: Path | Run) -> dict:
    return json.loads((Path(run) / "eval.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny R-CNN run (2 epochs) in runs/rcnn and, where ultralytics is installed, a tiny YOLO run (1 epoch) one
    folder deeper, in runs/exp/yolo, beside the data cache ultralytics' training leaves in runs/exp/.cache."""
    root = tmp_path_factory.mktemp("runs_table")
    data = make_data(root / "data", n=4)
    detft.train(config(data, root, epochs=2, name="rcnn"))
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        return root / "runs"
    from helpers import yolo_config

    detft.train(yolo_config(root, "yolov8n.yaml", epochs=1, augment="none", data=str(data),
                            project=str(root / "runs" / "exp"), name="yolo"))
    return root / "runs"


def test_the_table_holds_what_each_trained_run_recorded(trained: Path, capsys):
    rows = {r.name: r for r in detft.list_runs(trained)}
    names = {"rcnn", "exp/yolo"} if (trained / "exp").is_dir() else {"rcnn"}
    assert set(rows) == names  # found at any depth, and nothing from the hidden data cache
    rcnn = rows["rcnn"]
    epochs = csv_rows(trained / "rcnn" / "metrics.csv")
    aps = [float(r["bbox_AP"]) for r in epochs]
    assert (rcnn.family, rcnn.task, rcnn.model, rcnn.start) == ("rcnn", "detect", "tiny_fasterrcnn", "none")
    assert rcnn.data == str(trained.parent / "data") and (rcnn.epochs_done, rcnn.epochs_planned) == (2, 2)
    assert rcnn.time_s == pytest.approx(sum(float(r["time_s"]) for r in epochs))
    assert rcnn.best_epoch == aps.index(max(aps)) + 1
    assert rcnn.bbox_AP == eval_doc(trained / "rcnn")["metrics"]["bbox"]["stats"]["AP"] and rcnn.segm_AP is None
    assert rcnn.status == "finished"
    if "exp/yolo" in rows:
        yolo = rows["exp/yolo"]
        ultra = csv_rows(trained / "exp" / "yolo" / "metrics.csv")
        assert (yolo.family, yolo.model, yolo.epochs_done, yolo.status) == ("yolo", "yolov8n.yaml", 1, "finished")
        assert yolo.time_s == pytest.approx(float(ultra[-1]["time"]))  # ultralytics' clock, validation included
        assert yolo.bbox_AP == eval_doc(trained / "exp" / "yolo")["metrics"]["bbox"]["stats"]["AP"]

    assert main(["runs", str(trained)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "start", "data", "epochs", "time", "bbox", "AP", "segm", "AP",
                                "best", "status"]
    printed = {line.split()[0]: line for line in lines[1:]}
    assert set(printed) == names
    assert f"{rcnn.bbox_AP:.4f}" in printed["rcnn"] and " 2/2 " in printed["rcnn"]
    assert printed["rcnn"].endswith("finished") and "tiny_fasterrcnn (none)" in printed["rcnn"]
    if "exp/yolo" in printed:
        assert "yolov8n.yaml from random init" in printed["exp/yolo"]

    assert main(["runs", str(trained), "--json", "--sort", "name"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == sorted(names)
    assert listed[-1 if len(names) == 1 else 1]["bbox_AP"] == rcnn.bbox_AP


def test_compare_puts_differences_and_scores_side_by_side(trained: Path, capsys):
    if not (trained / "exp" / "yolo").is_dir():
        pytest.skip("the YOLO run needs ultralytics")
    c = detft.compare_runs("rcnn", trained / "exp" / "yolo", folder=trained)
    assert c.config["family"] == ["rcnn", "yolo"] and c.config["config.epochs"] == [2, 1]
    assert "config.seed" not in c.config  # the same in both: only differences unless all_keys
    assert detft.compare_runs("rcnn", trained / "exp" / "yolo", folder=trained, all_keys=True).config["config.seed"] \
        == [0, 0]
    docs = [eval_doc(trained / "rcnn"), eval_doc(trained / "exp" / "yolo")]
    for stat in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        assert c.metrics[f"bbox {stat}"] == [d["metrics"]["bbox"]["stats"][stat] for d in docs]
    assert "segm AP" not in c.metrics and c.metrics["epochs"] == [2, 1]
    for name in ("circle", "square", "triangle"):
        assert c.per_class["bbox"][name] == [next(r["AP"] for r in d["metrics"]["bbox"]["per_class"] if r["name"] == name)
                                            for d in docs]
    assert main(["runs", "compare", "rcnn", "exp/yolo", "--dir", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "config (the keys that differ):" in out and "per-class bbox AP:" in out
    family = next(line for line in out.splitlines() if line.startswith("family"))
    assert family.split() == ["family", "rcnn", "yolo"]
    ap = next(line for line in out.splitlines() if line.startswith("bbox AP "))
    assert ap.split()[2:] == [f"{d['metrics']['bbox']['stats']['AP']:.4f}" for d in docs]


# ---------------------------------------------------------------- synthetic runs, written through RunInfo
def fake_run(folder: Path, *, task: str = "detect", epochs: int = 3, aps: list[float] | None = None,
             scores: dict[str, dict[str, float]] | None = None, last: bool = True, age_s: float = 0.0) -> Run:
    """A run folder as training leaves it: run.yaml, one metrics.csv row per AP in ``aps``, last.pt when ``last``,
    and eval.json when ``scores`` (IoU type -> class -> AP) is given; every file ``age_s`` seconds old."""
    run = Run(folder)
    run.save_info(RunInfo(family="rcnn", model="m", task=task, labels=LabelMap((1, 2), ("cat", "dog")),
                          config=TrainConfig(data="my_data", epochs=epochs, name=folder.name), start="none"))
    key = "segm_AP" if task == "segment" else "bbox_AP"
    write_csv(run.metrics_csv, [{"epoch": k + 1, "loss": 1.0, "time_s": 10.0, key: ap} for k, ap in enumerate(aps or [])])
    if last:
        run.weights_dir.mkdir()
        run.checkpoint_path("last").write_bytes(b"")
    if scores is not None:
        metrics = {t: {"stats": {"AP": sum(per.values()) / len(per), "AP50": 0.9},
                       "per_class": [{"name": n, "gt": 1, "AP": ap, "AP50": 0.9, "AR": 0.5} for n, ap in per.items()]}
                   for t, per in scores.items()}
        (folder / "eval.json").write_text(json.dumps({"metrics": metrics}))
    stamp = time.time() - age_s
    for p in [folder, *folder.rglob("*")]:
        os.utime(p, (stamp, stamp))
    return run


def test_status_of_finished_running_stopped_failed_and_damaged_runs(tmp_path: Path):
    fake_run(tmp_path / "done", aps=[0.1, 0.3, 0.2], scores={"bbox": {"cat": 0.4, "dog": 0.2}}, age_s=9 * HOUR)
    fake_run(tmp_path / "going", aps=[0.1], age_s=60)
    fake_run(tmp_path / "stopped", aps=[0.1, 0.2], age_s=2 * HOUR)
    fake_run(tmp_path / "failed", last=False, age_s=2 * HOUR)
    fake_run(tmp_path / "bad_yaml", aps=[0.5], scores={"bbox": {"cat": 0.5}})
    (tmp_path / "bad_yaml" / "run.yaml").write_text("family: rcnn\n")
    fake_run(tmp_path / "bad_csv", aps=[0.5])
    (tmp_path / "bad_csv" / "metrics.csv").write_text("epoch,loss\n1,lots\n")
    fake_run(tmp_path / "bad_eval", aps=[0.5])
    (tmp_path / "bad_eval" / "eval.json").write_text("{not json")
    rows = {r.name: r for r in detft.list_runs(tmp_path)}
    assert {n: r.status for n, r in rows.items() if not r.status.startswith("damaged")} == \
        {"done": "finished", "going": "running", "stopped": "stopped", "failed": "failed"}
    done = rows["done"]
    assert (done.epochs_done, done.epochs_planned, done.time_s, done.best_epoch) == (3, 3, 30.0, 2)
    assert done.bbox_AP == pytest.approx(0.3) and done.data == "my_data"
    assert rows["failed"].epochs_done == 0 and rows["failed"].best_epoch is None
    assert rows["bad_yaml"].status.startswith("damaged: ") and "run.yaml" in rows["bad_yaml"].status
    assert rows["bad_yaml"].bbox_AP == pytest.approx(0.5)  # what could be read is still shown
    assert "metrics.csv (line 2)" in rows["bad_csv"].status and rows["bad_csv"].family == "rcnn"
    assert "eval.json" in rows["bad_eval"].status and rows["bad_eval"].epochs_done == 1


def test_sorting_newest_first_by_default_numbers_from_the_highest_blanks_last(tmp_path: Path, capsys):
    fake_run(tmp_path / "old", aps=[0.1], scores={"bbox": {"cat": 0.2}}, age_s=3 * HOUR)
    fake_run(tmp_path / "mid", aps=[0.1], scores={"bbox": {"cat": 0.6}}, age_s=2 * HOUR)
    fake_run(tmp_path / "new", aps=[0.1], age_s=HOUR)
    assert [r.name for r in detft.list_runs(tmp_path)] == ["new", "mid", "old"]
    assert [r.name for r in detft.list_runs(tmp_path, sort="bbox")] == ["mid", "old", "new"]
    assert main(["runs", str(tmp_path), "--sort", "bbox"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["mid", "old", "new"]
    with pytest.raises(SystemExit):
        main(["runs", str(tmp_path), "--sort", "colour"])
    assert "invalid choice: 'colour'" in capsys.readouterr().err


def test_a_segment_run_and_classes_one_run_lacks(tmp_path: Path, capsys):
    fake_run(tmp_path / "det", aps=[0.2], scores={"bbox": {"cat": 0.5, "dog": 0.3}}, epochs=1)
    fake_run(tmp_path / "seg", task="segment", aps=[0.1, 0.4], epochs=2,
             scores={"bbox": {"cat": 0.6, "bird": 0.2}, "segm": {"cat": 0.5, "bird": 0.1}})
    rows = {r.name: r for r in detft.list_runs(tmp_path)}
    assert rows["seg"].segm_AP == pytest.approx(0.3) and rows["seg"].best_epoch == 2 and rows["det"].segm_AP is None
    c = detft.compare_runs(tmp_path / "det", tmp_path / "seg")
    assert c.per_class["bbox"] == {"cat": [0.5, 0.6], "dog": [0.3, None], "bird": [None, 0.2]}
    assert c.per_class["segm"] == {"cat": [None, 0.5], "bird": [None, 0.1]}
    assert c.metrics["segm AP"] == [None, pytest.approx(0.3)] and c.metrics["best epoch"] == [1, 2]
    assert set(c.config) == {"task", "config.epochs", "config.name"}
    assert main(["runs", "compare", str(tmp_path / "det"), str(tmp_path / "seg"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"]["bbox"]["dog"] == [0.3, None]
    assert main(["runs", "compare", str(tmp_path / "det"), str(tmp_path / "seg")]) == 0
    dog = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("dog"))
    assert dog.split() == ["dog", "0.3000"]  # blank for the run without the class


def test_legacy_runs_are_listed(tmp_path: Path):
    info = fake_run(tmp_path / "src", aps=[0.1]).info
    config = {**info.config.to_dict(), "extra": {}}
    yolo = tmp_path / "runs" / "old_yolo"
    yolo.mkdir(parents=True)
    (yolo / "detft_meta.json").write_text(json.dumps({"labels": info.labels.to_json(), "task": "detect",
                                                      "config": {**config, "model": "yolov8n.pt"}}))
    rcnn = tmp_path / "runs" / "old_rcnn"
    (rcnn / "args.yaml").parent.mkdir(parents=True)
    (rcnn / "args.yaml").write_text("epochs: 3\n")
    checkpoint.save(rcnn / "weights" / "best.pt", {"meta": {"model_name": "tiny_fasterrcnn", "family": "fasterrcnn",
                                                            "labels": info.labels.to_json(), "config": config}})
    rows = {r.name: r for r in detft.list_runs(tmp_path / "runs")}
    assert {n: (r.family, r.model) for n, r in rows.items()} == {"old_yolo": ("yolo", "yolov8n.pt"),
                                                                 "old_rcnn": ("rcnn", "tiny_fasterrcnn")}
    assert all(not r.status.startswith("damaged") for r in rows.values())


def test_named_errors(tmp_path: Path, capsys):
    fake_run(tmp_path / "a", aps=[0.1])
    assert main(["runs", str(tmp_path / "nowhere")]) == 1
    assert "no folder" in capsys.readouterr().err
    assert main(["runs", "compare", "a", "b", "--dir", str(tmp_path)]) == 1
    assert "b: not a run folder, nor a run under" in capsys.readouterr().err
    assert main(["runs", "compare", "a", "--dir", str(tmp_path)]) == 1
    assert "two runs or more" in capsys.readouterr().err
    assert main(["runs", str(tmp_path), "--all"]) == 1
    assert "detft runs compare" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.startswith("no runs under")
