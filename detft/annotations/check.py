"""Validation and repair of a Dataset, with every change written to the Report.

What is repaired: boxes and polygon vertices outside the image are clipped to it, image sizes are
taken from the file (as displayed, EXIF orientation applied) when the annotations say otherwise.
What is dropped: degenerate boxes, polygons with no area, masks of the wrong size, annotations of
unknown classes, duplicate annotations and images, and images that are missing or cannot be read
(with all their annotations, counted in the report)."""

from __future__ import annotations

import math
from dataclasses import replace

from ..errors import DetftError
from ..formats.base import canonical_split
from ..util.output import safe_component
from .dataset import Annotation, Dataset, ImageRecord
from .geometry import polygons_area
from .images import probe, probe_bytes
from .report import Report

DUPLICATE_TOL = 1e-6


def check(dataset: Dataset, report: Report, *, min_size: float = 2.0, verify_images: bool = True) -> Dataset:
    """Return ``dataset`` with bad images and annotations removed and fixable ones fixed.

    ``min_size`` is the smallest box side in pixels worth keeping; ``verify_images=False`` trusts the
    declared image sizes and skips opening files (for annotation-only work)."""
    known = {c.id for c in dataset.categories}
    _check_splits(dataset, report)
    seen_images: dict[str, ImageRecord] = {}
    kept: list[ImageRecord] = []
    for image in dataset.images:
        key = str(image.path.resolve()) if image.path else image.file_name
        n = len(image.annotations)
        if (first := seen_images.get(key)) is not None:  # both places named: the second may be another file's
            report.add("dropped", "duplicate_image", image.where(),
                       f"{image.file_name} is listed more than once: already by {first.where()}", n)
            continue
        seen_images[key] = image
        if verify_images and not _check_file(image, report):
            continue
        if image.width <= 0 or image.height <= 0:
            report.add("dropped", "unknown_size", image.where(), "image size unknown and not verified", n)
            continue
        image.annotations = _check_annotations(image, known, min_size, report)
        kept.append(image)
    dataset.images = kept
    return dataset


# keys of a YOLO data.yaml: a split of that name would overwrite them
RESERVED_SPLITS = {"names", "nc", "path", "task", "download", "yaml_file", "channels"}


def _check_splits(dataset: Dataset, report: Report) -> None:
    """Split names come from the data (CVAT subsets, CSV columns, YAML keys, Roboflow folders) and become
    folder and file names: ``valid``/``Validation``/``Train`` take the names ultralytics requires (``val``,
    ``train``), and any name is made safe here, once, for every writer, each unsafe one reported."""
    renamed: dict[str, str] = {}
    for image in dataset.images:
        if image.split is None:
            continue
        if image.split not in renamed:
            named = canonical_split(image.split)
            try:
                safe = safe_component(named, "split name")
            except DetftError:
                safe = "unnamed"
            if safe in RESERVED_SPLITS:
                safe += "_split"
            renamed[image.split] = safe
            if safe != named:
                report.add("renamed", "unsafe_split_name", image.where(), f"split {image.split!r} written as {safe!r}")
        image.split = renamed[image.split]


def _check_file(image: ImageRecord, report: Report) -> bool:
    n = len(image.annotations)
    if image.path is None and image.data is None:
        report.add("dropped", "missing_image", image.where(), f"image file {image.file_name!r} not found", n)
        return False
    info = probe(image.path) if image.path is not None else probe_bytes(image.data)
    if not info.ok:
        kind = "missing_image" if info.error == "missing" else "unreadable_image"
        report.add("dropped", kind, image.where(), f"{image.path or 'the embedded image'}: {info.error}", n)
        return False
    if info.frames > 1:
        report.add("warning", "multi_frame_image", image.where(), f"{image.path}: {info.frames} frames; the first is used")
    declared = (image.width, image.height)
    actual = (info.width, info.height)
    if declared != (0, 0) and declared != actual:
        why = ("declared size is the stored pixel size; EXIF orientation rotates it"
               if info.exif_rotated and declared == actual[::-1] else "declared size differs from the file")
        report.add("fixed", "image_size", image.where(), f"{why}: {declared[0]}x{declared[1]} -> {actual[0]}x{actual[1]}")
    image.width, image.height = actual
    return True


