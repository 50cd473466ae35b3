"""The score threshold to predict with, chosen on evaluated data rather than guessed: per class, the one
that maximises F1 (IoU 0.5, each ground-truth object matched at most once, highest scores first, as
COCO matches), and overall; with a target precision, the lowest threshold that still reaches it (the most
recall at that precision). ``--conf auto`` predicts with the per-class values (eval.json's ``thresholds``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .matching import Overlaps, greedy, segment_max

MATCH_IOU = 0.5


@dataclass
class Matches:
    """Every scored detection (highest first) with its image, class and whether it matched an object, and the
    objects (crowd regions excluded) per image and class: what thresholds and the worst-image list count."""

    image: np.ndarray  # (N,) image ids
    category: np.ndarray  # (N,) category ids
    score: np.ndarray  # (N,) scores, descending
    tp: np.ndarray  # (N,) bool
    objects: dict[tuple[int, int], int]  # (image id, category id) -> ground-truth objects


def match(gt: dict, dets: list[dict], iou: float = MATCH_IOU, shared: Overlaps | None = None) -> Matches:
    """Each detection, in descending score order within its image and class, takes the most overlapping free
    object (IoU >= ``iou``); one that matches only a crowd region is neither right nor wrong and is dropped.
    Greedy by score, so the matches above any threshold are those a cut at that threshold would get. Rows are by
    score, equal scores in file order. ``shared``: the overlaps of ``gt`` and ``dets``, when the caller made them
    for the other rules too."""
    o = shared or Overlaps.of(gt, dets)
    t, p = o.table, o.pairs
    close = o.same_class & (p.iou >= iou)
    tp = greedy(p, close & ~o.crowd, t.gt_crowd.copy()) >= 0
    kept = tp | ~(segment_max((close & o.crowd).astype(float), p)[0] > 0)
    rows, tp = o.dets[kept], tp[kept]
    order = np.lexsort((rows, -t.det_score[rows]))
    counts: dict[tuple[int, int], int] = {}
    for a, crowd in zip(gt["annotations"], t.gt_crowd.tolist()):
        key = (a["image_id"], a["category_id"])
        counts[key] = counts.get(key, 0) + (not crowd)
    image_ids = np.array(t.image_ids)[t.det_image[rows[order]]] if len(rows) else np.zeros(0)
    return Matches(image_ids.astype(np.int64), t.det_cat[rows[order]], t.det_score[rows[order]], tp[order], counts)


def operating_points(rows: np.ndarray, n_true: int) -> dict[str, np.ndarray]:
    """Precision, recall and F1 when keeping detections scoring at least each distinct score."""
    if not len(rows) or not n_true:
        return {k: np.zeros(0) for k in ("threshold", "precision", "recall", "f1")}
    tp = np.cumsum(rows[:, 1])
    kept = np.arange(1, len(rows) + 1)
    last = np.r_[rows[1:, 0] != rows[:-1, 0], True]  # a threshold keeps every detection with an equal score
    tp, kept, threshold = tp[last], kept[last], rows[last, 0]
    precision, recall = tp / kept, tp / n_true
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    return {"threshold": threshold, "precision": precision, "recall": recall, "f1": f1}


def choose(points: dict[str, np.ndarray], target_precision: float | None = None) -> dict[str, float] | None:
    """The best F1 (the highest threshold among equals), or the lowest threshold reaching ``target_precision``."""
    if not len(points["threshold"]):
        return None
    if target_precision is None:
        k = int(np.argmax(points["f1"]))
    else:
        ok = np.flatnonzero(points["precision"] >= target_precision)
        if not ok.size:
            return None
        k = int(ok[-1])
    return {key: round(float(points[key][k]), 6) for key in ("threshold", "precision", "recall", "f1")}


def f1_thresholds(gt: dict, dets: list[dict] | Matches, target_precision: float | None = None) -> dict[str, Any]:
    """eval.json's ``thresholds``: per class (by name) and overall (all classes pooled); ``null`` for a class with
    no detections, no ground truth, or (with a target) no threshold that reaches the target precision."""
    m = dets if isinstance(dets, Matches) else match(gt, dets)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    totals: dict[int, int] = defaultdict(int)
    for (_, cat), n in m.objects.items():
        totals[cat] += n
    rows = np.stack([m.score, m.tp], 1)
    per_class, curves = {}, {}
    for cid in sorted(names):
        points = operating_points(rows[m.category == cid], totals.get(cid, 0))
        per_class[names[cid]] = choose(points, target_precision)
        curves[names[cid]] = points
    overall = operating_points(rows, sum(totals.values()))
    curves["all classes"] = overall
    return {"iou": MATCH_IOU, "target_precision": target_precision, "overall": choose(overall, target_precision),
            "per_class": per_class, "curves": curves}
