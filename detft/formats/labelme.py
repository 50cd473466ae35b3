"""LabelMe JSON, one file per image: rectangles, polygons and circles (turned into polygons), read and written.

Shapes sharing a ``group_id`` and label form one instance with several parts, as LabelMe users
draw occluded objects. A linestrip whose end returns to its start is the outline it was drawn as and is
read as a polygon (reported); points, lines and open linestrips are not objects and are reported as dropped."""

from __future__ import annotations

import base64
import binascii
import json
import math
from pathlib import Path, PurePosixPath

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..annotations.geometry import ELLIPSE_VERTICES, ellipse_polygon, polygons_bbox
from ..annotations.images import probe
from ..util.output import atomic_write_text, inside
from ..annotations.report import Report
from ..util.progress import progress
from .base import (CategoryIndex, box_annotation, dataset_top, declared_size, join_group_part, list_field, load_json,
                   locate_image, outline_of_polyline, point_list, relative_name, sibling_image_dirs, text_field)
from .layout import ImagePlacer
from .pairing import ImageIndex, complete, split_of_path
from .shapes import SCORE, other_attributes, outlines, read_score, report_unkept, score_of, folder_per_split

NAME = "labelme"
# labels labelme's own converters (labelme2coco, labelme2voc) treat as "not an object": skipped, not lost
IGNORED_LABELS = ("__ignore__", "_background_")


def json_files(src: Path) -> list[Path]:
    return [src] if src.is_file() else sorted(src.rglob("*.json"))


def is_labelme(data: object) -> bool:
    return isinstance(data, dict) and "shapes" in data and "imagePath" in data


def read(src: Path, report: Report, classes: list[str] | None = None, images_dir: Path | None = None) -> Dataset:
    root = src if src.is_dir() else src.parent
    cats = CategoryIndex(classes)
    index = ImageIndex(root) if src.is_dir() else None
    top = dataset_top(src)
    images = []
    for f in progress(json_files(src), "reading LabelMe", unit="file"):
        data = load_json(f)
        if not is_labelme(data):
            if src.is_file():
                raise FormatError(f, "not a LabelMe file: needs 'shapes' and 'imagePath'")
            shapes = data.get("shapes") if isinstance(data, dict) else None
            if isinstance(shapes, list):
                report.holds(f, shapes=len(shapes))
                report.add("dropped", "no_image_path", str(f), f"{len(shapes)} shape(s) but no 'imagePath'", len(shapes))
            else:
                report.add("warning", "not_labelme", str(f), "JSON without 'shapes' and 'imagePath': skipped")
            continue
        images.append(_image(f, data, root, top, cats, report, images_dir, index))
    if not images:
        raise FormatError(src, "no LabelMe JSON files found")
    images = complete(index, images, report)
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def _ignored(shape: object) -> bool:
    return isinstance(shape, dict) and text_field(shape.get("label")) in IGNORED_LABELS


def _embedded(text: str, f: Path) -> bytes:
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f, f"'imageData' is not base64 ({e})") from None


def _shape_polygon(kind: str, pts: list[float]) -> list[float] | None:
    if kind == "polygon" and len(pts) >= 6:
        return pts
    if kind == "circle" and len(pts) == 4:
        r = math.hypot(pts[2] - pts[0], pts[3] - pts[1])
        return ellipse_polygon(pts[0], pts[1], r, r, n=ELLIPSE_VERTICES)
    return None


