"""Tiled datasets: large images cut into overlapping tiles, with their annotations cut exactly.

A drone or microscope frame of 4,000 px resized to a 640 px input shrinks its 20 px objects to 3 px. Training on
tiles keeps them at their own size. Each tile is a window onto its source image (``ImageRecord.window``; the
pixels are cut when the image is read or written, never held in memory), named ``<stem>__x<X>_y<Y><suffix>`` so
that anything predicted on it maps back to the source. Boxes are clipped to the tile and kept when at least
``min_visibility`` of the object lies inside it; polygons are clipped exactly (Sutherland-Hodgman against the
tile's rectangle), masks cropped; every cut object and every piece left out is in the report, and an object
that no tile keeps is a loss. Tiles without objects are kept as negatives up to ``negatives`` times the tiles
with objects (seeded)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

import numpy as np

from ..annotations.dataset import Annotation, Dataset, ImageRecord
from ..annotations.geometry import decode_mask, encode_mask, polygons_bbox
from ..annotations.report import Report
from ..errors import DetftError
from ..util.bounds import NONNEGATIVE, OVERLAP, SIZE, VISIBILITY

TILE_NAME = re.compile(r"^(?P<stem>.+)__x(?P<x>\d+)_y(?P<y>\d+)$")


@dataclass(frozen=True)
class Tiling:
    size: int
    overlap: float = 0.2
    min_visibility: float = 0.3  # the fraction of an object's box a tile must hold to keep it
    negatives: float = 0.1  # tiles without objects kept, per tile with objects
    seed: int = 0

    def __post_init__(self) -> None:
        check_windows(self.size, self.overlap, "--tile")
        VISIBILITY.check("--tile-min-visibility", self.min_visibility)
        NONNEGATIVE.check("--tile-negatives", self.negatives)


def check_windows(size: int, overlap: float, flag: str) -> None:
    """Named errors for windows that cannot cut an image: too small to hold an object, or not advancing."""
    SIZE.check(flag, size)
    OVERLAP.check(f"{flag}-overlap", overlap)


def _starts(length: int, size: int, step: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, step))
    return starts + [length - size] if starts[-1] != length - size else starts


def windows(width: int, height: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """The ``(x0, y0, x1, y1)`` windows of ``size`` px covering a ``width`` x ``height`` image, row by row, the last
    row and column flush with the border (as SAHI cuts); an image no larger than a window is one window."""
    step = max(1, size - int(size * overlap))  # the overlap in whole pixels, rounded down, as SAHI counts it
    return [(x, y, min(x + size, width), min(y + size, height))
            for y in _starts(height, size, step) for x in _starts(width, size, step)]


def tile_name(file_name: str, x0: int, y0: int) -> str:
    path = PurePosixPath(file_name)
    return str(path.with_name(f"{path.stem}__x{x0}_y{y0}{path.suffix}"))


def tile_origin(file_name: str) -> tuple[str, int, int] | None:
    """``(source stem, x, y)`` of a tile's name (``frame__x640_y0.jpg`` -> ``("frame", 640, 0)``); None for a name
    that is not a tile's. Detections on the tile plus ``(x, y)`` are in the source image."""
    m = TILE_NAME.match(PurePosixPath(file_name).stem)
    return (m["stem"], int(m["x"]), int(m["y"])) if m else None


def clip_polygon(points: list[float], x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """The part of a polygon inside a rectangle (Sutherland-Hodgman, one rectangle edge at a time; exact for
    the area that lies inside, convex or not)."""
    pts = list(zip(points[0::2], points[1::2]))
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not pts:
            break
        inside = (lambda p: p[axis] >= bound) if keep_above else (lambda p: p[axis] <= bound)
        out = []
        for k, cur in enumerate(pts):
            prev = pts[k - 1]
            if inside(cur) != inside(prev):
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = (prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1]))
                out.append((bound, cross[1]) if axis == 0 else (cross[0], bound))
            if inside(cur):
                out.append(cur)
        pts = out
    return [v for p in pts for v in p] if len(pts) >= 3 else []


