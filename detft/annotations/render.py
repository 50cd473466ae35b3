"""The one renderer: ground truth in ``detft inspect`` previews and detections in ``predict``/``video``
are drawn by the same code, so a class has the same colour everywhere."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

MASK_ALPHA = 0.45


def colour(key: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a class or track id (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((key * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(image: np.ndarray, boxes: np.ndarray, keys: Sequence[int], texts: Sequence[str],
         masks: np.ndarray | Sequence[np.ndarray | None] | None = None, bgr: bool = False,
         fps: float | None = None, colours: Sequence[tuple[int, int, int]] | None = None) -> np.ndarray:
    """A copy of ``image`` (RGB, or BGR when ``bgr``) with boxes, translucent masks and labels drawn; ``keys``
    pick the colours (class or track ids) unless ``colours`` (RGB, one per box) sets them, as the worst-image
    grid does to tell ground truth from predictions. A mask of another size than the image is skipped."""
    out = image.copy()
    rgb = list(colours) if colours is not None else [colour(int(k)) for k in keys]
    paint = [c[::-1] if bgr else c for c in rgb]
    if masks is not None and len(boxes):
        overlay, blend = out.copy(), np.zeros(out.shape[:2], bool)
        for mask, c in zip(masks, paint):
            if mask is not None and mask.shape == out.shape[:2]:
                overlay[mask] = c
                blend |= mask
        out[blend] = cv2.addWeighted(out, 1 - MASK_ALPHA, overlay, MASK_ALPHA, 0)[blend]
    thickness = max(1, round(min(out.shape[:2]) / 300))
    scale = max(0.4, min(out.shape[:2]) / 900)
    for box, c, text in zip(boxes, paint, texts):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), c, thickness, cv2.LINE_AA)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = y1 - th - base if y1 - th - base >= 0 else y1
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), c, -1)
        cv2.putText(out, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, int(24 * scale / 0.4 * 0.6) + 8), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 255, 0), thickness, cv2.LINE_AA)
    return out
