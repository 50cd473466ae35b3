"""Integration on real data: a short CPU fine-tune on BCCD must beat the untrained model's mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detft.annotations.report import Report
from detft.config import TrainConfig
from detft.engine.trainer import Trainer
from detft.evaluation import evaluate
from detft.evaluation.groundtruth import coco_groundtruth, to_results
from detft.inference.predictor import RCNNPredictor, predict_records
from detft.operations.convert import load


def packaged_or_skip(name: str) -> None:
    from detft.models import packaged

    if not packaged.available(name):
        pytest.skip(f"{packaged.PACKAGED[name].distribution} is not installed ({packaged.PACKAGED[name].install})")


@pytest.mark.slow
@pytest.mark.parametrize("model,weights,freeze,epochs,imgsz,min_ap50", [
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "none", "none", 3, 320, 0.3),  # torchvision model, random init
    ("fasterrcnn_mobilenet_v2_fpn", "DEFAULT", "auto", 3, 256, 0.5),  # packaged ImageNet, detft defaults: measured 0.81
])
def test_short_cpu_run_on_bccd_beats_the_untrained_model(bccd: Path, tmp_path: Path, model: str, weights: str,
                                                         freeze: str, epochs: int, imgsz: int, min_ap50: float):
    if weights == "DEFAULT":
        packaged_or_skip("mobilenet_v2")
    cfg = TrainConfig(data=str(bccd), model=model, weights=weights, freeze=freeze,
                      epochs=epochs, batch=4, lr=0.002, optimizer="adamw", schedule="cosine", warmup_iters=20,
                      augment="flip", workers=0, project=str(tmp_path), name="bccd", imgsz=imgsz)
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
    print(f"BCCD val bbox AP50, {model} ({weights}, freeze {freeze}): untrained {before[1]:.4f} -> after {epochs} "
          f"epoch(s) {after['AP50']:.4f}; "
          f"AP {before[0]:.4f} -> {after['AP']:.4f}")
    assert after["AP50"] > before[1] + 0.05 and after["AP50"] > min_ap50
    assert torch.isfinite(torch.tensor(after["AP"]))


@pytest.mark.slow
def test_pretrained_yolo_on_bccd_learns_and_reports_both_evaluators(bccd: Path, tmp_path: Path):
    """The packaged YOLOv8s (a person detector) fine-tuned offline on blood cells, backbone frozen."""
    pytest.importorskip("ultralytics", reason="ultralytics is not installed")
    packaged_or_skip("fall-detection")
    cfg = TrainConfig(data=str(bccd), arch="yolo", weights="fall-detection", freeze="backbone", epochs=3, batch=16,
                      imgsz=256, lr=0.002, optimizer="adamw", augment="flip", workers=0, device="cpu",
                      project=str(tmp_path), name="yolo-bccd")
    from detft import train

    run = train(cfg)
    doc = json.loads((run / "eval.json").read_text())
    ours, theirs = doc["metrics"]["bbox"]["stats"], doc["ultralytics"]
    print(f"BCCD val, fall-detection YOLOv8s, backbone frozen, 3 epochs at 256 px: detft/COCO AP {ours['AP']:.4f} "
          f"AP50 {ours['AP50']:.4f}; ultralytics mAP50-95 {theirs['bbox_AP']:.4f} mAP50 {theirs['bbox_AP50']:.4f}")
    assert doc["n_images"] == 87 and [r["name"] for r in doc["metrics"]["bbox"]["per_class"]] == ["Platelets", "RBC", "WBC"]
    assert ours["AP50"] > 0.3 and theirs["bbox_AP50"] > 0.3  # measured 0.58 (bench/transfer.py)
