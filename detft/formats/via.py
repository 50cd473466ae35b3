"""VGG Image Annotator (VIA) 1.x/2.x JSON: rect, polygon, circle and ellipse regions (curves become
polygons), and polylines that return to their start (outlines drawn with the line tool, read as polygons).
The class is read from a region attribute (``class_attr``, default: the first one); the other region attributes
are kept (a ``score`` as a number). Written as VIA 2's annotation export."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..annotations.geometry import ELLIPSE_VERTICES, ellipse_polygon, polygons_bbox
from ..annotations.images import probe
from ..util.output import atomic_write_text, inside
from ..util.progress import progress
from ..annotations.report import Report
from .base import (CategoryIndex, canonical_split, dataset_top, finite, load_json, locate_image, outline_of_polyline,
                   sibling_image_dirs,
                   text_field)
from .layout import ImagePlacer
from .pairing import Fallback
from .shapes import SCORE, other_attributes, outlines, read_score, score_of, folder_per_split

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
    search = [*([images_dir] if images_dir else []), root, root / "images", *sibling_image_dirs(root, dataset_top(src))]
    cats = CategoryIndex(classes)
    if default_class is None and not any(_attributes(rec) for rec in recs.values() if isinstance(rec, dict)):
        default_class = default_class_name(f)
        report.note(f"{f}: no region has attributes; every region is class {default_class!r} "
                    "(name it with --via-default-class)")
    images = []
    fallback = Fallback(src if src.is_dir() else None, images_dir)
    for key, rec in recs.items():
        name = text_field(rec["filename"])
        regions = rec["regions"]
        regions = list(regions.values()) if isinstance(regions, dict) else regions  # VIA 1.x used a dict
        if not name or not isinstance(regions, list):
            raise FormatError(f, "a VIA record needs a 'filename' and a list of 'regions'", obj=repr(key))
        path = locate_image(name, search, report, f"{f} {key!r}") or fallback.find(f, name)
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
    fallback.note(images, report, "images the JSON names")
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def _attributes(rec: dict) -> bool:
    """Whether any region of a record has a non-empty attribute (a class can be read from it)."""
    regions = rec.get("regions")
    regions = list(regions.values()) if isinstance(regions, dict) else regions if isinstance(regions, list) else []
    return any(isinstance(r, dict) and r.get("region_attributes") for r in regions)


def _class_key(attrs: object, class_attr: str | None) -> str | None:
    if not attrs or not isinstance(attrs, dict):
        return None
    return class_attr if class_attr else next(iter(attrs))


def _kept_attributes(attrs: object, class_attr: str | None) -> dict:
    """The region attributes besides the class: text and numbers (checkbox/dropdown dicts are the class's kind)."""
    if not isinstance(attrs, dict):
        return {}
    key = _class_key(attrs, class_attr)
    kept = {k: v for k, v in attrs.items() if k != key and isinstance(v, (str, int, float)) and v != ""}
    if SCORE in kept and (score := read_score(kept[SCORE])) is not None:
        kept[SCORE] = score
    return kept


def _class_name(attrs: object, class_attr: str | None) -> str:
    key = _class_key(attrs, class_attr)
    if key is None:
        return ""
    value = attrs.get(key, "")  # type: ignore[union-attr]
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
    attrs = _kept_attributes(region.get("region_attributes"), class_attr)
    if kind == "rect":
        vals = finite([shape.get(k) for k in ("x", "y", "width", "height")])
        if vals is None:
            report.add("dropped", "bad_bbox", ref, "rect needs numeric x, y, width, height", 1)
            return None
        x, y, w, h = vals
        return Annotation(cat, (x, y, x + w, y + h), attributes=attrs, source=where)
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
    return Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=where)


CLASS_ATTRIBUTE = "label"  # the region attribute the class is written to (read first, as VIA exports list it)
EXPORT_NAME = "via_region_data.json"  # VIA 2's "Export annotations (as json)" name, as the balloon dataset has it


def _size_of(placed: Path, image: ImageRecord) -> int:
    """The byte size VIA keys a file by (``filename + size``); -1, VIA's value for a file it cannot size."""
    for p in (placed, image.path):
        try:
            return p.stat().st_size if p is not None else -1
        except OSError:
            continue
    return len(image.data) if image.data is not None else -1


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink") -> list[Path]:
    """``via_region_data.json`` beside the images (per split folder for several), as VIA 2 exports annotations
    and imports them again ("Annotation > Import annotations (from json)"): boxes as ``rect``, polygons as
    ``polygon`` (VIA has no groups: a multi-part instance becomes one region per part, reported), the class in
    the ``label`` region attribute and the score, like any other attribute, as text beside it."""
    names = {c.id: c.name for c in dataset.categories}
    placer = ImagePlacer(out, image_mode, report)
    written = []
    for split, folder in folder_per_split(dataset).items():
        records = {}
        for im in progress(dataset.images_in(split), f"writing VIA {split}", unit="img"):
            rel = placer.place(im, folder)
            regions = []
            for ann in im.annotations:
                attrs: dict[str, object] = {CLASS_ATTRIBUTE: names[ann.category_id]}
                attrs.update({k: v if isinstance(v, (bool, int, float)) else str(v)  # numbers stay numbers
                              for k, v in other_attributes(ann).items() if k != CLASS_ATTRIBUTE})
                if (score := score_of(ann)) is not None:
                    attrs[SCORE] = f"{score:.4f}"
                parts = outlines(ann, report, "VIA")
                if parts is None:
                    x0, y0, x1, y1 = ann.bbox
                    regions.append({"shape_attributes": {"name": "rect", "x": x0, "y": y0, "width": x1 - x0,
                                                         "height": y1 - y0}, "region_attributes": attrs})
                    continue
                if len(parts) > 1:
                    report.add("converted", "instance_split", ann.where(),
                               f"VIA has no groups: the {len(parts)} parts of this instance are written as regions")
                regions += [{"shape_attributes": {"name": "polygon", "all_points_x": part[0::2],
                                                  "all_points_y": part[1::2]}, "region_attributes": attrs}
                            for part in parts]
            size = _size_of(out / folder / rel, im)  # a placed link: its target's size
            records[f"{rel}{size}"] = {"filename": rel, "size": size, "regions": regions, "file_attributes": {}}
        path = inside(out, PurePosixPath(folder) / EXPORT_NAME)
        atomic_write_text(path, json.dumps(records, ensure_ascii=False))
        written.append(path)
    return written