def _check_annotations(image: ImageRecord, known: set[int], min_size: float, report: Report) -> list[Annotation]:
    W, H = image.width, image.height
    out: list[Annotation] = []
    kept = _Kept()
    for ann in image.annotations:
        where = ann.where()
        if ann.category_id not in known:
            report.add("dropped", "unknown_class", where, f"category id {ann.category_id} is not defined", 1)
            continue
        if not all(math.isfinite(v) for v in ann.bbox):
            report.add("dropped", "bad_bbox", where, f"non-finite box {ann.bbox}", 1)
            continue
        if ann.rle is not None and list(ann.rle["size"]) != [H, W]:
            report.add("dropped", "mask_size", where, f"RLE size {ann.rle['size']} but image is {H}x{W}", 1)
            continue
        if ann.polygons:
            ann = _clip_polygons(ann, W, H, report)
            if ann is None:
                continue
        x0, y0, x1, y1 = ann.bbox
        clipped = (min(max(x0, 0.0), W), min(max(y0, 0.0), H), min(max(x1, 0.0), W), min(max(y1, 0.0), H))
        if clipped[2] - clipped[0] < min_size or clipped[3] - clipped[1] < min_size:
            report.add("dropped", "degenerate_box", where,
                       f"box {_fmt(ann.bbox)} is under {min_size:g} px after clipping to {W}x{H}", 1)
            continue
        if clipped != ann.bbox:
            report.add("clipped", "box_outside_image", where, f"{_fmt(ann.bbox)} -> {_fmt(clipped)} ({W}x{H})")
            ann = replace(ann, bbox=clipped)
        if kept.has_twin(ann):
            report.add("dropped", "duplicate_annotation", where, f"same class and box {_fmt(ann.bbox)} as another", 1)
            continue
        kept.add(ann)
        out.append(ann)
    return out


class _Kept:
    """An image's annotations kept so far, by class and the pixel their box's top-left corner falls in, so the
    duplicate check compares an object with the few that could be its twin, not with every other one (cell
    counts, shelves and aerial scenes hold thousands of objects: 10,000 boxes were 50 million comparisons). Exact:
    a twin's corner lies within DUPLICATE_TOL (< 1 px) of this one's, so in one of at most 2 x 2 cells."""

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int, int], list[Annotation]] = {}

    def has_twin(self, ann: Annotation) -> bool:
        x, y = ann.bbox[0], ann.bbox[1]
        cells = {(ann.category_id, math.floor(u), math.floor(v))
                 for u in (x - DUPLICATE_TOL, x + DUPLICATE_TOL) for v in (y - DUPLICATE_TOL, y + DUPLICATE_TOL)}
        return any(_same(ann, o) for c in cells for o in self.cells.get(c, ()))

    def add(self, ann: Annotation) -> None:
        self.cells.setdefault((ann.category_id, math.floor(ann.bbox[0]), math.floor(ann.bbox[1])), []).append(ann)


def _clip_polygons(ann: Annotation, W: int, H: int, report: Report) -> Annotation | None:
    parts, changed = [], False
    for p in ann.polygons or []:
        q = [min(max(v, 0.0), W if i % 2 == 0 else H) for i, v in enumerate(p)]
        changed |= q != p
        if len(set(zip(q[0::2], q[1::2]))) < 3:
            continue
        if _shoelace(q) > 0:
            parts.append(q)
        elif polygons_area([q], H, W) > 0:  # a bow-tie: its signed halves cancel, yet it covers pixels
            report.add("warning", "self_intersecting_polygon", ann.where(), "polygon crosses itself; kept as drawn")
            parts.append(q)
    if not parts:
        report.add("dropped", "degenerate_polygon", ann.where(), "no polygon part with area inside the image", 1)
        return None
    if changed:
        report.add("clipped", "polygon_outside_image", ann.where(), f"vertices clamped to the {W}x{H} image")
    if len(parts) != len(ann.polygons or []):
        report.add("fixed", "degenerate_polygon_part", ann.where(), f"{len(ann.polygons or []) - len(parts)} empty part(s) removed")
    xs = [v for p in parts for v in p[0::2]]
    ys = [v for p in parts for v in p[1::2]]
    box = ann.bbox
    # keep a box that lies inside the polygon's extent (COCO boxes may be tighter); else re-derive
    if changed:
        box = (max(box[0], min(xs)), max(box[1], min(ys)), min(box[2], max(xs)), min(box[3], max(ys)))
    return replace(ann, polygons=parts, bbox=box)


def _shoelace(p: list[float]) -> float:
    xs, ys = p[0::2], p[1::2]
    return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2


def _same(a: Annotation, b: Annotation) -> bool:
    return (a.category_id == b.category_id and a.iscrowd == b.iscrowd and a.polygons == b.polygons
            and a.rle == b.rle and all(abs(u - v) <= DUPLICATE_TOL for u, v in zip(a.bbox, b.bbox)))


def _fmt(box: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in box) + ")"
