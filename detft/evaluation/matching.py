"""Detections against ground truth in one vectorised pass, for everything eval.json holds besides COCO's numbers
(TIDE's error types, the F1 thresholds and the worst images, the confusion matrix): the boxes as arrays, every
(detection, object) pair of an image with its IoU computed once, and the greedy matching each of them runs (highest
score first, each detection taking its most overlapping free object) done by a loop over the few detections that
have a candidate at all. Each rule keeps its own definition (which detections, which objects, class-aware or not,
crowd regions); only the work is shared. Equal to the per-image loops it replaced to the last bit
(``tests/eval_reference.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cocoeval import result_box


@dataclass
class Table:
    """Detections and ground-truth objects as arrays. ``image`` is a slot: the image's position in ``gt["images"]``
    for the ``n_listed`` images the ground truth lists, further slots for ids only the detections or objects name;
    detection rows keep the order of the results file."""

    n_listed: int
    n_images: int
    image_ids: list  # slot -> image id
    det_image: np.ndarray
    det_cat: np.ndarray
    det_score: np.ndarray
    det_box: np.ndarray  # (N, 4) xywh
    gt_image: np.ndarray
    gt_cat: np.ndarray
    gt_box: np.ndarray  # (M, 4) xywh
    gt_crowd: np.ndarray  # (M,) bool

    @classmethod
    def of(cls, gt: dict, dets: list[dict]) -> Table:
        slot = {im["id"]: k for k, im in enumerate(gt["images"])}
        n_listed = len(slot)
        anns = gt["annotations"]
        det_image = [slot.setdefault(d["image_id"], len(slot)) for d in dets]
        gt_image = [slot.setdefault(a["image_id"], len(slot)) for a in anns]
        return cls(
            n_listed, len(slot), list(slot),
            np.array(det_image, np.int64),
            np.array([d["category_id"] for d in dets], np.int64),
            np.array([d["score"] for d in dets], float),
            np.array([d["bbox"] if "bbox" in d else result_box(d) for d in dets], float).reshape(-1, 4),
            np.array(gt_image, np.int64),
            np.array([a["category_id"] for a in anns], np.int64),
            np.array([a["bbox"] for a in anns], float).reshape(-1, 4),
            np.array([bool(a.get("iscrowd", 0)) for a in anns], bool))

    def ranked(self, keep: np.ndarray, max_per_image: int | None = None, listed: bool = False) -> np.ndarray:
        """Indices of the kept detections (of listed images only, with ``listed``), by image, then score
        descending (ties in file order), at most ``max_per_image`` per image."""
        rows = np.flatnonzero(keep & (self.det_image < self.n_listed) if listed else keep)
        rows = rows[np.lexsort((rows, -self.det_score[rows], self.det_image[rows]))]
        if max_per_image is not None and len(rows):
            image = self.det_image[rows]
            start = np.r_[0, np.flatnonzero(image[1:] != image[:-1]) + 1]
            rank = np.arange(len(rows)) - np.repeat(start, np.diff(np.r_[start, len(rows)]))
            rows = rows[rank < max_per_image]
        return rows


@dataclass
class Pairs:
    """Every (detection, object) of one image, grouped by detection (in the order given) and, within one, by the
    object's row (the ground truth's order): ``start``/``count`` say where each detection's pairs lie."""

    det: np.ndarray
    gt: np.ndarray
    iou: np.ndarray
    start: np.ndarray  # (len(dets),) first pair of each detection
    count: np.ndarray  # (len(dets),) its number of pairs
    inter: np.ndarray
    det_area: np.ndarray

    def spread(self, per_det: np.ndarray) -> np.ndarray:
        """A value per detection as a value per pair."""
        return np.repeat(per_det, self.count)

    def crowd_overlap(self) -> np.ndarray:
        """COCO's overlap with a crowd region: the intersection over the detection's own area."""
        return np.where(self.det_area > 0, self.inter / np.maximum(self.det_area, 1e-12), 0.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of xywh boxes ``a`` and ``b`` (broadcast over their leading axes), with the intersections and ``a``'s
    areas it was made of: the one formula of every overlap eval.json reports."""
    iw = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = a[..., 2] * a[..., 3]
    union = area + b[..., 2] * b[..., 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0), inter, area


def iou_xywh(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU of xywh boxes a (N,4) and b (M,4); where ``crowd`` (M,) is set, COCO's crowd overlap instead (the
    intersection over a's own area: how much of a detection the crowd region covers)."""
    iou, inter, area = box_iou(a[:, None, :], b[None, :, :])
    if crowd is None:
        return iou
    area = np.broadcast_to(area, inter.shape)
    return np.where(crowd[None, :], np.where(area > 0, inter / np.maximum(area, 1e-12), 0.0), iou)


def pairs(t: Table, dets: np.ndarray, objects: np.ndarray) -> Pairs:
    """The pairs of ``dets`` (indices, any order) with ``objects`` (indices, ascending) in the same image."""
    per_image = np.bincount(t.gt_image[objects], minlength=t.n_images)
    first = np.cumsum(per_image) - per_image
    by_image = objects[np.argsort(t.gt_image[objects], kind="stable")]
    count = per_image[t.det_image[dets]]
    start = np.cumsum(count) - count
    det = np.repeat(dets, count)
    offset = np.arange(len(det)) - np.repeat(start, count)
    gt = by_image[np.repeat(first[t.det_image[dets]], count) + offset] if len(det) else np.zeros(0, np.int64)
    iou, inter, area = box_iou(t.det_box[det], t.gt_box[gt])
    return Pairs(det, gt, iou, start, count, inter, area)


@dataclass
class Overlaps:
    """What TIDE, the thresholds and the confusion matrix share: the detections by image and score (``dets``,
    rows of ``table``) and every pair of them with an object of their image."""

    table: Table
    dets: np.ndarray
    pairs: Pairs

    @classmethod
    def of(cls, gt: dict, dets: list[dict]) -> Overlaps:
        t = Table.of(gt, dets)
        ranked = t.ranked(np.ones(len(t.det_cat), bool))
        return cls(t, ranked, pairs(t, ranked, np.arange(len(t.gt_cat))))

    @property
    def same_class(self) -> np.ndarray:
        return self.table.det_cat[self.pairs.det] == self.table.gt_cat[self.pairs.gt]

    @property
    def crowd(self) -> np.ndarray:
        return self.table.gt_crowd[self.pairs.gt]


def greedy(p: Pairs, candidate: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Greedy matching: ``p``'s detections in their order, each taking, of its pairs where ``candidate`` holds, the
    free object of the highest IoU (the first in the ground truth's order among equals); ``taken`` (per object row
    of the table, updated) marks objects already gone. Returns each detection's object row, -1 for none. Only the
    detections with a candidate are looped over."""
    matched = np.full(len(p.start), -1, np.int64)
    owner = np.repeat(np.arange(len(p.start)), p.count)
    rows = np.flatnonzero(candidate)
    rows = rows[np.lexsort((p.gt[rows], -p.iou[rows], owner[rows]))]  # each detection's candidates, best first
    owners = owner[rows]
    has = np.unique(owners)
    lows, highs = np.searchsorted(owners, has).tolist(), np.searchsorted(owners, has, side="right").tolist()
    objects = p.gt[rows].tolist()
    for det, lo, hi in zip(has.tolist(), lows, highs):
        for g in objects[lo:hi]:
            if not taken[g]:
                taken[g] = True
                matched[det] = g
                break
    return matched


def segment_max(values: np.ndarray, p: Pairs, empty: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per detection, the largest of ``values`` over its pairs and the object row of the first pair reaching it
    (``np.argmax``'s rule); ``empty`` and -1 for a detection with no pairs."""
    n = len(p.start)
    best = np.full(n, empty, float)
    where = np.full(n, -1, np.int64)
    has = p.count > 0
    if not has.any():
        return best, where
    starts = p.start[has]
    best[has] = np.maximum.reduceat(values, starts)
    hit = values == np.repeat(best, p.count)
    position = np.where(hit, np.arange(len(values)), len(values))
    first = np.minimum.reduceat(position, starts)
    where[has] = p.gt[first]
    return best, where
