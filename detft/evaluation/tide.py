"""Where the missing AP goes: TIDE's error breakdown (Bolya et al., ECCV 2020), so a user learns whether to
fix labels, localisation, duplicates or recall instead of staring at one AP number.

Every detection that is not a true positive at IoU 0.5 gets one error type, in TIDE's order:

- localisation: right class, 0.1 <= IoU <= 0.5 with an object;
- classification: IoU >= 0.5 with an object of another class;
- duplicate: right class, IoU >= 0.5 with an object a higher-scoring detection already took;
- background: IoU <= 0.1 with every object;
- both: wrong class and poorly localised (anything else);

and an object no detection found, nor any classification or localisation error points at, is *missed*.
Each type's dAP is the AP50 gained when only that type is fixed by an oracle (a classification or
localisation error becomes the true positive of its object, the highest-scoring one per object; duplicates,
background and both are removed; a missed object is removed from the ground truth), computed with TIDE's
own AP (101-point, over the classes with objects or detections). The two "special" numbers are the AP with
every false positive scored below every true positive, and with every missed object found.

This follows the reference implementation (``tidecv``; the tests cross-check it) with one difference: a
detection that only covers a crowd region is neither right nor wrong here, as in COCO's own matching and
detft's thresholds, so it gets no error type. dAP values are on detft's 0..1 scale (TIDE prints x100)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cocoeval import result_box
from .confusion import iou_xywh

POS_IOU, BG_IOU = 0.5, 0.1
MAIN = ("classification", "localisation", "both", "duplicate", "background", "missed")


@dataclass
class _Error:
    kind: str
    category: int  # the class its data point is counted under when unfixed (missed: its object's class)
    score: float = 0.0
    obj: int | None = None  # the object a classification/localisation fix would turn it into a true positive of
    fix_category: int | None = None


@dataclass
class _Breakdown:
    tp: list[tuple[int, float]] = field(default_factory=list)  # (category, score) of every true positive
    errors: list[_Error] = field(default_factory=list)
    positives: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # category -> objects
    missed: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # category -> unmatched objects
    best: dict[int, int] = field(default_factory=dict)  # object -> index of its highest-scoring fixable error


def tide_ap(points: dict[int, list[tuple[float, bool]]], positives: dict[int, int]) -> float:
    """TIDE's AP: per class, precision made monotone, read at 101 recall points (searchsorted, as tidecv
    does), averaged over every class that has objects or detections (a class with detections and no objects
    scores 0)."""
    aps = []
    for cat in set(points) | {c for c, n in positives.items() if n}:
        pts, n = points.get(cat, []), positives.get(cat, 0)
        if not pts and not n:
            continue
        if not n:
            aps.append(0.0)
            continue
        arr = np.array(pts, float).reshape(-1, 2)
        order = np.argsort(-arr[:, 0], kind="stable")  # ties keep their order, as tidecv's list sort
        tp = np.cumsum(arr[order, 1])
        precision = np.maximum.accumulate((tp / np.arange(1, len(order) + 1))[::-1])[::-1]  # no temporary dips
        idx = np.searchsorted(tp / n, np.arange(101) / 100, side="left")
        y = np.zeros(101)
        y[idx < len(order)] = precision[idx[idx < len(order)]]
        aps.append(float(np.mean(y)))
    return float(np.mean(aps)) if aps else 0.0


def _classify(gt: dict, dets: list[dict], max_dets: int) -> _Breakdown:
    objects: dict[int, list[dict]] = defaultdict(list)
    for a in gt["annotations"]:
        objects[a["image_id"]].append(a)
    preds: dict[int, list[dict]] = defaultdict(list)
    for d in dets:
        preds[d["image_id"]].append(d)
    out = _Breakdown()
    next_object = 0
    for image in [im["id"] for im in gt["images"]]:
        anns = objects.get(image, [])
        real = [a for a in anns if not a.get("iscrowd", 0)]
        crowd = [a for a in anns if a.get("iscrowd", 0)]
        ids = list(range(next_object, next_object + len(real)))
        next_object += len(real)
        for a in real:
            out.positives[a["category_id"]] += 1
        p = sorted(preds.get(image, []), key=lambda d: -d["score"])[:max_dets]
        used = np.zeros(len(real), bool)
        if not p:
            for a, oid in zip(real, ids):
                out.missed[a["category_id"]] += 1
                out.errors.append(_Error("missed", a["category_id"], obj=oid))
            continue
        boxes = np.array([result_box(d) for d in p], float).reshape(-1, 4)
        pcls = np.array([d["category_id"] for d in p])
        gcls = np.array([a["category_id"] for a in real])
        iou = iou_xywh(boxes, np.array([a["bbox"] for a in real], float).reshape(-1, 4)) if real else np.zeros((len(p), 0))
        same = pcls[:, None] == gcls[None, :]
        cls_iou = iou * same
        buffer = cls_iou.copy()
        matched = np.zeros(len(p), bool)
        for i in range(len(p) if real else 0):  # highest score first, each to its most-overlapping free object of its class
            j = int(np.argmax(buffer[i]))
            if buffer[i, j] >= POS_IOU:
                matched[i], used[j] = True, True
                buffer[:, j] = 0
        ignored = np.zeros(len(p), bool)
        if crowd:  # a detection mostly inside a crowd region of its class is neither right nor wrong
            covered = iou_xywh(boxes, np.array([a["bbox"] for a in crowd], float), crowd=np.ones(len(crowd), bool))
            ignored = ~matched & ((covered > POS_IOU) & (pcls[:, None] == np.array([a["category_id"] for a in crowd]))).any(1)
        other_cls = iou * ~same
        used_cls = cls_iou * used[None, :]
        fixable: dict[int, list[int]] = defaultdict(list)
        for i, d in enumerate(p):
            cat, score = int(pcls[i]), float(d["score"])
            if matched[i]:
                out.tp.append((cat, score))
                continue
            if ignored[i]:
                continue
            if not real:
                out.errors.append(_Error("background", cat, score))
                continue
            j, k = int(np.argmax(cls_iou[i])), int(np.argmax(other_cls[i]))
            if BG_IOU <= cls_iou[i, j] <= POS_IOU:
                err = _Error("localisation", cat, score, None if used[j] else ids[j], cat)
            elif other_cls[i, k] >= POS_IOU:
                err = _Error("classification", cat, score, None if used[k] else ids[k], int(gcls[k]))
            elif used_cls[i].max() >= POS_IOU:
                err = _Error("duplicate", cat, score)
            elif iou[i].max() <= BG_IOU:
                err = _Error("background", cat, score)
            else:
                err = _Error("both", cat, score)
            if err.obj is not None:
                fixable[err.obj].append(len(out.errors))
            out.errors.append(err)
        for oid, errs in fixable.items():  # the highest-scoring error per object is the one a fix keeps
            out.best[oid] = max(errs, key=lambda e: out.errors[e].score)
        for a, oid, u in zip(real, ids, used):
            if not u:
                out.missed[a["category_id"]] += 1
                if oid not in fixable:
                    out.errors.append(_Error("missed", a["category_id"], obj=oid))
    return out


def _ap_with(b: _Breakdown, fixed: str | None = None, scores_fixed: bool = False, found_missed: bool = False) -> float:
    """AP50 with the errors of type ``fixed`` corrected (or TIDE's two special corrections)."""
    positives = dict(b.positives)
    points: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for index, e in enumerate(b.errors):
        if e.kind == fixed:
            if e.kind == "missed":
                positives[e.category] -= 1
            elif e.kind in ("classification", "localisation") and e.obj is not None and b.best.get(e.obj) == index:
                points[e.fix_category].append((e.score, True))
            continue
        if e.kind != "missed":
            points[e.category].append((0.0 if scores_fixed else e.score, False))
    for cat, score in b.tp:
        points[cat].append((1.0 if scores_fixed else score, True))
    if found_missed:
        positives = {c: n - b.missed.get(c, 0) for c, n in positives.items()}
    return tide_ap(points, positives)


def error_breakdown(gt: dict, dets: list[dict], max_dets: int = 100) -> dict[str, Any]:
    """eval.json's ``errors``: AP50 as TIDE computes it, the dAP of each error type, the two special dAPs
    (perfect precision, perfect recall) and how many detections or objects fell in each type (bbox IoU)."""
    b = _classify(gt, dets, max_dets)
    base = _ap_with(b)
    counts = {k: 0 for k in MAIN}
    for e in b.errors:
        counts[e.kind] += 1
    return {
        "method": "TIDE (Bolya et al. 2020), bbox", "pos_iou": POS_IOU, "bg_iou": BG_IOU, "ap50": round(base, 6),
        "dAP": {k: round(max(_ap_with(b, k) - base, 0.0), 6) for k in MAIN},
        "special": {"false_positives": round(_ap_with(b, scores_fixed=True) - base, 6),
                    "false_negatives": round(_ap_with(b, found_missed=True) - base, 6)},
        "counts": counts}


def format_breakdown(e: dict[str, Any]) -> str:
    """The breakdown as printed: each error type's dAP as a bar, biggest first."""
    lines = [f"\nwhere the AP goes ({e['method']}; AP50 {e['ap50']:.4f}; dAP = AP50 gained if only that error were fixed):"]
    scale = max([*e["dAP"].values(), 1e-9])
    for kind, gain in sorted(e["dAP"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {kind:<15} {gain:>7.4f}  {'#' * round(20 * gain / scale):<20}  {e['counts'][kind]} "
                     + ("objects" if kind == "missed" else "detections"))
    lines.append(f"  perfect precision (no false positive above a true one): +{e['special']['false_positives']:.4f}; "
                 f"perfect recall: +{e['special']['false_negatives']:.4f}")
    return "\n".join(lines)
