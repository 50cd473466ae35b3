"""What every Predictor returns for one image, whatever the architecture, and its three outputs:
COCO results (evaluation), JSON lines (predict/video) and a drawing (the shared renderer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..annotations.geometry import encode_masks


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

    def _rles(self) -> list[dict] | None:
        return encode_masks(self.masks) if self.masks is not None and len(self) else None

    def to_coco(self, image_id: int, category_ids: dict[int, int] | None = None) -> list[dict[str, Any]]:
        """COCO results (xywh boxes, RLE masks); ``category_ids`` maps these labels to the file's ids."""
        rles = self._rles()
        out = []
        for k in range(len(self)):
            x0, y0, x1, y1 = (float(v) for v in self.boxes[k])
            label = int(self.labels[k])
            d: dict[str, Any] = {"image_id": image_id, "category_id": category_ids[label] if category_ids else label,
                                 "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(self.scores[k])}
            if rles is not None:
                d["segmentation"] = rles[k]
            out.append(d)
        return out

    def to_jsonl(self, names: dict[int, str]) -> list[dict[str, Any]]:
        """JSON-ready detections for one line of predictions.jsonl: xyxy box, score, category id and name,
        track id, mask as COCO RLE."""
        rles = self._rles()
        records = []
        for i in range(len(self)):
            r: dict[str, Any] = {"box": [round(float(v), 2) for v in self.boxes[i]], "score": round(float(self.scores[i]), 4),
                                 "category_id": int(self.labels[i]), "category": names.get(int(self.labels[i]), "")}
            if self.track_ids is not None:
                r["track_id"] = int(self.track_ids[i])
            if rles is not None:
                r["segmentation"] = rles[i]
            records.append(r)
        return records

    def draw(self, image: np.ndarray, names: dict[int, str], bgr: bool = True, fps: float | None = None) -> np.ndarray:
        """A copy of ``image`` (BGR frames by default, RGB with ``bgr=False``) with these detections drawn;
        colours follow the class, or the track when a tracker ran."""
        from ..annotations.render import draw

        keys = self.track_ids if self.track_ids is not None else self.labels
        texts = [f"{names.get(int(label), label)} {score:.2f}" for label, score in zip(self.labels, self.scores)]
        if self.track_ids is not None:
            texts = [f"#{int(t)} {text}" for t, text in zip(self.track_ids, texts)]
        return draw(image, self.boxes, keys, texts, self.masks, bgr=bgr, fps=fps)
