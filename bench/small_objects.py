"""Small objects in large images: full-image vs sliced inference vs tiled training + sliced inference.

    python bench/small_objects.py [--arch yolo rcnn] [--epochs 8] [--width 1600 --height 1200] [--tile 512]

A generated benchmark: large textured scenes (1600 x 1200 by default) holding many objects of 8-24 px (circles,
squares, triangles: COCO "small" is under 32 x 32), 6 training and 3 validation scenes, COCO JSON with polygons.
For each family, two trainings with the same epochs, seed and input size: on whole images resized to the
input size, and on tiles of that size (``--tile``): YOLO11n from its COCO start, and Faster R-CNN on the packaged
ImageNet MobileNetV2 backbone (frozen; no COCO R-CNN ships in a package). Each is evaluated by detft's COCO evaluator on the full-size
validation ground truth, predicted whole and sliced (``--slice`` = the tile size, overlap 0.2). The merge column
is what slicing costs beyond the model: cutting, shifting and merging, per image."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle")
MIX = ("car", "minibus", "bus")  # --mix: aerial-like classes, the bus longer than a window
FAMILIES = {  # --arch: (row label, training settings)
    "yolo": ("YOLO11n, COCO start", dict(arch="yolo", weights="yolo11n-coco", model="yolo11n.yaml", batch=8)),
    "rcnn": ("Faster R-CNN MNv2", dict(model="fasterrcnn_mobilenet_v2_fpn", weights="DEFAULT", batch=4, lr=0.002,
                                       optimizer="adamw", schedule="cosine", warmup_iters=20)),
}


def scene(rng: random.Random, width: int, height: int, objects: int) -> tuple[Image.Image, list[dict]]:
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 25, (height // 16, width // 16, 3))
    base = np.array([rng.randrange(60, 200) for _ in range(3)])
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    img = img.filter(ImageFilter.GaussianBlur(2))
    draw, anns, placed = ImageDraw.Draw(img), [], []
    for _ in range(objects):
        r = rng.uniform(4, 12)
        cx, cy = rng.uniform(r + 1, width - r - 1), rng.uniform(r + 1, height - r - 1)
        if any(math.hypot(cx - x, cy - y) < r + q + 3 for x, y, q in placed):
            continue
        placed.append((cx, cy, r))
        k = rng.randrange(3)
        n, a0 = (24, 0.0) if k == 0 else (4 if k == 1 else 3, rng.uniform(0, math.pi))
        poly = [v for i in range(n) for v in (cx + r * math.cos(a0 + 2 * math.pi * i / n),
                                              cy + r * math.sin(a0 + 2 * math.pi * i / n))]
        draw.polygon(poly, fill=tuple(rng.randrange(256) for _ in range(3)))
        xs, ys = poly[0::2], poly[1::2]
        anns.append({"category_id": k + 1, "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                     "segmentation": [[round(v, 2) for v in poly]], "iscrowd": 0,
                     "area": (max(xs) - min(xs)) * (max(ys) - min(ys))})
    return img, anns


def vehicles(img: Image.Image, rng: random.Random, objects: int) -> list[dict]:
    """--mix: 3 buses of 560-760 x 150-230 px (longer than a 512 px window), 6 minibuses of 60-120 px, then up to
    ``objects`` cars of 10-24 px where they do not overlap the others: a class mix as aerial datasets have it."""
    draw, anns, placed = ImageDraw.Draw(img), [], []
    for k, count, (lo, hi), aspect in ((2, 3, (560, 760), (0.25, 0.35)), (1, 6, (60, 120), (0.4, 0.6)),
                                       (0, objects, (10, 24), (0.5, 0.8))):
        for _ in range(count):
            w = rng.uniform(lo, hi)
            h = w * rng.uniform(*aspect)
            if rng.random() < 0.5:
                w, h = h, w
            x, y = rng.uniform(1, img.width - w - 1), rng.uniform(1, img.height - h - 1)
            if any(x < bx + bw + 3 and bx < x + w + 3 and y < by + bh + 3 and by < y + h + 3 for bx, by, bw, bh in placed):
                continue
            placed.append((x, y, w, h))
            draw.rectangle([x, y, x + w, y + h], fill=tuple(rng.randrange(256) for _ in range(3)), outline=(20, 20, 20))
            draw.rectangle([x + w * 0.2, y + h * 0.2, x + w * 0.8, y + h * 0.8], outline=(240, 240, 240))
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            anns.append({"category_id": k + 1, "bbox": [x, y, w, h], "segmentation": [[round(v, 2) for v in poly]],
                         "iscrowd": 0, "area": w * h})
    return anns


def generate(root: Path, width: int, height: int, objects: int, seed: int = 0, mix: bool = False) -> Path:
    rng = random.Random(seed)
    for split, n in (("train", 6), ("val", 3)):
        images, anns = [], []
        for i in range(n):
            img, objs = scene(rng, width, height, 0 if mix else objects)
            if mix:
                objs = vehicles(img, rng, objects)
            name = f"{split}_{i:02d}.jpg"
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            img.save(root / "images" / split / name, quality=95)
            images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
            anns += [{**a, "id": len(anns) + k + 1, "image_id": i + 1} for k, a in enumerate(objs)]
        (root / "annotations").mkdir(exist_ok=True)
        doc = {"images": images, "annotations": anns,
               "categories": [{"id": k + 1, "name": s} for k, s in enumerate(MIX if mix else SHAPES)]}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


class Timed:
    """The inner predictor's own time, to tell the model's share of a sliced prediction from the merge's."""

    def __init__(self, inner):
        self.inner, self.labels, self.masks, self.seconds = inner, inner.labels, inner.masks, 0.0

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.inner.set_thresholds(conf, max_dets)

    def predict(self, images):
        t = time.perf_counter()
        out = self.inner.predict(images)
        self.seconds += time.perf_counter() - t
        return out


