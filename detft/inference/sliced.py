"""Sliced inference: small objects in large images, for every family and for ONNX graphs alike.

A model resizes its input to a few hundred pixels, so a 20 px object in a 4,000 px photo shrinks to 2 px and is
gone. :class:`SlicedPredictor` wraps any :class:`Predictor`: it cuts each image into overlapping windows of
``size`` pixels (the last row and column flush with the border, as SAHI cuts them), predicts the windows in
batches at the model's own resolution, shifts every detection back into the image, optionally adds a pass over
the whole image for large objects, and merges what the overlaps found twice (:func:`greedy_merge`: SAHI's
GREEDYNMM matching, with only the pieces a window border cut unioned into one outline, boxes and masks, so an
object cut by window borders comes back whole and a low-scoring box never grows an object over its neighbours)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import DetftError
from ..operations.tiling import check_windows, windows
from .detections import Detections
from .predictor import Predictor


@dataclass(frozen=True)
class Slicing:
    size: int
    overlap: float = 0.2
    full: bool = False  # also predict the whole image, for objects larger than a window
    batch: int = 8  # windows per call of the model
    merge_threshold: float = 0.5  # intersection over the smaller box at which two detections are one object

    def __post_init__(self) -> None:
        check_windows(self.size, self.overlap, "--slice")
        if not 0 < self.merge_threshold <= 1:
            raise DetftError(f"merge threshold {self.merge_threshold}: above 0, at most 1")
        if self.batch < 1:
            raise DetftError(f"slice batch {self.batch}: at least 1")


EDGE = 1 / 64  # of the window's side (8 px of 512, at least 1 px): a box this close to a window border that is not
# the image's was cut by it. A model's box edge lands a few px off the border it was cut at: at 1 px, most pieces of
# a bus longer than a window passed as whole detections and never joined (bus AP 0.29 -> 0.62, bench/RESULTS.md)


def _ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller of the two areas, of boxes ``a`` and ``b`` pairwise (either may be one box)."""
    w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    area = lambda r: np.maximum(r[..., 2] - r[..., 0], 0) * np.maximum(r[..., 3] - r[..., 1], 0)  # noqa: E731
    smaller = np.minimum(area(a), area(b))
    return np.where(smaller > 0, w * h / np.maximum(smaller, 1e-9), 0.0)


SIZE_RATIO = 0.1  # an object absorbs by IOS only a detection at least this fraction of its area, or the reverse


def _area(r: np.ndarray) -> np.ndarray:
    return np.maximum(r[..., 2] - r[..., 0], 0) * np.maximum(r[..., 3] - r[..., 1], 0)


def _absorbs(outline: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Which ``boxes`` are the object ``outline`` is: SAHI's IOS test, between boxes of comparable size. IOS alone
    lets a large box absorb every smaller box inside it: one false detection spanning three buses swallowed the
    three (bus AP 0.62 -> 0.41 with --slice-full on bench/small_objects.py --mix; 0.96 with this test)."""
    a, b = _area(outline), _area(boxes)
    comparable = np.minimum(a, b) >= SIZE_RATIO * np.maximum(a, b)
    return (_ios(outline, boxes) >= threshold) & comparable


class Group(NamedTuple):
    members: list[int]  # detections that are this object, the highest-scoring first
    shape: list[int]  # those whose boxes (and masks) make its outline


def cut_by_window(boxes: np.ndarray, windows: np.ndarray, width: int, height: int, edge: float = EDGE) -> np.ndarray:
    """Which detections touch a border of their window that is not the image's (within ``edge`` of the window's
    side, at least 1 px): pieces of an object the cut went through. A detection away from every cut is whole as
    far as its window can tell."""
    x0, y0, x1, y1 = (windows[:, k] for k in range(4))
    ex, ey = np.maximum(edge * (x1 - x0), 1.0), np.maximum(edge * (y1 - y0), 1.0)
    return (((boxes[:, 0] <= x0 + ex) & (x0 > 0)) | ((boxes[:, 1] <= y0 + ey) & (y0 > 0))
            | ((boxes[:, 2] >= x1 - ex) & (x1 < width)) | ((boxes[:, 3] >= y1 - ey) & (y1 < height)))


def _pieces_meet(piece: int, others: np.ndarray, boxes: np.ndarray, windows: np.ndarray, threshold: float) -> np.ndarray:
    """Which ``others`` (pieces too) are the same object as ``piece``, judged where both windows saw the image:
    two halves of an object cut by a border overlap by no more than the windows do, too little for IOS on the
    whole boxes, but clipped to the windows' common area they coincide."""
    lo = np.maximum(windows[others, :2], windows[piece, :2])
    hi = np.minimum(windows[others, 2:], windows[piece, 2:])
    clip = lambda b: np.concatenate([np.maximum(b[..., :2], lo), np.minimum(b[..., 2:], hi)], axis=-1)  # noqa: E731
    return _ios(clip(boxes[piece]), clip(boxes[others])) >= threshold


