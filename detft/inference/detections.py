"""What every Predictor returns for one image, whatever the architecture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Boxes are absolute xyxy pixels in the displayed image; ``labels`` are the Dataset's category
    ids (not a model's internal indices); ``masks``, when the model segments, are (N, H, W) bool."""

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64
    masks: np.ndarray | None = None
    track_ids: np.ndarray | None = None  # (N,) int64 when a tracker ran

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, with_masks: bool = False, height: int = 0, width: int = 0) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   np.zeros((0, height, width), bool) if with_masks else None)

    def filter(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep],
                          None if self.masks is None else self.masks[keep],
                          None if self.track_ids is None else self.track_ids[keep])
