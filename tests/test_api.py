"""The Python API: the README example runs as written, runs of both families share one layout and
reproduce from run.yaml, and run folders in detft 0.1's layout still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn / tiny_maskrcnn)
import torch
import yaml
from helpers import config, doc_block, make_data

import detft
from detft.cli import main
from detft.engine import checkpoint

def test_the_documented_example_runs_as_written(tmp_path: Path, monkeypatch, capsys):
    pytest.importorskip("ultralytics")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    block = doc_block("api.md", "tests/test_api.py")
    exec(compile(block.code, "docs/api.md", "exec"), scope)  # noqa: S102  (our own docs)
    out = capsys.readouterr().out
    assert "['circle', 'square', 'triangle']" in out
    run, model, report = scope["run"], scope["model"], scope["report"]
    assert isinstance(run, detft.Run) and (tmp_path / "runs" / "api-example" / "run.yaml").is_file()
    assert model.classes == ["circle", "square", "triangle"] and model.masks
    assert set(report.metrics) == {"bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50"}
    info = yaml.safe_load((run / "run.yaml").read_text())
    assert info["family"] == "yolo" and info["task"] == "segment" and info["config"]["epochs"] == 1
    dets = model.predict(np.zeros((48, 64, 3), np.uint8))  # an array too, and one Detections per image
    assert len(dets) == 1 and (dets[0].masks is not None)


@pytest.fixture(scope="module")
def rcnn_run(tmp_path_factory) -> detft.Run:
    root = tmp_path_factory.mktemp("api")
    return detft.train(config(make_data(root / "data", n=4), root, epochs=1, name="r"))


def test_train_returns_a_run_with_the_common_layout(rcnn_run: detft.Run):
    for f in ("run.yaml", "weights/best.pt", "weights/last.pt", "metrics.csv", "eval.json"):
        assert (rcnn_run / f).is_file(), f
    info = rcnn_run.info
    assert (info.family, info.model, info.task, info.start) == ("rcnn", "tiny_fasterrcnn", "detect", "none")
    assert info.labels.names == ("circle", "square", "triangle") and info.detft_version == detft.__version__
    model = detft.load(rcnn_run.folder / "weights" / "best.pt", conf=0.0)
    assert repr(model).startswith("Model(rcnn: tiny_fasterrcnn")
    a = model.predict([np.zeros((96, 96, 3), np.uint8)] * 2)
    assert len(a) == 2 and all(d.masks is None for d in a)
    coco = a[0].to_coco(image_id=7)
    assert all(r["image_id"] == 7 and len(r["bbox"]) == 4 for r in coco)


def test_train_config_reproduces_a_run_with_flags_overriding(rcnn_run: detft.Run, capsys):
    again = rcnn_run.folder.parent / "again"
    assert main(["train", "--config", str(rcnn_run / "run.yaml"), "--name", "again", "--workers", "0"]) == 0
    capsys.readouterr()
    first, second = yaml.safe_load((rcnn_run / "run.yaml").read_text()), yaml.safe_load((again / "run.yaml").read_text())
    assert {k: v for k, v in second["config"].items() if k != "name"} == \
           {k: v for k, v in first["config"].items() if k != "name"}
    assert second["config"]["name"] == "again"
    # the same seed and settings: the same training, step for step
    assert (again / "metrics.csv").read_text().split("\n")[1].split(",")[:3] == \
           (rcnn_run / "metrics.csv").read_text().split("\n")[1].split(",")[:3]


def to_legacy_rcnn(run: detft.Run) -> None:
    """Rewrite a run in detft 0.1's R-CNN layout: args.yaml, metadata only inside the checkpoints."""
    info = run.info
    (run / "run.yaml").unlink()
    (run / "args.yaml").write_text(yaml.safe_dump({**info.config.to_dict(), "extra": {}}))
    for which in ("best", "last"):
        path = run.checkpoint(which)
        state = checkpoint.load(path)
        state["meta"] = {"model_name": info.model, "family": "fasterrcnn", "labels": info.labels.to_json(),
                         "model_kwargs": info.model_kwargs, "config": {**info.config.to_dict(), "extra": {}}}
        checkpoint.save(path, {k: v for k, v in state.items() if k != "format"})


