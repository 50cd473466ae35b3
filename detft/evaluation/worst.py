"""The images a model gets most wrong at the thresholds it would predict with (``--conf auto``'s per-class
ones): per image, the objects it misses and its false detections, worst first (eval.json's
``worst_images``), and a grid of them with the ground truth in green and the predictions in red
(``worst_images.png``), because the fastest way to see why a model fails is to look where it fails most."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..annotations.dataset import ImageRecord
from ..annotations.images import read_rgb
from ..annotations.preview import sheet
from ..annotations.render import draw
from .cocoeval import result_box
from .thresholds import Matches

GRID = 16
FALLBACK = 0.25  # the threshold of a class that has none (nothing detected, or the target precision not reached)
TRUTH, PREDICTED = (40, 200, 60), (230, 40, 40)


def worst_images(m: Matches, gt: dict, thresholds: dict[str, Any], n: int = GRID) -> dict[str, Any]:
    """The ``n`` images with the most missed objects plus false detections (ties: lower image id first)."""
    names = {c["id"]: c["name"] for c in gt["categories"]}
    overall = (thresholds.get("overall") or {}).get("threshold", FALLBACK)
    per_class = {cid: (thresholds["per_class"].get(name) or {}).get("threshold", overall) for cid, name in names.items()}
    need = np.array([per_class.get(int(c), overall) for c in m.category], float).reshape(-1)
    kept = m.score >= need
    files = {im["id"]: im.get("file_name", str(im["id"])) for im in gt["images"]}
    slot = {image_id: k for k, image_id in enumerate(files)}
    where = np.array([slot[int(i)] for i in m.image], np.int64)  # counted per image in one pass each, not per image
    found = np.bincount(where[kept & m.tp], minlength=len(slot))
    wrong = np.bincount(where[kept & ~m.tp], minlength=len(slot))
    objects = np.zeros(len(slot), np.int64)
    for (image_id, _), k in m.objects.items():
        objects[slot[image_id]] += k
    rows = [{"image_id": image_id, "file_name": name, "missed": int(objects[k] - found[k]),
             "false_positives": int(wrong[k])}
            for k, (image_id, name) in enumerate(files.items()) if objects[k] - found[k] or wrong[k]]
    rows.sort(key=lambda r: (-(r["missed"] + r["false_positives"]), r["image_id"]))
    return {"thresholds": {names[c]: t for c, t in per_class.items()}, "images": rows[:n]}


def worst_grid(images: list[ImageRecord], worst: dict[str, Any], dets: list[dict], names: dict[int, str], out: Path,
               cell: int = 320) -> None:
    """Draw ``worst`` (image ids are 1-based positions in ``images``): ground truth green, predictions that pass
    their class's threshold red, the counts under each tile."""
    picks = worst["images"]
    if not picks:
        return
    by_name = {name: cid for cid, name in names.items()}
    need = {by_name[n]: t for n, t in worst["thresholds"].items() if n in by_name}
    picked = {row["image_id"] for row in picks}
    per_image: dict[int, list[dict]] = {i: [] for i in picked}
    for d in dets:  # one pass over the results, not one per drawn image
        if d["image_id"] in picked and d["score"] >= need.get(d["category_id"], FALLBACK):
            per_image[d["image_id"]].append(d)
    tiles = []
    for row in picks:
        record = images[row["image_id"] - 1]
        truth = [a for a in record.annotations if not a.iscrowd]
        shown = per_image[row["image_id"]]
        boxes = np.array([a.bbox for a in truth] + [_xyxy(d) for d in shown], np.float32).reshape(-1, 4)
        texts = [names.get(a.category_id, "?") for a in truth] + [f"{names.get(d['category_id'], '?')} {d['score']:.2f}"
                                                                  for d in shown]
        colours = [TRUTH] * len(truth) + [PREDICTED] * len(shown)
        drawn = Image.fromarray(draw(read_rgb(record), boxes, [0] * len(boxes), texts, colours=colours))
        caption = f"{Path(record.file_name).name[:28]}: {row['missed']} missed, {row['false_positives']} false"
        tiles.append((drawn, caption))
    sheet(tiles, out, cell)


def _xyxy(d: dict) -> list[float]:
    x, y, w, h = result_box(d)
    return [x, y, x + w, y + h]