class BoxIndex:
    """Boxes bucketed by the grid cells they cover, so a group looks only at the detections around it: at
    evaluation confidence a large image's windows give 100,000 detections, and comparing each group with every
    other detection made the merge quadratic (minutes for one 20000 px strip). Cells are about one typical box
    wide; a box covering more than ``MAX_CELLS`` cells is kept aside and offered to every query."""

    MAX_CELLS = 64

    def __init__(self, boxes: np.ndarray):
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) if len(boxes) else np.ones(1)
        self.cell = max(float(np.median(sides)), 1.0)
        self.everything = np.arange(len(boxes))
        lo, hi = self._cells(boxes)
        span = (hi - lo + 1).prod(axis=1)
        self.large = np.flatnonzero(span > self.MAX_CELLS)
        buckets: dict[tuple[int, int], list[int]] = {}
        small = np.flatnonzero(span <= self.MAX_CELLS)
        for i, (x0, y0), (x1, y1) in zip(small.tolist(), lo[small].tolist(), hi[small].tolist()):
            for gx in range(x0, x1 + 1):
                for gy in range(y0, y1 + 1):
                    buckets.setdefault((gx, gy), []).append(i)
        self.buckets = {k: np.array(v) for k, v in buckets.items()}

    def _cells(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.atleast_2d(boxes)
        return np.floor(boxes[:, :2] / self.cell).astype(np.int64), np.floor(boxes[:, 2:] / self.cell).astype(np.int64)

    def near(self, box: np.ndarray) -> np.ndarray:
        """Every box that may overlap ``box`` (a superset: those sharing a cell with it, and the large ones)."""
        lo, hi = (c[0] for c in self._cells(box))
        if (hi - lo + 1).prod() > len(self.buckets):  # a query wider than the index: every box is a candidate
            return self.everything
        parts = [self.large] + [self.buckets[(gx, gy)] for gx in range(lo[0], hi[0] + 1)
                                for gy in range(lo[1], hi[1] + 1) if (gx, gy) in self.buckets]
        return np.unique(np.concatenate(parts))


def greedy_merge(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float,
                 cut: np.ndarray | None = None, windows: np.ndarray | None = None) -> list[Group]:
    """The objects among detections from overlapping windows, in falling score. Per class, by falling score,
    every detection whose intersection over the smaller box (SAHI's IOS) with the object reaches ``threshold``
    joins it (SAHI's GREEDYNMM); a piece cut by a window border (``cut``) also joins a piece of the object that
    it meets where both their ``windows`` saw the image. Unlike GREEDYNMM, only pieces make the outline: they are
    unioned (and the object, grown, is matched again, so every piece of it joins), while a whole detection is the
    outline itself and any other whole detection it absorbs is only suppressed, as NMS would. Unioning every
    member, as GREEDYNMM does, lets the low-scoring boxes an evaluation keeps (conf 0.001) grow each object over
    its neighbours: on dense small objects it costs most of the AP (bench/RESULTS.md).

    Both tests need the boxes to overlap, so each group is compared only with the detections a :class:`BoxIndex`
    finds around its outline and its pieces, in score order: the same groups as comparing with all of them."""
    cut = np.zeros(len(scores), bool) if cut is None else cut
    order = np.argsort(-scores, kind="stable")
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    index = BoxIndex(boxes)
    taken = np.zeros(len(scores), bool)

    def met_by(piece: int) -> np.ndarray:
        """The pieces of ``piece``'s class that it meets where both windows saw the image (taken or not: this
        depends on the two detections alone, so it is worked out once per piece)."""
        around = index.near(boxes[piece])
        around = around[cut[around] & (labels[around] == labels[piece]) & (around != piece)]
        return around[_pieces_meet(piece, around, boxes, windows, threshold)] if len(around) else around

    groups = []
    for i in order.tolist():
        if taken[i]:
            continue
        members, union = [i], boxes[i].copy()
        taken[i] = True
        new_pieces = [i] if windows is not None and cut[i] else []
        met = np.zeros(0, np.int64)  # what the group's pieces meet
        while True:
            met = np.concatenate([met, *(met_by(m) for m in new_pieces)])
            around = index.near(union)
            around = around[~taken[around] & (labels[around] == labels[i])]
            close = around[_absorbs(union, boxes[around], threshold)] if len(around) else around
            joining = np.unique(np.concatenate([close, met[~taken[met]]]))
            if not len(joining):
                break
            joining = joining[np.argsort(position[joining], kind="stable")]
            taken[joining] = True
            members += joining.tolist()
            new_pieces = [int(j) for j in joining if cut[j]] if windows is not None else []
            grown = _union(boxes, _shape(members, cut))
            if np.array_equal(grown, union):
                break  # only suppressed: nothing more can join an outline that did not change
            union = grown
        groups.append(Group(members, _shape(members, cut)))
    return groups


def _shape(members: list[int], cut: np.ndarray) -> list[int]:
    """The members that make a group's outline: its best whole detection, else all its pieces."""
    whole = [j for j in members if not cut[j]]
    return whole[:1] if whole else [j for j in members if cut[j]]


def _union(boxes: np.ndarray, which: list[int]) -> np.ndarray:
    return np.array([boxes[which, 0].min(), boxes[which, 1].min(), boxes[which, 2].max(), boxes[which, 3].max()],
                    np.float32)


class SlicedPredictor:
    """Any predictor run window by window over each image (see the module docstring)."""

    def __init__(self, inner: Predictor, slicing: Slicing):
        self.inner, self.slicing = inner, slicing
        self.labels, self.masks = inner.labels, inner.masks
        self.max_dets = 100

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.inner.set_thresholds(conf, max_dets)  # per window: a window holds at most what an image may
        self.max_dets = max_dets

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        return [self._one(image) for image in images]

    def _one(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        cuts = windows(width, height, self.slicing.size, self.slicing.overlap)
        found: list[tuple[Detections, tuple[int, int, int, int]]] = []  # detections in window coordinates, window
        for k in range(0, len(cuts), self.slicing.batch):
            chunk = cuts[k:k + self.slicing.batch]
            crops = [np.ascontiguousarray(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in chunk]
            found += list(zip(self.inner.predict(crops), chunk))
        if self.slicing.full and len(cuts) > 1:
            found.append((self.inner.predict([image])[0], (0, 0, width, height)))
        return self._merged(found, height, width)

    def _merged(self, found: list[tuple[Detections, tuple[int, int, int, int]]], height: int, width: int) -> Detections:
        if not any(len(d) for d, _ in found):
            return Detections.empty(self.masks, height, width)
        boxes = np.concatenate([d.boxes + np.array(w[:2] * 2, np.float32) for d, w in found])
        scores = np.concatenate([d.scores for d, _ in found])
        labels = np.concatenate([d.labels for d, _ in found])
        wins = np.array([w for d, w in found for _ in range(len(d))], np.float32).reshape(-1, 4)
        origin = [(d, i, w[0], w[1]) for d, w in found for i in range(len(d))]  # where each mask lives
        groups = greedy_merge(boxes, scores, labels, self.slicing.merge_threshold,
                              cut_by_window(boxes, wins, width, height), wins)[: self.max_dets]
        merged = np.array([_union(boxes, g.shape) for g in groups], np.float32).reshape(-1, 4)
        masks = None
        if self.masks:
            masks = np.zeros((len(groups), height, width), bool)
            for n, group in enumerate(groups):
                for j in group.shape:
                    d, i, x0, y0 = origin[j]
                    if d.masks is not None:
                        part = d.masks[i]
                        masks[n, y0:y0 + part.shape[0], x0:x0 + part.shape[1]] |= part
        first = [g.members[0] for g in groups]
        return Detections(merged, scores[first].astype(np.float32), labels[first].astype(np.int64), masks)
