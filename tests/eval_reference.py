"""detft's evaluation extras as they were before #36 made them one vectorised pass (detft 2026-12-03, 5846eb2):
the reference the fast code must equal to 1e-9 (TIDE's classification and dAPs, the threshold matching, the
confusion matrix), kept here as the slow, obvious form of each rule."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detft.evaluation.cocoeval import result_box
from detft.evaluation.matching import iou_xywh
from detft.evaluation.tide import BG_IOU, MAIN, POS_IOU
from detft.evaluation.thresholds import MATCH_IOU, Matches

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
    return reference_tide_ap(points, positives)


def reference_error_breakdown(gt: dict, dets: list[dict], max_dets: int = 100) -> dict[str, Any]:
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


def reference_match(gt: dict, dets: list[dict], iou: float = MATCH_IOU) -> Matches:
    """Each detection, in descending score order within its image and class, takes the most overlapping free
    object (IoU >= ``iou``); one that matches only a crowd region is neither right nor wrong and is dropped.
    Greedy by score, so the matches above any threshold are those a cut at that threshold would get."""
    objects: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for a in gt["annotations"]:
        objects[(a["image_id"], a["category_id"])].append(a)
    preds: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for d in dets:
        preds[(d["image_id"], d["category_id"])].append(d)
    rows: list[tuple[int, int, float, bool]] = []
    for (image, cat), p in preds.items():
        g = objects.get((image, cat))
        if not g:  # nothing to match (most groups on large sets): every detection is a false positive
            rows += [(image, cat, d["score"], False) for d in p]
            continue
        p = sorted(p, key=lambda d: -d["score"])
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in g], bool)
        raw = iou_xywh(np.array([result_box(d) for d in p], float), np.array([a["bbox"] for a in g], float))
        over = raw >= iou
        taken = crowd.copy()
        for i, d in enumerate(p):
            free = np.flatnonzero(~taken & over[i])
            if free.size:
                taken[free[np.argmax(raw[i, free])]] = True
                rows.append((image, cat, d["score"], True))
            elif not (crowd & over[i]).any():
                rows.append((image, cat, d["score"], False))
    table = np.array(rows, float).reshape(-1, 4)
    table = table[np.argsort(-table[:, 2], kind="stable")]
    counts = {key: sum(not a.get("iscrowd", 0) for a in g) for key, g in objects.items()}
    return Matches(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2], table[:, 3] > 0, counts)


def reference_confusion(gt: dict, dets: list[dict], conf: float = 0.25, iou: float = 0.5) -> tuple[np.ndarray, list[int]]:
    """Returns (matrix of shape (K+1, K+1), the category ids in matrix order)."""
    cat_ids = sorted(c["id"] for c in gt["categories"])
    index = {c: i for i, c in enumerate(cat_ids)}
    bg = len(cat_ids)
    matrix = np.zeros((bg + 1, bg + 1), np.int64)
    gts: dict[int, list[dict]] = defaultdict(list)
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            gts[a["image_id"]].append(a)
    preds: dict[int, list[dict]] = defaultdict(list)
    for d in dets:
        if d["score"] >= conf:
            preds[d["image_id"]].append(d)
    for image_id in set(gts) | set(preds):
        g, p = gts.get(image_id, []), sorted(preds.get(image_id, []), key=lambda d: -d["score"])
        g_cls = np.array([index[a["category_id"]] for a in g], np.int64)
        p_cls = np.array([index.get(d["category_id"], bg) for d in p], np.int64)
        matched_g = np.zeros(len(g), bool)
        if g and p:
            ious = iou_xywh(np.array([result_box(d) for d in p], float), np.array([a["bbox"] for a in g], float))
            for i in range(len(p)):
                cand = np.where(~matched_g & (ious[i] >= iou))[0]
                if cand.size:
                    j = cand[np.argmax(ious[i, cand])]
                    matched_g[j] = True
                    matrix[p_cls[i], g_cls[j]] += 1
                else:
                    matrix[p_cls[i], bg] += 1
        else:
            np.add.at(matrix, (p_cls, np.full(len(p), bg)), 1)
        np.add.at(matrix, (np.full(int((~matched_g).sum()), bg), g_cls[~matched_g]), 1)
    return matrix, cat_ids


def reference_tide_ap(points: dict[int, list[tuple[float, bool]]], positives: dict[int, int]) -> float:
    aps = []
    for cat in set(points) | {c for c, n in positives.items() if n}:
        pts, n = points.get(cat, []), positives.get(cat, 0)
        if not pts and not n:
            continue
        if not n:
            aps.append(0.0)
            continue
        arr = np.array(pts, float).reshape(-1, 2)
        order = np.argsort(-arr[:, 0], kind="stable")
        tp = np.cumsum(arr[order, 1])
        precision = np.maximum.accumulate((tp / np.arange(1, len(order) + 1))[::-1])[::-1]
        idx = np.searchsorted(tp / n, np.arange(101) / 100, side="left")
        y = np.zeros(101)
        y[idx < len(order)] = precision[idx[idx < len(order)]]
        aps.append(float(np.mean(y)))
    return float(np.mean(aps)) if aps else 0.0
