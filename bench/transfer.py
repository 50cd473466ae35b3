"""Does an offline pretrained start help? Same data, split, budget and seed; only the start differs.

    python bench/transfer.py [--bccd ../shared/datasets/bccd/BCCD] [--only yolo-bccd masks ...]

Groups (``--only`` takes group names or single runs such as ``masks1``):

- ``rcnn`` (BCCD boxes, 3 epochs at 256 px): packaged ImageNet backbones (EfficientNet-Lite0, MobileNetV2) frozen /
  fully trained / at 0.1x the head's rate, against random init.
- ``yolo-bccd`` (BCCD boxes, 3 epochs at 256 px) and ``boxes`` (the embedded shapes, boxes only, 15 epochs at
  160 px): YOLO11n COCO, the fall-detection YOLOv8s person detector (both backbone frozen), random init.
- ``masks`` (the embedded shapes with masks, 15 epochs at 160 px): YOLO11n COCO into yolo11n-seg (detft's
  default), YOLOv5s-seg COCO (a COCO mask prototype, fresh heads), fall-detection into yolov8s-seg, random init;
  with ultralytics' mask mAP50 after every epoch, to show when masks start to be learnt; ``masks-long``: the two
  COCO starts for 60 epochs.

Each run is its own subprocess (its own threads and memory); AP is detft's COCO evaluator on the run's val split,
from its eval.json. Needs ``pip install 'detft[yolo-weights]'``."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

DEFAULT_BCCD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"
RCNN = "fasterrcnn_efficientnet_lite0_fpn"
YOLO_BOXES = [
    ("YOLO11n COCO, backbone frozen", dict(weights="yolo11n-coco", freeze="backbone")),
    ("fall-detection v8s, backbone frozen", dict(weights="fall-detection", freeze="backbone")),
    ("yolo11n.yaml random init, all trained", dict(model="yolo11n.yaml", weights="none", freeze="none")),
]
SHAPES = dict(data=None, epochs=15, imgsz=160)  # the README's main job
BCCD = dict(epochs=3, imgsz=256)
GROUPS = {
    "rcnn": (BCCD, dict(batch=4, lr=0.002, optimizer="adamw", schedule="cosine", warmup_iters=20, augment="flip"), [
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
    ]),
    "yolo-bccd": (BCCD, dict(arch="yolo", batch=16, lr=0.002, optimizer="adamw", schedule="cosine", augment="flip"),
                  YOLO_BOXES),
    # a detect network named, so the shapes train as boxes only (the start's tensors go into it)
    "boxes": (SHAPES, dict(arch="yolo"), [(label, {**v, "model": v.get("model", "yolo11n.yaml" if "11n" in label
                                                                         else "yolov8s.yaml")}) for label, v in YOLO_BOXES]),
    "masks": (SHAPES, dict(arch="yolo"), [
        ("YOLO11n COCO -> yolo11n-seg (default)", dict(weights="yolo11n-coco", freeze="backbone")),
        ("YOLOv5s-seg COCO, backbone frozen", dict(weights="yolov5s-seg-coco", freeze="backbone")),
        ("fall-detection v8s -> yolov8s-seg", dict(weights="fall-detection", model="yolov8s-seg.yaml",
                                                   freeze="backbone")),
        ("yolo11n-seg.yaml random init, all trained", dict(model="yolo11n-seg.yaml", weights="none", freeze="none")),
    ]),
    # does the COCO mask prototype pay off once its fresh heads have had time?
    "masks-long": ({**SHAPES, "epochs": 60}, dict(arch="yolo"), [
        ("YOLO11n COCO -> yolo11n-seg (default)", dict(weights="yolo11n-coco", freeze="backbone")),
        ("YOLOv5s-seg COCO, backbone frozen", dict(weights="yolov5s-seg-coco", freeze="backbone")),
    ]),
}


def run_one(settings: dict, out: str) -> None:
    import csv

    from detft import TrainConfig, train

    t = time.perf_counter()
    run = train(TrainConfig(**settings))
    doc = json.loads((run / "eval.json").read_text())
    metrics = {kind: doc["metrics"][kind]["stats"] for kind in ("bbox", "segm") if kind in doc["metrics"]}
    results = run / "results.csv"
    per_epoch = [float(r["metrics/mAP50(M)"]) for r in csv.DictReader(results.open())] \
        if results.is_file() and "segm" in metrics else []
    Path(out).write_text(json.dumps({"AP": metrics["bbox"]["AP"], "AP50": metrics["bbox"]["AP50"],
                                     "segm_AP50": metrics.get("segm", {}).get("AP50"), "mask_map50_per_epoch": per_epoch,
                                     "seconds": time.perf_counter() - t}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bccd", default=str(DEFAULT_BCCD))
    ap.add_argument("--only", nargs="+", help=f"groups ({', '.join(GROUPS)}) or single runs (masks0, rcnn2...)")
    ap.add_argument("--project", default="/tmp/detft-transfer")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        settings, out = json.loads(args._child)
        return run_one(settings, out)
    rows = []
    for group, (data, common, variants) in GROUPS.items():
        for i, (label, variant) in enumerate(variants):
            if args.only and group not in args.only and f"{group}{i}" not in args.only:
                continue
            settings = {"data": args.bccd, **data, **common, **variant, "seed": 0, "workers": 0, "device": "cpu",
                        "project": args.project, "name": f"{group}{i}", "exist_ok": True}
            out = Path(args.project) / f"{group}{i}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, __file__, "--_child", json.dumps([settings, str(out)])], check=True)
            rows.append((group, label, settings, json.loads(out.read_text())))
            print(f"{group} {label}: {rows[-1][3]}", flush=True)
    print(f"\nseed 0, CPU ({platform.machine()}, {torch.get_num_threads()} threads); BCCD: val 87 images; shapes: the "
          "embedded data, val 16 images; AP = detft's COCO evaluator; per epoch = ultralytics' mask mAP50")
    print(f"| {'group':<9} | {'start':<44} | {'budget':<12} | {'AP':>6} | {'AP50':>6} | {'segm AP50':>9} | "
          f"{'time (s)':>8} | mask mAP50 per epoch")
    print(f"|{'-' * 11}|{'-' * 46}|{'-' * 14}|{'-' * 8}|{'-' * 8}|{'-' * 11}|{'-' * 10}|{'-' * 21}")
    for group, label, settings, r in rows:
        segm = f"{r['segm_AP50']:9.4f}" if r["segm_AP50"] is not None else f"{'':9}"
        epochs = " ".join(f"{v:.2f}" for v in r["mask_map50_per_epoch"])
        budget = f"{settings['epochs']} ep @ {settings['imgsz']}"
        print(f"| {group:<9} | {label:<44} | {budget:<12} | {r['AP']:6.4f} | {r['AP50']:6.4f} | {segm} | "
              f"{r['seconds']:8.0f} | {epochs}")


if __name__ == "__main__":
    main()