def test_a_detft_0_1_rcnn_run_still_evaluates_predicts_and_resumes(rcnn_run: detft.Run, tmp_path: Path, capsys):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(rcnn_run.folder, old)
    to_legacy_rcnn(detft.Run(old))
    model = detft.load(old)
    assert model.run.info.detft_version == "0.1" and model.classes == ["circle", "square", "triangle"]
    assert main(["eval", "--weights", str(old), "--out", str(tmp_path / "ev")]) == 0
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["metrics"]["bbox"]["stats"]["AP"] >= 0
    assert main(["predict", "--weights", str(old / "weights" / "best.pt"), "--source",
                 str(Path(rcnn_run.info.config.data) / "images" / "val"), "--out", str(tmp_path / "pred")]) == 0
    resumed = detft.train(resume=old, epochs=2)
    assert checkpoint.load(resumed.checkpoint("last"))["epoch"] == 1 and (old / "run.yaml").is_file()
    capsys.readouterr()


def test_a_detft_0_1_yolo_run_still_loads(tmp_path: Path):
    pytest.importorskip("ultralytics")
    from helpers import yolo_config

    run = detft.train(yolo_config(tmp_path, "yolov8n.yaml", epochs=1, augment="none"))
    info = run.info
    (run / "run.yaml").unlink()
    config = {**info.config.to_dict(), "extra": {"start": info.start}}
    (run / "detft_meta.json").write_text(json.dumps({"family": "yolo", "labels": info.labels.to_json(),
                                                     "task": info.task, "imgsz": info.imgsz, "config": config}))
    model = detft.load(run, conf=0.001)
    assert model.run.info.family == "yolo" and model.run.info.start == info.start
    assert model.evaluate(split="val").metrics.keys() == {"bbox_AP", "bbox_AP50"}