def _area(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def cut(ann: Annotation, window: tuple[int, int, int, int]) -> tuple[Annotation | None, float]:
    """``ann`` as it lies in ``window`` (in the tile's own coordinates), and the fraction of its box inside."""
    x0, y0, x1, y1 = window
    b = ann.bbox
    inside = (max(b[0], x0), max(b[1], y0), min(b[2], x1), min(b[3], y1))
    visible = _area(inside) / _area(b) if _area(b) > 0 else 0.0
    if visible <= 0:
        return None, 0.0
    polygons, rle, box = None, None, inside
    if ann.polygons:
        parts = [clip_polygon(p, x0, y0, x1, y1) for p in ann.polygons]
        polygons = [[v - (x0 if k % 2 == 0 else y0) for k, v in enumerate(p)] for p in parts if p]
        if not polygons:
            return None, 0.0
        bx0, by0, bx1, by1 = polygons_bbox(polygons)
        box = (bx0 + x0, by0 + y0, bx1 + x0, by1 + y0)
    elif ann.rle is not None:
        crop = decode_mask(ann.rle)[y0:y1, x0:x1]
        if not crop.any():
            return None, 0.0
        rle = encode_mask(np.ascontiguousarray(crop))
    shifted = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
    return replace(ann, bbox=shifted, polygons=polygons, rle=rle), visible


def tile_dataset(ds: Dataset, tiling: Tiling, report: Report) -> Dataset:
    """Every image of ``ds`` (sizes known: after the checker) as tiles; see the module docstring."""
    rng = random.Random(tiling.seed)
    tiles: list[ImageRecord] = []
    negatives: list[ImageRecord] = []
    kept_somewhere: set[int] = set()
    cut_pieces = dropped_pieces = 0
    for im in ds.images:
        if not im.width or not im.height:
            raise DetftError(f"{im.where()}: its size is unknown, so it cannot be tiled")
        for window in windows(im.width, im.height, tiling.size, tiling.overlap):
            x0, y0, x1, y1 = window
            tile = replace(im, file_name=tile_name(im.file_name, x0, y0), width=x1 - x0, height=y1 - y0,
                           annotations=[], window=window if window != (0, 0, im.width, im.height) else None)
            for ann in im.annotations:
                piece, visible = cut(ann, window)
                if piece is None:
                    continue
                if visible + 1e-9 < tiling.min_visibility:
                    dropped_pieces += 1
                    continue
                cut_pieces += visible < 1 - 1e-9
                kept_somewhere.add(id(ann))
                tile.annotations.append(piece)
            (tiles if tile.annotations else negatives).append(tile)
    lost = [a for im in ds.images for a in im.annotations if id(a) not in kept_somewhere]
    for ann in lost:
        report.add("dropped", "cut_by_tiles", ann.where(), f"no {tiling.size} px tile holds {tiling.min_visibility:.0%} "
                   "of this object", 1)
    if cut_pieces:
        report.add("clipped", "cut_by_tile", str(ds.root), f"{cut_pieces} object piece(s) clipped at a tile border and "
                   f"kept (at least {tiling.min_visibility:.0%} of the object inside)")
    if dropped_pieces:
        report.add("warning", "tile_piece_left_out", str(ds.root), f"{dropped_pieces} piece(s) under "
                   f"{tiling.min_visibility:.0%} of their object left out of a tile (each object is whole elsewhere, "
                   "or counted as lost above)")
    keep = min(len(negatives), int(round(tiling.negatives * len(tiles))))
    chosen = rng.sample(negatives, keep) if keep < len(negatives) else negatives
    report.note(f"tiled {len(ds.images)} images into {len(tiles)} tiles with objects and {len(chosen)} of "
                f"{len(negatives)} without ({tiling.size} px, overlap {tiling.overlap}); tile names end in __x<X>_y<Y>")
    return Dataset(tiles + chosen, ds.categories, root=ds.root, format=ds.format)
