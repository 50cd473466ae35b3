"""Shape arithmetic shared by the format modules: boxes of polygons and RLEs, RLE encoding,
mask <-> polygon, and curved shapes (circle, ellipse) turned into polygons.

RLEs are kept in one canonical form everywhere in detft: ``{"size": [h, w], "counts": str}``
(COCO compressed RLE as text, exactly what COCO JSON stores).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .dataset import Box

ELLIPSE_VERTICES = 32
# a polyline whose end lies this close to its start (a fraction of its larger side) was drawn as an outline: real
# VIA exports hold outlines whose end stops up to 1.6% short of the start; a line drawn along an object is far more open
NEARLY_CLOSED = 0.02


def polygons_bbox(polygons: list[list[float]]) -> Box:
    xs = [x for p in polygons for x in p[0::2]]
    ys = [y for p in polygons for y in p[1::2]]
    return (min(xs), min(ys), max(xs), max(ys))


def canonical_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Compressed-RLE-as-text from either an uncompressed (list counts) or compressed RLE.

    Raises ValueError for malformed input so callers can name the file and object."""
    size = rle.get("size")
    counts = rle.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise ValueError(f"RLE size must be [height, width], got {size!r}")
    h, w = int(size[0]), int(size[1])
    if isinstance(counts, list):
        if sum(counts) != h * w:
            raise ValueError(f"uncompressed RLE counts sum to {sum(counts)}, expected {h}*{w}={h * w}")
        enc = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    elif isinstance(counts, (str, bytes)):
        enc = {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
        mask_utils.decode(enc)  # validates: pycocotools raises ValueError on invalid counts
    else:
        raise ValueError(f"RLE counts must be a list or a string, got {type(counts).__name__}")
    c = enc["counts"]
    return {"size": [h, w], "counts": c.decode() if isinstance(c, bytes) else c}


def _coco(rle: dict[str, Any]) -> dict[str, Any]:
    return {"size": rle["size"], "counts": rle["counts"].encode()}


def rle_bbox(rle: dict[str, Any]) -> Box:
    x, y, w, h = (float(v) for v in mask_utils.toBbox(_coco(rle)))
    return (x, y, x + w, y + h)


def rle_area(rle: dict[str, Any]) -> float:
    return float(mask_utils.area(_coco(rle)))


def polygons_area(polygons: list[list[float]], height: int, width: int) -> float:
    rles = mask_utils.frPyObjects(polygons, height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    return mask_utils.decode(_coco(rle))


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    return encode_masks(mask[None])[0]


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """COCO compressed RLE (JSON-ready: ``counts`` as text) for (N, H, W) masks, encoded in one call:
    the one encoder for datasets, COCO results and JSONL alike."""
    if not len(masks):
        return []
    encoded = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(e["size"][0]), int(e["size"][1])], "counts": e["counts"].decode()} for e in encoded]


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    rles = mask_utils.frPyObjects(polygons, height, width)
    return mask_utils.decode(mask_utils.merge(rles))


def mask_to_polygons(mask: np.ndarray, min_vertices: int = 3) -> list[list[float]]:
    """Outer contours of a binary mask as flat polygons (holes are not representable in YOLO)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= min_vertices:
            polys.append([float(v) for v in c.reshape(-1, 2).flatten()])
    return polys


def polyline_outline(points: list[float]) -> tuple[list[float], float] | None:
    """The polygon a polyline outlines and the gap between its ends (as a fraction of its larger side), when the
    gap is at most :data:`NEARLY_CLOSED`; None for an open line or fewer than 3 distinct vertices. A closing
    vertex that repeats the first is dropped."""
    if len(points) < 6 or len(points) % 2:
        return None
    xs, ys = points[0::2], points[1::2]
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    if extent <= 0:
        return None
    gap = math.hypot(xs[-1] - xs[0], ys[-1] - ys[0]) / extent
    polygon = points[:-2] if gap == 0 else list(points)
    return (polygon, gap) if gap <= NEARLY_CLOSED and len(polygon) >= 6 else None


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, theta: float = 0.0,
                    n: int = ELLIPSE_VERTICES) -> list[float]:
    """Polygon with ``n`` vertices on an ellipse rotated by ``theta`` radians."""
    ct, st = math.cos(theta), math.sin(theta)
    out: list[float] = []
    for k in range(n):
        a = 2 * math.pi * k / n
        ex, ey = rx * math.cos(a), ry * math.sin(a)
        out += [cx + ex * ct - ey * st, cy + ex * st + ey * ct]
    return out


def rotated_box_polygon(x0: float, y0: float, x1: float, y1: float, degrees: float,
                        pivot: tuple[float, float] | None = None) -> list[float]:
    """Corners of an axis box rotated clockwise on screen by ``degrees`` about its centre (CVAT's ``rotation``) or
    about ``pivot`` (Label Studio turns a rectangle about its top-left corner)."""
    px, py = pivot if pivot is not None else ((x0 + x1) / 2, (y0 + y1) / 2)
    t = math.radians(degrees)
    ct, st = math.cos(t), math.sin(t)
    out: list[float] = []
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        dx, dy = x - px, y - py
        out += [px + dx * ct - dy * st, py + dx * st + dy * ct]
    return out


def merge_polygons(polygons: list[list[float]]) -> list[float]:
    """Join an instance's parts into one polygon, as YOLO-seg lines hold one polygon per instance.

    Parts are chained through their closest vertex pairs and the path walks back along the same
    bridges, which adds zero-area seams only, so the rasterised mask is the union of the parts
    (the approach of ultralytics' ``merge_multi_segment``)."""
    if len(polygons) == 1:
        return list(polygons[0])
    segs = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    links: list[tuple[int, int]] = [(0, 0)] * len(segs)  # (index into seg i-1, index into seg i)
    for i in range(1, len(segs)):
        d = ((segs[i - 1][:, None, :] - segs[i][None, :, :]) ** 2).sum(-1)
        a, b = np.unravel_index(int(np.argmin(d)), d.shape)
        links[i] = (int(a), int(b))
    out: list[np.ndarray] = []
    for rnd in range(2):  # forward then backward along the chain
        if rnd == 0:
            for i, s in enumerate(segs):
                if i == 0:
                    s = np.roll(s, -links[1][0], axis=0) if len(segs) > 1 else s
                    out.append(s[:1])
                    continue
                # rotate seg i so its entry vertex is first; exit vertex (towards i+1) is visited
                s = np.roll(s, -links[i][1], axis=0)
                if i == len(segs) - 1:
                    out.append(np.concatenate([s, s[:1]]))
                else:
                    ex = (links[i + 1][0] - links[i][1]) % len(s)
                    out.append(s[: ex + 1])
        else:
            for i in range(len(segs) - 1, -1, -1):
                s = segs[i]
                if i == len(segs) - 1:
                    continue
                if i == 0:
                    s = np.roll(s, -links[1][0], axis=0)
                    out.append(np.concatenate([s, s[:1]]))
                else:
                    s = np.roll(s, -links[i][1], axis=0)
                    ex = (links[i + 1][0] - links[i][1]) % len(s)
                    out.append(np.concatenate([s[ex:], s[:1]]))
    return [float(v) for v in np.concatenate(out).flatten()]
