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

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .matching import Overlaps, greedy, segment_max

POS_IOU, BG_IOU = 0.5, 0.1
MAIN = ("classification", "localisation", "both", "duplicate", "background", "missed")
CLS, LOC, BOTH, DUPE, BKG, MISS = range(len(MAIN))


@dataclass
class _Breakdown:
    """Every true positive and every error as arrays, each in the order TIDE meets them (image by image: its
    detections by score, then its missed objects), which breaks ties between equal scores."""

    tp_cat: np.ndarray
    tp_score: np.ndarray
    kind: np.ndarray  # index into MAIN
    cat: np.ndarray  # the class its data point is counted under when unfixed (missed: its object's class)
    score: np.ndarray
    obj: np.ndarray  # the object a classification/localisation fix would make it a true positive of; -1: none
    fix_cat: np.ndarray
    best: np.ndarray  # the highest-scoring fixable error of its object: the one a fix keeps
    positives: Counter[int]  # category -> objects
    missed: Counter[int]  # category -> unmatched objects

    @cached_property
    def by_score(self) -> np.ndarray:
        """The data points (errors, then true positives) by descending score, equal scores in the order met."""
        return np.lexsort((np.arange(len(self.score) + len(self.tp_score)), -np.r_[self.score, self.tp_score]))


def tide_ap(category: np.ndarray, score: np.ndarray, tp: np.ndarray, positives: dict[int, int],
            by_score: bool = False) -> float:
    """TIDE's AP over data points given in the order they were met (``by_score``: already sorted by descending
    score, equal scores in that order): per class, precision made monotone, read at 101 recall points
    (searchsorted, as tidecv does), averaged over every class that has objects or detections (a class with
    detections and no objects scores 0); equal scores keep their order, as tidecv's list sort."""
    category = np.asarray(category)
    order = (np.argsort(category, kind="stable") if by_score
             else np.lexsort((np.arange(len(score)), -np.asarray(score, float), category)))
    category, tp = np.asarray(category)[order], np.asarray(tp, bool)[order]
    classes, first = np.unique(category, return_index=True)
    bounds = dict(zip(classes.tolist(), zip(first.tolist(), [*first[1:].tolist(), len(category)])))
    aps = []
    for cat in sorted(set(bounds) | {c for c, n in positives.items() if n}):
        lo, hi = bounds.get(cat, (0, 0))
        n = positives.get(cat, 0)
        if hi == lo and not n:
            continue
        if not n:
            aps.append(0.0)
            continue
        hits = np.cumsum(tp[lo:hi])
        precision = np.maximum.accumulate((hits / np.arange(1, hi - lo + 1))[::-1])[::-1]  # no temporary dips
        idx = np.searchsorted(hits / n, np.arange(101) / 100, side="left")
        y = np.zeros(101)
        y[idx < hi - lo] = precision[idx[idx < hi - lo]]
        aps.append(float(np.mean(y)))
    return float(np.mean(aps)) if aps else 0.0


