"""Drawing detections onto frames: boxes, translucent masks, labels with scores, track ids, FPS."""

from __future__ import annotations

import cv2
import numpy as np

from .detections import Detections

MASK_ALPHA = 0.45


def colour(key: int) -> tuple[int, int, int]:
    """A stable, well-spread BGR colour for a class or track id (golden-ratio hue steps)."""
    hue = int((key * 0.618033988749895 % 1.0) * 180)
    bgr = cv2.cvtColor(np.array([[[hue, 200, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw(image: np.ndarray, dets: Detections, names: dict[int, str], fps: float | None = None) -> np.ndarray:
    """A copy of BGR ``image`` with ``dets`` drawn (category ids named by ``names``)."""
    out = image.copy()
    keys = dets.track_ids if dets.track_ids is not None else dets.labels
    if dets.masks is not None and len(dets):
        overlay = out.copy()
        for mask, key in zip(dets.masks, keys):
            overlay[mask] = colour(int(key))
        blend = dets.masks.any(axis=0)
        out[blend] = cv2.addWeighted(out, 1 - MASK_ALPHA, overlay, MASK_ALPHA, 0)[blend]
    thickness = max(1, round(min(out.shape[:2]) / 300))
    scale = max(0.4, min(out.shape[:2]) / 900)
    for i, (box, score, label, key) in enumerate(zip(dets.boxes, dets.scores, dets.labels, keys)):
        c = colour(int(key))
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), c, thickness, cv2.LINE_AA)
        text = f"{names.get(int(label), label)} {score:.2f}"
        if dets.track_ids is not None:
            text = f"#{int(dets.track_ids[i])} " + text
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - th - base if y1 - th - base >= 0 else y1
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), c, -1)
        cv2.putText(out, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, int(24 * scale / 0.4 * 0.6) + 8), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 255, 0), max(1, thickness), cv2.LINE_AA)
    return out
