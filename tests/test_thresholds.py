"""Choosing the score threshold: best F1 per class and overall, a target precision, and ``--conf auto``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import detft
from detft.cli import main
from detft.errors import DetftError
from detft.evaluation.thresholds import f1_thresholds
from helpers import config, make_data

import tiny_models  # noqa: F401  registers tiny_fasterrcnn


def box(x: float, cat: int = 1, image: int = 1, score: float | None = None, crowd: bool = False) -> dict:
    d = {"image_id": image, "category_id": cat, "bbox": [x, 0.0, 10.0, 10.0]}
    if score is None:
        d.update(id=int(x) + 1000 * cat, area=100.0, iscrowd=int(crowd))
    else:
        d["score"] = score
    return d


def test_best_f1_and_target_precision_on_a_case_worked_by_hand():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
          "annotations": [box(0), box(20), box(40), box(80, crowd=True), box(0, cat=2)]}
    # class a, by score: TP 0.9, FP 0.8, TP 0.7, (on the crowd region: ignored) 0.5, TP 0.3, FP 0.2
    dets = [box(0, score=0.9), box(60, score=0.8), box(20, score=0.7), box(80, score=0.5), box(40, score=0.3),
            box(100, score=0.2), box(0, cat=2, score=0.6)]
    t = f1_thresholds(gt, dets)
    # keeping >= 0.3: 3 TP of 4 kept, 3 of 3 objects: P 0.75, R 1, F1 6/7 (>= 0.7: 2/3, 2/3, 0.667; >= 0.2: 0.6, 1, 0.75)
    assert t["per_class"]["a"] == {"threshold": 0.3, "precision": 0.75, "recall": 1.0, "f1": round(6 / 7, 6)}
    assert t["per_class"]["b"] == {"threshold": 0.6, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert t["overall"]["threshold"] == 0.3 and t["overall"]["recall"] == 1.0  # 4 of 5 kept are TP, 4 of 4 objects
    assert t["overall"]["precision"] == 0.8
    strict = f1_thresholds(gt, dets, target_precision=0.9)
    assert strict["per_class"]["a"]["threshold"] == 0.9 and strict["per_class"]["b"]["threshold"] == 0.6
    assert f1_thresholds(gt, dets, target_precision=0.7)["per_class"]["a"]["threshold"] == 0.3  # the lowest reaching it
    none = f1_thresholds(gt, [d for d in dets if d["category_id"] == 1])
    assert none["per_class"]["b"] is None


def test_equal_scores_are_one_threshold():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}], "annotations": [box(0), box(20)]}
    dets = [box(0, score=0.5), box(60, score=0.5), box(20, score=0.5)]  # a cut cannot split equal scores
    assert f1_thresholds(gt, dets)["per_class"]["a"] == {"threshold": 0.5, "precision": round(2 / 3, 6),
                                                         "recall": 1.0, "f1": 0.8}


def test_worst_images_count_misses_and_false_detections_at_the_class_thresholds():
    from detft.evaluation.thresholds import match
    from detft.evaluation.worst import worst_images

    gt = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in (1, 2, 3)], "categories": [{"id": 1, "name": "a"}],
          "annotations": [box(0), box(20), box(0, image=2)]}
    dets = [box(0, score=0.9), box(50, score=0.8), box(20, score=0.4),  # image 1: the 0.4 hit is below the bar
            box(60, image=2, score=0.95), box(0, image=3, score=0.1)]  # image 3's detection is below it too
    worst = worst_images(match(gt, dets), gt, {"overall": {"threshold": 0.5}, "per_class": {"a": None}})
    assert worst == {"thresholds": {"a": 0.5}, "images": [
        {"image_id": 1, "file_name": "1.jpg", "missed": 1, "false_positives": 1},
        {"image_id": 2, "file_name": "2.jpg", "missed": 1, "false_positives": 1}]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> detft.Run:
    tmp = tmp_path_factory.mktemp("thresholds")
    return detft.train(config(make_data(tmp / "data", n=8), tmp, epochs=2))


def test_a_trained_run_stores_thresholds_and_conf_auto_applies_them_per_class(run: detft.Run, tmp_path: Path):
    doc = json.loads((run / "eval.json").read_text())
    assert (run / "f1_curve.png").is_file() and (run / "worst_images.png").is_file()
    worst = doc["worst_images"]["images"]
    assert worst and all(w["missed"] + w["false_positives"] > 0 for w in worst)
    assert [w["missed"] + w["false_positives"] for w in worst] == sorted((w["missed"] + w["false_positives"] for w in worst),
                                                                         reverse=True)
    thresholds = run.thresholds()
    assert set(thresholds) == {"circle", "square", "triangle"}
    assert thresholds == {n: (p or doc["thresholds"]["overall"])["threshold"] for n, p in doc["thresholds"]["per_class"].items()}
    auto = detft.load(run, conf="auto", device="cpu")
    everything = detft.load(run, conf=0.001, device="cpu")
    images = sorted((Path(run.info.config.data) / "images" / "val").iterdir())
    kept = 0
    for a, b in zip(auto.predict(images), everything.predict(images)):
        need = np.array([thresholds[auto.names[int(c)]] for c in b.labels])
        assert len(a) == int((b.scores >= need).sum())  # exactly the detections that reach their class's threshold
        kept += len(a)
    assert 0 < kept < sum(len(b) for b in everything.predict(images))
    # evaluation under --conf auto still scores every detection (COCO practice), not the filtered ones
    assert auto.evaluate(split="val").metrics == everything.evaluate(split="val").metrics


def test_cli_eval_target_precision_then_predict_conf_auto(run: detft.Run, tmp_path: Path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run.folder, copy)
    target = round(json.loads((run / "eval.json").read_text())["thresholds"]["overall"]["precision"] * 0.9, 3)
    assert main(["eval", "--weights", str(copy), "--target-precision", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"score thresholds (lowest reaching precision {target}" in out
    stored = json.loads((copy / "eval.json").read_text())["thresholds"]
    assert stored["target_precision"] == target and stored["overall"]["precision"] >= target
    data = Path(run.info.config.data)
    assert main(["predict", "--weights", str(copy), "--conf", "auto", "--source", str(data / "images" / "val"),
                 "--out", str(tmp_path / "pred")]) == 0
    (copy / "eval.json").write_text('{"metrics": ')
    assert main(["predict", "--weights", str(copy), "--conf", "auto", "--source", str(data / "images" / "val"),
                 "--out", str(tmp_path / "pred1")]) == 1
    assert "eval.json:1: invalid JSON" in capsys.readouterr().err
    (copy / "eval.json").unlink()
    assert main(["predict", "--weights", str(copy), "--conf", "auto", "--source", str(data / "images" / "val"),
                 "--out", str(tmp_path / "pred2")]) == 1
    assert "--conf auto needs the thresholds of an evaluation" in capsys.readouterr().err
    with pytest.raises(DetftError, match="--target-precision is a precision in"):
        detft.load(run, device="cpu").evaluate(target_precision=1.5)