def _classify(o: Overlaps, max_dets: int) -> _Breakdown:
    t, p = o.table, o.pairs
    in_top = np.zeros(len(t.det_cat), bool)
    in_top[t.ranked(np.ones(len(t.det_cat), bool), max_dets, listed=True)] = True
    top = in_top[o.dets]  # per detection of o.dets: among its image's max_dets best, of a listed image
    real, same = ~o.crowd, o.same_class
    taken = np.zeros(len(t.gt_cat), bool)
    matched = greedy(p, p.spread(top) & real & same & (p.iou >= POS_IOU), taken) >= 0
    covered = segment_max((o.crowd & same & (p.crowd_overlap() > POS_IOU)).astype(float), p)[0] > 0
    ignored = ~matched & covered  # mostly inside a crowd region of its class: neither right nor wrong
    iou = np.where(real, p.iou, 0.0)
    best_cls, j = segment_max(np.where(same, iou, 0.0), p)
    best_other, k = segment_max(np.where(same, 0.0, iou), p)
    best_used = segment_max(np.where(same & taken[p.gt], iou, 0.0), p)[0]
    best_any = segment_max(iou, p)[0]
    loc = (BG_IOU <= best_cls) & (best_cls <= POS_IOU)
    cls = ~loc & (best_other >= POS_IOU)
    dupe = ~loc & ~cls & (best_used >= POS_IOU)
    bkg = ~loc & ~cls & ~dupe & (best_any <= BG_IOU)
    kind = np.select([loc, cls, dupe, bkg], [LOC, CLS, DUPE, BKG], BOTH)
    target = np.where(loc, j, np.where(cls, k, -1))
    free, gt_cat = np.r_[~taken, False], np.r_[t.gt_cat, -1]  # index -1 (no object) reads the appended entry
    obj = np.where(free[target], target, -1)
    fix_cat = np.where(cls, gt_cat[k], t.det_cat[o.dets])
    wrong = top & ~matched & ~ignored
    objects = np.flatnonzero((t.gt_image < t.n_listed) & ~t.gt_crowd)
    fixable = np.zeros(len(t.gt_cat), bool)
    fixable[obj[wrong & (obj >= 0)]] = True
    lost = objects[~taken[objects] & ~fixable[objects]]
    # errors in TIDE's order: per image, its detections by score, then its missed objects
    rows = o.dets[wrong]
    order = np.lexsort((np.r_[np.flatnonzero(wrong), lost], np.r_[np.zeros(len(rows), int), np.ones(len(lost), int)],
                        np.r_[t.det_image[rows], t.gt_image[lost]]))
    b_kind = np.r_[kind[wrong], np.full(len(lost), MISS)][order]
    b_obj = np.r_[obj[wrong], lost][order]
    b_score = np.r_[t.det_score[rows], np.zeros(len(lost))][order]
    best = np.zeros(len(b_kind), bool)
    fix = np.flatnonzero(np.isin(b_kind, (CLS, LOC)) & (b_obj >= 0))
    if len(fix):  # the highest-scoring fixable error of each object (the first among equals)
        fix = fix[np.lexsort((fix, -b_score[fix], b_obj[fix]))]
        best[fix[np.r_[True, b_obj[fix][1:] != b_obj[fix][:-1]]]] = True
    hits = o.dets[top & matched]
    return _Breakdown(t.det_cat[hits], t.det_score[hits], b_kind, np.r_[t.det_cat[rows], t.gt_cat[lost]][order],
                      b_score, b_obj, np.r_[fix_cat[wrong], t.gt_cat[lost]][order], best,
                      Counter(t.gt_cat[objects].tolist()), Counter(t.gt_cat[objects[~taken[objects]]].tolist()))


def _ap_with(b: _Breakdown, fixed: int | None = None, scores_fixed: bool = False, found_missed: bool = False) -> float:
    """AP50 with the errors of type ``fixed`` corrected (or TIDE's two special corrections)."""
    positives = Counter(b.positives)
    keep = b.kind != MISS
    cat, tp = b.cat.copy(), np.zeros(len(b.kind), bool)
    if fixed is not None:
        if fixed == MISS:
            positives.subtract(Counter(b.cat[b.kind == MISS].tolist()))
        to_tp = (b.kind == fixed) & np.isin(b.kind, (CLS, LOC)) & (b.obj >= 0) & b.best
        keep = (keep & (b.kind != fixed)) | to_tp
        cat[to_tp], tp[to_tp] = b.fix_cat[to_tp], True
    if found_missed:
        positives.subtract(b.missed)
    n_tp = len(b.tp_cat)
    if scores_fixed:  # every false positive below every true one: a new order
        return tide_ap(np.r_[cat[keep], b.tp_cat], np.r_[np.zeros(int(keep.sum())), np.ones(n_tp)],
                       np.r_[tp[keep], np.ones(n_tp, bool)], positives)
    points = b.by_score[np.r_[keep, np.ones(n_tp, bool)][b.by_score]]  # the kept ones, still by score
    return tide_ap(np.r_[cat, b.tp_cat][points], np.r_[b.score, b.tp_score][points],
                   np.r_[tp, np.ones(n_tp, bool)][points], positives, by_score=True)


def error_breakdown(gt: dict, dets: list[dict], max_dets: int = 100, shared: Overlaps | None = None) -> dict[str, Any]:
    """eval.json's ``errors``: AP50 as TIDE computes it, the dAP of each error type, the two special dAPs
    (perfect precision, perfect recall) and how many detections or objects fell in each type (bbox IoU).
    ``shared``: the overlaps of ``gt`` and ``dets``, when the caller made them for the other rules too."""
    b = _classify(shared or Overlaps.of(gt, dets), max_dets)
    base = _ap_with(b)
    return {
        "method": "TIDE (Bolya et al. 2020), bbox", "pos_iou": POS_IOU, "bg_iou": BG_IOU, "ap50": round(base, 6),
        "dAP": {name: round(max(_ap_with(b, k) - base, 0.0), 6) for k, name in enumerate(MAIN)},
        "special": {"false_positives": round(_ap_with(b, scores_fixed=True) - base, 6),
                    "false_negatives": round(_ap_with(b, found_missed=True) - base, 6)},
        "counts": {name: int((b.kind == k).sum()) for k, name in enumerate(MAIN)}}


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
