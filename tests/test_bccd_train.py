"""Integration on real data: a short CPU fine-tune on BCCD must beat the untrained model's mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detft.convert import load
from detft.engine.trainer import Trainer, TrainConfig
from detft.evaluation import evaluate
from detft.evaluation.groundtruth import coco_groundtruth, to_results
from detft.inference.predictor import RCNNPredictor, predict_records
from detft.report import Report


@pytest.mark.slow
def test_short_cpu_run_on_bccd_beats_the_untrained_model(bccd: Path, tmp_path: Path):
    cfg = TrainConfig(data=str(bccd), model="fasterrcnn_mobilenet_v3_large_320_fpn", weights="none", freeze="none",
                      epochs=3, batch=4, lr=0.002, optimizer="adamw", schedule="cosine", warmup_iters=20,
                      augment="flip", workers=0, project=str(tmp_path), name="bccd", imgsz=320)
    trainer = Trainer(cfg)
    trainer.setup()
    # the same initial model, evaluated before any training step
    ds = load(bccd, None, Report())
    val = ds.images_in("val")
    untrained = RCNNPredictor(trainer.model, trainer.labels, "cpu")
    before = evaluate(coco_groundtruth(ds, val), to_results(ds, predict_records(untrained, val)), "bbox").stats
    trainer.model.train()
    run = trainer.fit()
    after = json.loads((run / "eval.json").read_text())["metrics"]["bbox"]["stats"]
    print(f"BCCD val bbox AP50: untrained {before[1]:.4f} -> after 3 epochs {after['AP50']:.4f}; "
          f"AP {before[0]:.4f} -> {after['AP']:.4f}")
    assert after["AP50"] > before[1] + 0.05
    assert torch.isfinite(torch.tensor(after["AP"]))


@pytest.mark.slow
def test_yolo_on_bccd_reports_both_evaluators(bccd: Path, tmp_path: Path):
    pytest.importorskip("ultralytics", reason="ultralytics is not installed")
    cfg = TrainConfig(data=str(bccd), arch="yolo", model="yolov8n.yaml", epochs=3, batch=16, imgsz=160, workers=0,
                      device="cpu", project=str(tmp_path), name="yolo-bccd")
    from detft.engine.trainer import train

    run = train(cfg)
    doc = json.loads((run / "eval.json").read_text())
    ours, theirs = doc["metrics"]["bbox"]["stats"], doc["ultralytics"]
    print(f"BCCD val, yolov8n from scratch, 3 epochs at 160 px: detft/COCO AP {ours['AP']:.4f} AP50 {ours['AP50']:.4f}; "
          f"ultralytics mAP50-95 {theirs['bbox_AP']:.4f} mAP50 {theirs['bbox_AP50']:.4f}")
    assert 0 <= ours["AP"] <= 1 and 0 <= theirs["bbox_AP"] <= 1
    assert doc["n_images"] == 87 and [r["name"] for r in doc["metrics"]["bbox"]["per_class"]] == ["Platelets", "RBC", "WBC"]
