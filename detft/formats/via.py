"""VGG Image Annotator (VIA) 1.x/2.x JSON: rect, polygon, circle and ellipse regions (curves become
polygons), and polylines that return to their start (outlines drawn with the line tool, read as polygons).
The class is read from a region attribute (``class_attr``, default: the first one)."""

from __future__ import annotations

from pathlib import Path

from ..dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..geometry import ELLIPSE_VERTICES, ellipse_polygon, polygons_bbox
from ..images import probe
from ..report import Report
from .base import (CategoryIndex, canonical_split, finite, load_json, locate_image, outline_of_polyline, sibling_image_dirs,
                   text_field)

NAME = "via"


def entries(data: object) -> dict | None:
    """The per-image records of a VIA project or export, or None when this is not VIA."""
    if isinstance(data, dict) and isinstance(data.get("_via_img_metadata"), dict):
        data = data["_via_img_metadata"]
    if isinstance(data, dict) and data and all(
            isinstance(v, dict) and "filename" in v and "regions" in v for v in data.values()):
        return data
    return None


GENERIC_STEMS = ("via_region_data", "via_project", "via_export_json", "via_export", "annotations", "regions")


def default_class_name(f: Path) -> str:
    """The one class of a file whose regions carry no attributes: the file's stem, or, for VIA's generic
    export names, the dataset folder (``balloon/train/via_region_data.json`` -> ``balloon``)."""
    if not f.stem.lower().startswith(GENERIC_STEMS):
        return f.stem
    folder = f.parent
    if canonical_split(folder.name) in ("train", "val", "test") and folder.parent != folder:
        folder = folder.parent
    return folder.name or "object"


def read(src: Path, report: Report, classes: list[str] | None = None, class_attr: str | None = None,
         images_dir: Path | None = None, default_class: str | None = None) -> Dataset:
    f = src if src.is_file() else next((p for p in sorted(src.glob("*.json")) if entries(load_json(p))), None)
    if f is None:
        raise FormatError(src, "no VIA JSON found")
    recs = entries(load_json(f))
    if recs is None:
        raise FormatError(f, "not a VIA file: expected '_via_img_metadata' or records with 'filename' and 'regions'")
    root = f.parent
    search = ([images_dir] if images_dir else []) + [root, root / "images", *sibling_image_dirs(root)]
    cats = CategoryIndex(classes)
    if default_class is None and not any(_attributes(rec) for rec in recs.values() if isinstance(rec, dict)):
        default_class = default_class_name(f)
        report.note(f"{f}: no region has attributes; every region is class {default_class!r} "
                    "(name it with --via-default-class)")
    images = []
    for key, rec in recs.items():
        name = text_field(rec["filename"])
        regions = rec["regions"]
        regions = list(regions.values()) if isinstance(regions, dict) else regions  # VIA 1.x used a dict
        if not name or not isinstance(regions, list):
            raise FormatError(f, "a VIA record needs a 'filename' and a list of 'regions'", obj=repr(key))
        path = locate_image(name, search)
        info = probe(path) if path else None
        image = ImageRecord(name, info.width if info else 0, info.height if info else 0, path=path,
                            source=SourceRef(f"{f} [{key!r}]"), origin=str(f))
        report.holds(f, shapes=len(regions))
        for j, region in enumerate(regions):
            where = SourceRef(f"{f} [{key!r}]", index=j)
            if not isinstance(region, dict):
                report.add("dropped", "bad_region", str(where), f"a region must be an object, not {type(region).__name__}", 1)
                continue
            ann = _region(region, cats, class_attr, default_class, report, where)
            if ann is not None:
                image.annotations.append(ann)
        images.append(image)
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def _attributes(rec: dict) -> bool:
    """Whether any region of a record has a non-empty attribute (a class can be read from it)."""
    regions = rec.get("regions")
    regions = list(regions.values()) if isinstance(regions, dict) else regions if isinstance(regions, list) else []
    return any(isinstance(r, dict) and r.get("region_attributes") for r in regions)


def _class_name(attrs: object, class_attr: str | None) -> str:
    if not attrs or not isinstance(attrs, dict):
        return ""
    value = attrs.get(class_attr, "") if class_attr else next(iter(attrs.values()))
    if isinstance(value, dict):  # checkbox attribute: {"cat": true}
        picked = [k for k, v in value.items() if v]
        return picked[0] if len(picked) == 1 else ""
    return text_field(value) or ""


def _region(region: dict, cats: CategoryIndex, class_attr: str | None, default_class: str | None, report: Report,
            where: SourceRef) -> Annotation | None:
    shape = region.get("shape_attributes")
    shape = shape if isinstance(shape, dict) else {}
    kind = shape.get("name")
    ref = str(where)
    outline = None
    if kind == "polyline":
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        pairs = finite([v for xy in zip(xs, ys) for v in xy]) if isinstance(xs, list) and isinstance(ys, list) \
            and len(xs) == len(ys) else None
        if (outline := outline_of_polyline(pairs, report, ref)) is not None:
            kind = "polygon"
    if kind not in ("rect", "polygon", "polyline_closed", "circle", "ellipse"):
        report.add("dropped", "unsupported_shape", ref, f"region shape {kind!r} is not an object outline", 1)
        return None
    name = _class_name(region.get("region_attributes") or {}, class_attr) or default_class or ""
    if not name:
        report.add("dropped", "unlabelled_region", ref, "the region has no class attribute"
                   + (f" {class_attr!r}" if class_attr else ""), 1)
        return None
    cat = cats.id_for(name, report, ref)
    if cat is None:
        return None
    if kind == "rect":
        vals = finite([shape.get(k) for k in ("x", "y", "width", "height")])
        if vals is None:
            report.add("dropped", "bad_bbox", ref, "rect needs numeric x, y, width, height", 1)
            return None
        x, y, w, h = vals
        return Annotation(cat, (x, y, x + w, y + h), source=where)
    if kind in ("circle", "ellipse"):
        keys = ("cx", "cy", "r", "r") if kind == "circle" else ("cx", "cy", "rx", "ry")
        vals = finite([shape.get(k) for k in keys])
        if vals is None:
            report.add("dropped", "bad_points", ref, f"{kind} needs numeric {', '.join(dict.fromkeys(keys))}", 1)
            return None
        theta = finite([shape.get("theta") or 0.0]) or [0.0]
        poly = ellipse_polygon(*vals, theta=theta[0])
        report.add("converted", f"{kind}_to_polygon", ref, f"{kind} as a {ELLIPSE_VERTICES}-gon")
    elif outline is not None:
        poly = outline
    else:
        xs, ys = (finite(v) if isinstance(v := shape.get(k), list) else None for k in ("all_points_x", "all_points_y"))
        if xs is None or ys is None or len(xs) != len(ys) or len(xs) < 3:
            report.add("dropped", "bad_points", ref, "polygon needs 3+ numeric all_points_x/all_points_y", 1)
            return None
        poly = [v for xy in zip(xs, ys) for v in xy]
        if len(poly) >= 8 and poly[:2] == poly[-2:]:  # closed by repeating the first vertex
            poly = poly[:-2]
    return Annotation(cat, polygons_bbox([poly]), polygons=[poly], source=where)
