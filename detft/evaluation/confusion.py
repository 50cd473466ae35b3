"""Confusion matrix of detections against ground truth (rows: predicted, columns: true class, the
last row/column being background), with the conventions of ultralytics' ConfusionMatrix: detections
above a confidence threshold, greedy class-agnostic matching at an IoU threshold, crowd GT ignored."""

from __future__ import annotations

import numpy as np

from .matching import Overlaps, greedy


def confusion_matrix(gt: dict, dets: list[dict], conf: float = 0.25, iou: float = 0.5,
                     shared: Overlaps | None = None) -> tuple[np.ndarray, list[int]]:
    """Returns (matrix of shape (K+1, K+1), the category ids in matrix order). ``shared``: the overlaps of ``gt``
    and ``dets``, when the caller made them for the other rules too."""
    o = shared or Overlaps.of(gt, dets)
    t, p = o.table, o.pairs
    cat_ids = sorted(c["id"] for c in gt["categories"])
    bg = len(cat_ids)
    index = dict(zip(cat_ids, range(bg)))
    confident = t.det_score[o.dets] >= conf
    matched = greedy(p, p.spread(confident) & ~o.crowd & (p.iou >= iou), np.zeros(len(t.gt_cat), bool))
    matrix = np.zeros((bg + 1, bg + 1), np.int64)
    predicted = np.array([index.get(c, bg) for c in t.det_cat[o.dets[confident]].tolist()], np.int64)
    hit = matched[confident]
    truth = np.array([index[c] for c in t.gt_cat[hit[hit >= 0]].tolist()], np.int64)
    columns = np.full(len(hit), bg, np.int64)
    columns[hit >= 0] = truth
    np.add.at(matrix, (predicted, columns), 1)
    real = np.flatnonzero(~t.gt_crowd)
    missed = real[~np.isin(real, hit[hit >= 0])]
    np.add.at(matrix, (np.full(len(missed), bg), np.array([index[c] for c in t.gt_cat[missed].tolist()], np.int64)), 1)
    return matrix, cat_ids
