"""Confusion matrix of detections against ground truth (rows: predicted, columns: true class, the
last row/column being background), with the conventions of ultralytics' ConfusionMatrix: detections
above a confidence threshold, greedy class-agnostic matching at an IoU threshold, crowd GT ignored."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .cocoeval import result_box


def iou_xywh(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU of xywh boxes a (N,4) and b (M,4); where ``crowd`` (M,) is set, COCO's crowd overlap instead (the
    intersection over a's own area: how much of a detection the crowd region covers)."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    if crowd is not None:
        union = np.where(crowd[None, :], (a[:, 2] * a[:, 3])[:, None], union)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def confusion_matrix(gt: dict, dets: list[dict], conf: float = 0.25, iou: float = 0.5) -> tuple[np.ndarray, list[int]]:
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
