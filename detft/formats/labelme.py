"""LabelMe JSON, one file per image: rectangles, polygons and circles (turned into polygons).

Shapes sharing a ``group_id`` and label form one instance with several parts, as LabelMe users
draw occluded objects. Points, lines and linestrips are not objects and are reported as dropped."""

from __future__ import annotations

import math
from pathlib import Path

from ..dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..geometry import ELLIPSE_VERTICES, ellipse_polygon, polygons_bbox
from ..report import Report
from ..progress import progress
from .base import (CategoryIndex, box_annotation, declared_size, list_field, load_json, locate_image, point_list,
                   relative_name, text_field)

NAME = "labelme"


def json_files(src: Path) -> list[Path]:
    return [src] if src.is_file() else sorted(src.rglob("*.json"))


def is_labelme(data: object) -> bool:
    return isinstance(data, dict) and "shapes" in data and "imagePath" in data


def read(src: Path, report: Report, classes: list[str] | None = None) -> Dataset:
    root = src if src.is_dir() else src.parent
    cats = CategoryIndex(classes)
    images = []
    for f in progress(json_files(src), "reading LabelMe", unit="file"):
        data = load_json(f)
        if not is_labelme(data):
            if src.is_file():
                raise FormatError(f, "not a LabelMe file: needs 'shapes' and 'imagePath'")
            shapes = data.get("shapes") if isinstance(data, dict) else None
            if isinstance(shapes, list):
                report.add("dropped", "no_image_path", str(f), f"{len(shapes)} shape(s) but no 'imagePath'", len(shapes))
            else:
                report.add("warning", "not_labelme", str(f), "JSON without 'shapes' and 'imagePath': skipped")
            continue
        images.append(_image(f, data, root, cats, report))
    if not images:
        raise FormatError(src, "no LabelMe JSON files found")
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def _shape_polygon(shape: dict, pts: list[float]) -> list[float] | None:
    kind = shape.get("shape_type") or "polygon"
    if kind == "polygon" and len(pts) >= 6:
        return pts
    if kind == "circle" and len(pts) == 4:
        r = math.hypot(pts[2] - pts[0], pts[3] - pts[1])
        return ellipse_polygon(pts[0], pts[1], r, r, n=ELLIPSE_VERTICES)
    return None


def _image(f: Path, data: dict, root: Path, cats: CategoryIndex, report: Report) -> ImageRecord:
    name = text_field(data["imagePath"])
    if not name:
        raise FormatError(f, f"'imagePath' must be the image's file name, not {data['imagePath']!r:.40}")
    shapes = list_field(data, "shapes", f)
    path = locate_image(name, [f.parent, root, root / "images"])
    width, height = declared_size(data.get("imageWidth"), data.get("imageHeight"), report, str(f))
    image = ImageRecord(relative_name(path, root, name) if path else name, width, height,
                        path=path, source=SourceRef(str(f)))
    groups: dict[tuple[str, object], Annotation] = {}
    for i, shape in enumerate(shapes):
        where = str(SourceRef(str(f), index=i))
        if not isinstance(shape, dict):
            report.add("dropped", "bad_shape", where, f"a shape must be an object, not {type(shape).__name__}", 1)
            continue
        kind = shape.get("shape_type") or "polygon"
        pts = point_list(shape.get("points"))
        if pts is None or not pts:
            report.add("dropped", "bad_points", where, "points are missing or not finite numbers", 1)
            continue
        if kind not in ("rectangle", "polygon", "circle"):
            report.add("dropped", "unsupported_shape", where, f"shape_type {kind!r} is not an object outline", 1)
            continue
        label = text_field(shape.get("label")) or ""
        cat = cats.id_for(label, report, where)
        if cat is None:
            continue
        flags = shape.get("flags")
        attrs = {k: v for k, v in flags.items() if v} if isinstance(flags, dict) else {}
        src_ref = SourceRef(str(f), index=i)
        if kind == "rectangle":
            if len(pts) != 4:
                report.add("dropped", "bad_points", where, f"rectangle needs 2 points, has {len(pts) // 2}", 1)
                continue
            ann = box_annotation(cat, *pts, attributes=attrs, source=src_ref)
        else:
            poly = _shape_polygon(shape, pts)
            if poly is None:
                report.add("dropped", "bad_points", where, f"{kind} with {len(pts) // 2} points", 1)
                continue
            if kind == "circle":
                report.add("converted", "circle_to_polygon", where, f"circle as a {ELLIPSE_VERTICES}-gon")
            ann = Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=src_ref)
        group = shape.get("group_id")
        group = group if isinstance(group, (int, str)) else None
        key = (label, group)
        if group is not None and key in groups and ann.polygons and groups[key].polygons:
            first = groups[key]
            first.polygons = first.polygons + ann.polygons
            first.bbox = polygons_bbox(first.polygons)
            continue
        if group is not None:
            groups[key] = ann
        image.annotations.append(ann)
    return image
