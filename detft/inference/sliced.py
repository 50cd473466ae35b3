"""Sliced inference: small objects in large images, for every family and for ONNX graphs alike.

A model resizes its input to a few hundred pixels, so a 20 px object in a 4,000 px photo shrinks to 2 px and is
gone. :class:`SlicedPredictor` wraps any :class:`Predictor`: it cuts each image into overlapping windows of
``size`` pixels (the last row and column flush with the border, as SAHI cuts them), predicts the windows in
batches at the model's own resolution, shifts every detection back into the image, optionally adds a pass over
the whole image for large objects, and merges what the overlaps found twice. The merge is SAHI's GREEDYNMM:
per class, by falling score, every detection whose intersection-over-smaller-area with a kept one (here: with
the union of what it has absorbed) reaches ``merge_threshold`` joins it (the union of the boxes, the kept score,
the union of the masks), so an object cut by window borders comes back whole rather than in pieces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DetftError
from ..tiling import check_windows, windows
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


def _ios(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over the smaller of the two areas, of ``box`` with each of ``others``."""
    w = np.clip(np.minimum(others[:, 2], box[2]) - np.maximum(others[:, 0], box[0]), 0, None)
    h = np.clip(np.minimum(others[:, 3], box[3]) - np.maximum(others[:, 1], box[1]), 0, None)
    area = np.maximum(others[:, 2] - others[:, 0], 0) * np.maximum(others[:, 3] - others[:, 1], 0)
    smaller = np.minimum(area, max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
    return np.where(smaller > 0, w * h / np.maximum(smaller, 1e-9), 0.0)


def greedy_merge(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of detection indices that are one object, the first index of each group its highest-scoring
    member, groups in falling score. SAHI's GREEDYNMM (IOS metric), except that a group is matched by the union
    of what it has taken so far: the pieces of an object cut by several windows all join it, whichever piece
    happens to score highest."""
    order = np.argsort(-scores, kind="stable")
    taken = np.zeros(len(scores), bool)
    groups = []
    for i in order:
        if taken[i]:
            continue
        members, union = [int(i)], boxes[i].copy()
        taken[i] = True
        while True:
            rest = order[~taken[order]]
            rest = rest[labels[rest] == labels[i]]
            joining = rest[_ios(union, boxes[rest]) >= threshold] if len(rest) else rest
            if not len(joining):
                break
            taken[joining] = True
            members += [int(j) for j in joining]
            union = np.array([boxes[members, 0].min(), boxes[members, 1].min(), boxes[members, 2].max(),
                              boxes[members, 3].max()], np.float32)
        groups.append(members)
    return groups


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
        found: list[tuple[Detections, int, int]] = []  # detections in window coordinates and the window's origin
        for k in range(0, len(cuts), self.slicing.batch):
            chunk = cuts[k:k + self.slicing.batch]
            crops = [np.ascontiguousarray(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in chunk]
            found += [(d, x0, y0) for d, (x0, y0, _, _) in zip(self.inner.predict(crops), chunk)]
        if self.slicing.full and len(cuts) > 1:
            found.append((self.inner.predict([image])[0], 0, 0))
        return self._merged(found, height, width)

    def _merged(self, found: list[tuple[Detections, int, int]], height: int, width: int) -> Detections:
        if not any(len(d) for d, _, _ in found):
            return Detections.empty(self.masks, height, width)
        boxes = np.concatenate([d.boxes + np.array([x0, y0, x0, y0], np.float32) for d, x0, y0 in found])
        scores = np.concatenate([d.scores for d, _, _ in found])
        labels = np.concatenate([d.labels for d, _, _ in found])
        origin = [(d, i, x0, y0) for d, x0, y0 in found for i in range(len(d))]  # where each mask lives
        groups = greedy_merge(boxes, scores, labels, self.slicing.merge_threshold)[: self.max_dets]
        merged = np.array([[boxes[g, 0].min(), boxes[g, 1].min(), boxes[g, 2].max(), boxes[g, 3].max()] for g in groups],
                          np.float32)
        masks = None
        if self.masks:
            masks = np.zeros((len(groups), height, width), bool)
            for n, group in enumerate(groups):
                for j in group:
                    d, i, x0, y0 = origin[j]
                    if d.masks is not None:
                        part = d.masks[i]
                        masks[n, y0:y0 + part.shape[0], x0:x0 + part.shape[1]] |= part
        first = [g[0] for g in groups]
        return Detections(merged, scores[first].astype(np.float32), labels[first].astype(np.int64), masks)
