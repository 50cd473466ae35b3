"""The score threshold to predict with, chosen on evaluated data rather than guessed: per class, the one
that maximises F1 (IoU 0.5, each ground-truth object matched at most once, highest scores first, as
COCO matches), and overall; with a target precision, the lowest threshold that still reaches it (the most
recall at that precision). ``--conf auto`` predicts with the per-class values (eval.json's ``thresholds``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from .cocoeval import result_box
from .confusion import iou_xywh

MATCH_IOU = 0.5


def matched_scores(gt: dict, dets: list[dict], iou: float = MATCH_IOU) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """Per category id: (N, 2) rows of (score, 1 if a true positive else 0), highest score first, and the number of
    ground-truth objects. A detection on a crowd region and nothing else is neither: it is dropped."""
    objects: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for a in gt["annotations"]:
        objects[(a["image_id"], a["category_id"])].append(a)
    preds: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for d in dets:
        preds[(d["image_id"], d["category_id"])].append(d)
    scores: dict[int, list[float]] = defaultdict(list)
    hits: dict[int, list[int]] = defaultdict(list)
    for key, p in preds.items():
        g = objects.get(key)
        if not g:  # nothing to match (most groups on large sets): every detection is a false positive
            scores[key[1]] += [d["score"] for d in p]
            hits[key[1]] += [0] * len(p)
            continue
        p = sorted(p, key=lambda d: -d["score"])
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in g], bool)
        raw = iou_xywh(np.array([result_box(d) for d in p], float), np.array([a["bbox"] for a in g], float))
        ious = raw >= iou
        taken = crowd.copy()
        for i, d in enumerate(p):
            free = np.flatnonzero(~taken & ious[i])
            if free.size:
                taken[free[np.argmax(raw[i, free])]] = True
                scores[key[1]].append(d["score"])
                hits[key[1]].append(1)
            elif not (crowd & ious[i]).any():
                scores[key[1]].append(d["score"])
                hits[key[1]].append(0)
    counts: dict[int, int] = defaultdict(int)
    for a in gt["annotations"]:
        counts[a["category_id"]] += not a.get("iscrowd", 0)
    out = {}
    for c in scores:
        s, h = np.array(scores[c], float), np.array(hits[c], float)
        order = np.argsort(-s, kind="stable")
        out[c] = np.stack([s[order], h[order]], 1)
    return out, dict(counts)


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


def f1_thresholds(gt: dict, dets: list[dict], target_precision: float | None = None) -> dict[str, Any]:
    """eval.json's ``thresholds``: per class (by name) and overall (all classes pooled); ``null`` for a class with
    no detections, no ground truth, or (with a target) no threshold that reaches the target precision."""
    rows, counts = matched_scores(gt, dets)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    per_class, curves = {}, {}
    for cid in sorted(names):
        points = operating_points(rows.get(cid, np.zeros((0, 2))), counts.get(cid, 0))
        per_class[names[cid]] = choose(points, target_precision)
        curves[names[cid]] = points
    pooled = np.concatenate([r for r in rows.values()] or [np.zeros((0, 2))])
    pooled = pooled[np.argsort(-pooled[:, 0], kind="stable")]
    overall = operating_points(pooled, sum(counts.values()))
    curves["all classes"] = overall
    return {"iou": MATCH_IOU, "target_precision": target_precision, "overall": choose(overall, target_precision),
            "per_class": per_class, "curves": curves}