def evaluate(run: Path, data: Path, out: Path, tile: int | None, full: bool = False) -> dict:
    import detft
    from detft.inference.sliced import SlicedPredictor

    model = detft.load(run, device="cpu", conf=0.001, max_dets=300, slice=tile, slice_overlap=0.2, slice_full=full)
    timed = None
    if isinstance(model.predictor, SlicedPredictor):
        timed = model.predictor.inner = Timed(model.predictor.inner)
    doc = model.evaluate(data, "val", out=out, max_dets=300).doc
    stats = doc["metrics"]["bbox"]["stats"]
    merge = (doc["predict_s"] - timed.seconds) / doc["n_images"] if timed else 0.0
    return {"AP": stats["AP"], "AP50": stats["AP50"], "APs": stats["APs"], "images_per_s": doc["images_per_s"],
            "merge_ms": 1000 * merge, "per_class": {c["name"]: c["AP"] for c in doc["metrics"]["bbox"]["per_class"]}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES, reverse=True))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1200)
    ap.add_argument("--objects", type=int, default=120)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--project", default="/tmp/detft-small")
    ap.add_argument("--mix", action="store_true", help="cars, minibuses and buses longer than a window, per-class AP, "
                    "and a sliced row with the whole image too (--slice-full)")
    ap.add_argument("--reuse", action="store_true", help="score the runs an earlier call left in --project again "
                    "(after a change to prediction or merging) instead of training them")
    a = ap.parse_args()
    import detft

    root = Path(a.project)
    data = root / "data"
    if not (data / "annotations").is_dir():
        generate(data, a.width, a.height, a.objects, mix=a.mix)
    common = dict(data=str(data), epochs=a.epochs, imgsz=a.tile, workers=0, device="cpu", seed=0,
                  project=str(root / "runs"), exist_ok=True)
    rows = []
    for arch in a.arch:
        family, settings = FAMILIES[arch]
        for label, extra in (("whole images", {}), (f"{a.tile} px tiles", {"tile": a.tile, "tile_overlap": 0.2})):
            t = time.perf_counter()
            name = f"{arch}-{'tiles' if extra else 'whole'}"
            if a.reuse and (root / "runs" / name / "weights" / "best.pt").is_file():  # score again, train nothing
                run, seconds = root / "runs" / name, float("nan")
            else:
                run = detft.train(name=name, **common, **settings, **extra).folder
                seconds = time.perf_counter() - t
            ways = [("whole", None, False), (f"sliced {a.tile}", a.tile, False)]
            ways += [(f"sliced+full {a.tile}", a.tile, True)] if a.mix else []
            for how, tile, full in ways:
                r = evaluate(run, data, root / "eval" / f"{run.name}-{how.split()[0]}", tile, full)
                rows.append((family, label, how, seconds, r))
                print(family, label, how, r, flush=True)
    gt = json.loads((data / "annotations" / "instances_val.json").read_text())
    small = sum(a["bbox"][2] * a["bbox"][3] < 32 * 32 for a in gt["annotations"])
    print(f"\n{len(gt['images'])} val scenes {a.width}x{a.height}, {len(gt['annotations'])} objects ({small} small); "
          f"{a.epochs} epochs at {a.tile} px, seed 0; CPU ({platform.machine()}, {os.cpu_count()} "
          "cores); detft's COCO evaluator, max 300 detections per image")
    print(f"| {'model':<20} | {'trained on':<14} | {'predicted':<11} | {'train s':>7} | {'AP':>6} | {'AP50':>6} | {'AP_small':>8} | "
          f"{'images/s':>8} | {'merge ms/img':>12} |")
    print(f"|{'-' * 22}|{'-' * 16}|{'-' * 13}|{'-' * 9}|{'-' * 8}|{'-' * 8}|{'-' * 10}|{'-' * 10}|{'-' * 14}|")
    for family, label, how, seconds, r in rows:
        print(f"| {family:<20} | {label:<14} | {how:<11} | {seconds:7.0f} | {r['AP']:6.4f} | {r['AP50']:6.4f} | {r['APs']:8.4f} | "
              f"{r['images_per_s']:8.2f} | {r['merge_ms']:12.1f} |")
    if a.mix:
        sizes = {c: [x["bbox"][2] * x["bbox"][3] for x in gt["annotations"] if x["category_id"] == k + 1]
                 for k, c in enumerate(MIX)}
        print("\nper class (val objects: " + ", ".join(f"{len(v)} {c}" for c, v in sizes.items()) + ")")
        print(f"| {'trained on':<14} | {'predicted':<16} | " + " | ".join(f"{c:>8}" for c in MIX) + " |")
        for family, label, how, seconds, r in rows:
            print(f"| {label:<14} | {how:<16} | " + " | ".join(f"{r['per_class'][c]:8.4f}" for c in MIX) + " |")


if __name__ == "__main__":
    main()