def _image(f: Path, data: dict, root: Path, top: Path, cats: CategoryIndex, report: Report,
           images_dir: Path | None, index: ImageIndex | None = None) -> ImageRecord:
    name = text_field(data["imagePath"])
    if not name:
        raise FormatError(f, f"'imagePath' must be the image's file name, not {data['imagePath']!r:.40}")
    shapes = list_field(data, "shapes", f)
    path = locate_image(name, ([images_dir] if images_dir else []) + [f.parent, root, root / "images",
                                                                       *sibling_image_dirs(f.parent, top)], report, str(f))
    if index is not None:
        if path is not None:
            index.claim(path)
        else:  # an imagePath from the labelling machine (C:\\Users\\...), stale or without its extension
            path, _ = index.find(f, name)
    width, height = declared_size(data.get("imageWidth"), data.get("imageHeight"), report, str(f))
    embedded = data["imageData"] if isinstance(data.get("imageData"), str) and data["imageData"] else None
    if embedded and path is not None and not (found := probe(path)).ok:  # labelme itself prefers imageData
        report.add("fixed", "image_from_imageData", str(f), f"{path} is {found.error}: the image embedded in "
                   "the JSON (imageData) is used instead, as labelme does")
        path = None
    split = split_of_path(f, root) or (split_of_path(path, root) if path is not None else None)
    image = ImageRecord(relative_name(path, root, name) if path else name, width, height,
                        path=path, split=split, source=SourceRef(str(f)), origin=str(f))
    if path is None and embedded:
        image.data = _embedded(embedded, f)
        image.file_name = name.replace("\\", "/").rsplit("/", 1)[-1]
        report.note(f"images not found beside their LabelMe files are read from the JSON's imageData (e.g. {f.name})")
    ignored = [s for s in shapes if _ignored(s)]
    if ignored:
        report.note(f"shapes labelled {' or '.join(IGNORED_LABELS)} are skipped, as labelme2coco does")
    report.holds(f, shapes=len(shapes) - len(ignored))
    groups: dict[tuple[str, object], Annotation] = {}
    for i, shape in enumerate(shapes):
        where = str(SourceRef(str(f), index=i))
        if _ignored(shape):
            continue
        if not isinstance(shape, dict):
            report.add("dropped", "bad_shape", where, f"a shape must be an object, not {type(shape).__name__}", 1)
            continue
        kind = shape.get("shape_type") or "polygon"
        pts = point_list(shape.get("points"))
        if pts is None or not pts:
            report.add("dropped", "bad_points", where, "points are missing or not finite numbers", 1)
            continue
        if kind == "linestrip" and (outline := outline_of_polyline(pts, report, where)) is not None:
            kind, pts = "polygon", outline
        if kind not in ("rectangle", "polygon", "circle"):
            report.add("dropped", "unsupported_shape", where, f"shape_type {kind!r} is not an object outline", 1)
            continue
        label = text_field(shape.get("label")) or ""
        cat = cats.id_for(label, report, where)
        if cat is None:
            continue
        flags = shape.get("flags")
        attrs = {k: v for k, v in flags.items() if v} if isinstance(flags, dict) else {}
        if (score := read_score(shape.get(SCORE))) is not None:  # a model's pre-label (detft, X-AnyLabeling)
            attrs[SCORE] = score
        src_ref = SourceRef(str(f), index=i)
        if kind == "rectangle":
            if len(pts) != 4:
                report.add("dropped", "bad_points", where, f"rectangle needs 2 points, has {len(pts) // 2}", 1)
                continue
            ann = box_annotation(cat, *pts, attributes=attrs, source=src_ref)
        else:
            poly = _shape_polygon(kind, pts)
            if poly is None:
                report.add("dropped", "bad_points", where, f"{kind} with {len(pts) // 2} points", 1)
                continue
            if kind == "circle":
                report.add("converted", "circle_to_polygon", where, f"circle as a {ELLIPSE_VERTICES}-gon")
            ann = Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=src_ref)
        group = shape.get("group_id")
        if isinstance(group, (int, str)) and join_group_part(groups, (label, group), ann):
            continue
        image.annotations.append(ann)
    return image


LABELME_VERSION = "5.5.0"  # the file layout written: labelme 5.x, which also keeps the extra "score" key


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink") -> list[Path]:
    """One LabelMe JSON beside each image (``imagePath`` its bare name, ``imageData`` null, as labelme saves
    with "save image data" off): boxes as rectangles, polygons as polygons, the parts of one instance sharing a
    ``group_id``, a score as the shape's ``score`` (labelme keeps keys it does not know; X-AnyLabeling reads it)."""
    names = {c.id: c.name for c in dataset.categories}
    placer = ImagePlacer(out, image_mode, report, per_image_files=True)
    written = []
    for split, folder in folder_per_split(dataset).items():
        for im in progress(dataset.images_in(split), f"writing LabelMe {split}", unit="img"):
            rel = PurePosixPath(placer.place(im, folder))
            shapes, group = [], 0
            for ann in im.annotations:
                parts = outlines(ann, report, "LabelMe")
                group_id = None
                if parts is not None and len(parts) > 1:
                    group += 1
                    group_id = group
                flags = {k: bool(v) for k, v in other_attributes(ann).items() if v in (0, 1)}  # true/false only
                report_unkept(ann, set(flags), report, "LabelMe")
                common = {"label": names[ann.category_id], "group_id": group_id, "description": "", "flags": flags}
                if (score := score_of(ann)) is not None:
                    common[SCORE] = round(score, 4)
                if parts is None:
                    x0, y0, x1, y1 = ann.bbox
                    shapes.append({**common, "points": [[x0, y0], [x1, y1]], "shape_type": "rectangle"})
                for part in parts or ():
                    shapes.append({**common, "points": [list(p) for p in zip(part[0::2], part[1::2])],
                                   "shape_type": "polygon"})
            doc = {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": rel.name,
                   "imageData": None, "imageHeight": im.height, "imageWidth": im.width}
            path = inside(out, PurePosixPath(folder) / rel.with_suffix(".json"))
            atomic_write_text(path, json.dumps(doc, ensure_ascii=False, indent=2))
            written.append(path)
    return written