def test_a_run_of_an_unknown_family_is_named(rcnn_run: detft.Run, tmp_path: Path):
    import shutil

    run = tmp_path / "other"
    shutil.copytree(rcnn_run.folder, run)
    doc = yaml.safe_load((run / "run.yaml").read_text())
    doc["family"] = "rtdetr"
    (run / "run.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(detft.DetftError, match="model family 'rtdetr', which this detft does not have"):
        detft.load(run)


def test_predict_takes_paths_arrays_and_pil_images(rcnn_run: detft.Run):
    from PIL import Image

    model = detft.load(rcnn_run, conf=0.0)
    path = sorted((Path(rcnn_run.info.config.data) / "images" / "val").iterdir())[0]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    by_path, by_array, by_pil = (model.predict(x)[0] for x in (path, rgb, Image.open(path)))
    assert np.allclose(by_path.boxes, by_array.boxes) and np.allclose(by_pil.scores, by_array.scores)
    with pytest.raises(detft.DetftError, match="RGB uint8"):
        model.predict(rgb.astype(np.float32))
    assert torch.get_num_threads() >= 1


def test_predict_save_labels_writes_the_detections_as_a_dataset_at_the_auto_thresholds(rcnn_run: detft.Run,
                                                                                         tmp_path: Path, capsys):
    """``detft predict --save-labels``, the CLI over Model.save_labels: every detection kept by --conf auto comes
    back from the written CVAT file with its score, the images beside it, nothing else written."""
    from detft.annotations.report import Report
    from detft.formats import read_dataset

    images = Path(rcnn_run.info.config.data) / "images" / "val"
    out = tmp_path / "cvat"
    assert main(["predict", "--weights", str(rcnn_run), "--source", str(images), "--save-labels", "cvat", str(out),
                 "--conf", "auto", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote cvat pre-labels to {out}" in printed and "--conf auto" in printed
    model = detft.load(rcnn_run, conf="auto", device="cpu")
    expected = {p.name: model.predict(p)[0] for p in sorted(images.iterdir())}
    back = {im.file_name: im for im in read_dataset(out, "cvat", Report()).images}
    assert set(back) == set(expected) and sum(map(len, expected.values())) > 0
    for name, dets in expected.items():
        got = sorted(a.attributes["score"] for a in back[name].annotations)
        assert got == pytest.approx(sorted(round(float(s), 4) for s in dets.scores), abs=1e-4)
    assert not (tmp_path / "runs").exists() and not Path("runs/predict").exists()  # no --out: labels only
    with pytest.raises(SystemExit):
        main(["predict", "--weights", str(rcnn_run), "--source", str(images), "--save-labels", "cvat"])


def test_rank_lists_every_image_in_order_with_a_contact_sheet(rcnn_run: detft.Run, tmp_path: Path, capsys):
    import csv

    images = Path(rcnn_run.info.config.data) / "images" / "val"
    out = tmp_path / "rank"
    assert main(["rank", "--weights", str(rcnn_run), "--source", str(images), "--out", str(out), "--top", "3",
                 "--device", "cpu"]) == 0
    rows = list(csv.DictReader((out / "rank.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert {r["file"] for r in rows} <= {p.name for p in images.iterdir()}
    assert json.loads((out / "rank.json").read_text())[0]["file"] == rows[0]["file"]
    assert (out / "contact_sheet.png").stat().st_size > 0
    assert "spread" in capsys.readouterr().out
    # spread over the R-CNN's own features: each placed at its distance from those before it, the first by uncertainty
    assert all(r["distance"] != "" for r in rows) and float(rows[0]["distance"]) == pytest.approx(float(rows[0]["score"]), abs=1e-5)
    by_uncertainty = detft.load(rcnn_run, device="cpu").rank(images, order="uncertainty")
    assert [r.score for r in by_uncertainty] == sorted((r.score for r in by_uncertainty), reverse=True)
    assert all(r.distance is None for r in by_uncertainty)


def test_a_run_on_data_without_a_split_evaluates_exports_and_predicts_with_no_further_flags(tmp_path: Path, capsys):
    """Most custom datasets come without a val split: training makes a seeded 80/20 one, run.yaml keeps it, and
    eval, export's parity check and --conf auto reuse it (and say so) instead of failing on a missing 'val'."""
    from detft.operations.synthetic import generate

    data = tmp_path / "data"
    generate(data, n_train=10, n_val=0, size=96, seed=3)
    (data / "annotations" / "instances_val.json").unlink()
    run = detft.train(config(data, tmp_path, epochs=1))
    split = detft.Run.open(run).info.split
    assert split["val_images"] == 2 and split["seed"] == 0 and split["images"] == 10
    capsys.readouterr()
    assert main(["eval", "--weights", str(run)]) == 0
    out = capsys.readouterr().out
    assert "using the run's own (seeded 80/20 of all images, seed 0: 2 val images, as in training)" in out
    assert main(["export", "--weights", str(run)]) == 0
    assert json.loads((run / "weights" / "export.json").read_text())["images"] == 2
    assert main(["predict", "--weights", str(run), "--source", str(data / "images" / "train"), "--conf", "auto",
                 "--out", str(tmp_path / "pred")]) == 0
    assert len((tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()) == 10
    (data / "images" / "train" / "train_0000.jpg").unlink()  # the data changed since: said, not silent
    doc = json.loads((data / "annotations" / "instances_train.json").read_text())
    doc["images"] = [im for im in doc["images"] if im["file_name"] != "train_0000.jpg"]
    (data / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    detft.load(run, device="cpu").evaluate()
    assert "is not the data this run trained on (10 images then, 9 now" in capsys.readouterr().out
