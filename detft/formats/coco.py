"""COCO JSON: read any instances file (boxes, polygons, RLE and compressed RLE, crowd regions,
images with no annotations) and write one per split with ids from 1."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..annotations.dataset import Annotation, Category, Dataset, ImageRecord, SourceRef
from ..annotations.geometry import canonical_rle, polygons_area, polygons_bbox, rle_area, rle_bbox
from ..annotations.report import Report
from ..errors import FormatError
from ..util.output import NAME_MAX, atomic_write_text, inside, safe_component
from ..util.progress import progress
from .base import (as_id, as_int_id, dataset_top, declared_size, finite, load_json, locate_image, objects_kept,
                   same_images, split_from_name, split_of_file, text_field)
from .layout import ImagePlacer
from .pairing import Fallback, url_file_name
from .shapes import SCORE, other_attributes, read_score, score_of

NAME = "coco"


# the official download's sidecar files: they list the same images, but hold captions, person keypoints
# (the persons of instances_*) or panoptic segments, not the detection data
SIDECARS = ("captions_", "person_keypoints_", "panoptic_", "stuff_", "image_info_")


def annotation_files(src: Path, report: Report | None = None) -> list[Path]:
    if src.is_file():
        return [src]
    for folder in (src / "annotations", src):
        files = sorted(p for p in folder.glob("*.json") if _looks_like_coco(p)) if folder.is_dir() else []
        instances = [p for p in files if not p.name.startswith(SIDECARS)]
        if instances and len(instances) < len(files) and report is not None:
            skipped = [p.name for p in files if p.name.startswith(SIDECARS)]
            report.note(f"{folder}: read the instance files only; {', '.join(skipped)} hold no detection data")
        if instances or files:
            return instances or files
    return []


def _looks_like_coco(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(65536)
    return b'"images"' in head or b'"annotations"' in head or b'"categories"' in head


def _kind(data: dict) -> str:
    """instances, captions or panoptic: what a COCO-shaped file holds, from its first annotation."""
    anns = data.get("annotations")
    first = anns[0] if isinstance(anns, list) and anns and isinstance(anns[0], dict) else {}
    if "segments_info" in first:
        return "panoptic"
    if "caption" in first and "bbox" not in first:
        return "captions"
    return "instances"


@dataclass
class _Reading:
    """One COCO file as read, with its own report: it joins the dataset's only if no other file of the folder is
    a fuller alternative to it (:func:`_alternatives`)."""

    file: Path
    images: list[ImageRecord]
    categories: list[Category]
    report: Report

    @property
    def names(self) -> set[str]:
        return {PurePosixPath(im.file_name.replace("\\", "/")).name for im in self.images}

    def counts(self) -> str:
        return f"{self.file.name}: {objects_kept(self.images)} objects on {len(self.images)} images"


def read(src: Path, report: Report, images_dir: Path | None = None) -> Dataset:
    files = annotation_files(src, report)
    if not files:
        raise FormatError(src, "no COCO JSON found (expected a .json file or annotations/*.json)")
    fallback = Fallback(src if src.is_dir() else None, images_dir)
    readings = []
    for f in files:
        own = Report()
        images, cats = _read_file(f, own, _search_dirs(f, src, images_dir), split_of_file(f), fallback)
        readings.append(_Reading(f, images, cats, own))
    merged: list[ImageRecord] = []
    categories: dict[int, Category] = {}
    for reading in _alternatives(readings, report):
        report.extend(reading.report)
        for c in reading.categories:
            old = categories.setdefault(c.id, c)
            if old.name != c.name:
                raise FormatError(reading.file, f"category id {c.id} is {c.name!r} here but {old.name!r} in another file")
        merged += reading.images
    fallback.note(merged, report, "images the JSON names")
    root = src if src.is_dir() else src.parent
    return Dataset(merged, sorted(categories.values(), key=lambda c: c.id), root=root, format=NAME)


def _alternatives(readings: list[_Reading], report: Report) -> list[_Reading]:
    """The files to merge. COCO files of one split that list the same images (Roboflow's ``_annotations.coco.json``
    beside an author's own ``_train_anno.json``, both of ``train/``) are alternatives, not parts: merged, every image would be listed
    twice and the second file's objects all lost. Of each such group the file that keeps the most objects is read
    (then the one with more images, then the first by name), said with every count; files of different images or
    of different splits (``instances_train.json`` + ``instances_val.json``, even where val copies train) are all
    read."""
    groups: list[list[_Reading]] = []
    for reading in readings:
        group = next((g for g in groups if any(split_of_file(reading.file) == split_of_file(other.file)
                                               and same_images(reading.names, other.names) for other in g)), None)
        if group is None:
            groups.append([reading])
        else:
            group.append(reading)
    chosen = []
    for group in groups:
        best = max(group, key=lambda r: (objects_kept(r.images), len(r.images), -readings.index(r)))
        if len(group) > 1:
            others = [r for r in group if r is not best]
            report.note(f"{best.file.parent}: {' and '.join(r.file.name for r in group)} list the same images: read "
                        f"{best.file.name}, which keeps the most objects ({'; '.join(r.counts() for r in group)}); "
                        f"{', '.join(r.file.name for r in others)} not read (pass a file to read it instead)")
        chosen.append(best)
    return sorted(chosen, key=readings.index)


def _search_dirs(f: Path, src: Path, images_dir: Path | None) -> list[Path]:
    """Where a COCO file's images lie, relative to the dataset's top folder (:func:`dataset_top`:
    ``annotations/instances_val2017.json`` beside ``val2017/``, as COCO's own download has it), never above it."""
    stem = f.stem.removeprefix("instances_")
    top = dataset_top(src)
    dirs = [f.parent, top, top / stem, f.parent / "images", top / "images", top / "images" / stem]
    split = split_from_name(stem)
    if split:
        dirs += [top / "images" / split, top / split]
    return list(dict.fromkeys(([images_dir] if images_dir else []) + dirs))


PATH_MAX = 4096  # bytes in a whole path on Linux, its terminating NUL included


def unholdable(name: str) -> str | None:
    """Why no filesystem can hold the path ``name`` (a part over NAME_MAX bytes, or the whole PATH_MAX or more), or
    None. Such a name is no file anywhere: its image is not found, like any stale path, rather than found by its
    base name and then written under that name, which no output folder can hold either (convert failed with
    ENAMETOOLONG where inspect, which writes nothing, passed)."""
    size, *parts = (len(x.encode("utf-8", "surrogatepass")) for x in (name, *name.replace("\\", "/").split("/")))
    longest = max(parts)
    if size >= PATH_MAX:
        return f"its file_name is {size} bytes, past the {PATH_MAX - 1} a path can hold"
    if longest > NAME_MAX:
        return f"a part of its file_name is {longest} bytes, past the {NAME_MAX} a file or folder name can hold"
    return None


def _read_file(f: Path, report: Report, search: list[Path], split: str | None,
               fallback: Fallback) -> tuple[list[ImageRecord], list[Category]]:
    data = load_json(f)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise FormatError(f, "not a COCO instances file: top-level 'images' list missing")
    kind = _kind(data)
    if kind != "instances":
        raise FormatError(f, f"a COCO {kind} file: it holds {kind}, not object boxes or outlines; read the "
                          "instances_*.json file of the same download instead")
    for key in ("categories", "annotations"):
        if data.get(key) is not None and not isinstance(data[key], list):
            raise FormatError(f, f"'{key}' must be a list, not {type(data[key]).__name__}")
    cats = []
    for i, c in enumerate(data.get("categories") or []):
        if not isinstance(c, dict) or as_int_id(c.get("id")) is None or text_field(c.get("name")) is None:
            raise FormatError(f, f"category needs an integer 'id' and a 'name', got {c!r:.80}", obj=f"categories[{i}]")
        cats.append(Category(as_int_id(c["id"]), text_field(c["name"]), text_field(c.get("supercategory")) or ""))
    used = {as_int_id(a.get("category_id")) for a in data.get("annotations") or [] if isinstance(a, dict)}
    if (project := _project_category(cats, used)) is not None:
        cats = [c for c in cats if c is not project]
        report.note(f"category {project.id} {project.name!r} left out: no annotation uses it and it is the "
                    "supercategory of every other category (the project itself, as Roboflow exports it), not a class")
    cat_ids = {c.id for c in cats}
    by_id: dict[Any, ImageRecord] = {}
    urls = 0
    per_image = Counter(as_id(a.get("image_id")) for a in data.get("annotations") or [] if isinstance(a, dict))
    for i, im in enumerate(data["images"]):
        where = SourceRef(str(f), index=i)
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise FormatError(f, "image needs 'id' and 'file_name'", obj=f"images[{i}]")
        image_id, name = as_id(im["id"]), text_field(im["file_name"])
        if image_id is None or not name:
            raise FormatError(f, f"image needs an integer or string 'id' and a 'file_name', got id {im['id']!r:.40}, "
                              f"file_name {im['file_name']!r:.40}", obj=f"images[{i}]")
        if image_id in by_id:
            report.add("dropped", "duplicate_image_id", str(where), f"image id {image_id} listed twice")
            continue
        width, height = declared_size(im.get("width"), im.get("height"), report, str(where))
        path = None
        if (too_long := unholdable(name)) is not None:
            report.add("warning", "unholdable_file_name", str(where), f"image id {image_id}: {too_long}: no file can "
                       "have this name, so it is looked up nowhere (reported missing)")
        else:
            tail = url_file_name(name)  # a URL says where the image was served, not where the file is
            path = locate_image(tail or name, search, report, str(where)) or fallback.find(f, name)
            if tail is not None:
                urls += 1
                name = path.name if path is not None else tail
        by_id[image_id] = ImageRecord(file_name=name, width=width, height=height, path=path, split=split,
                                      source=where, origin=str(f))
        report.holds(f, shapes=per_image[image_id])
    report.holds(f, images=0, shapes=sum(n for k, n in per_image.items() if k not in by_id))
    for i, a in enumerate(data.get("annotations") or []):
        where = SourceRef(str(f), index=i)
        if not isinstance(a, dict):
            raise FormatError(f, "annotation is not an object", obj=f"annotations[{i}]")
        ref = f"{where} (id {a.get('id')!r:.40})"
        image = by_id.get(as_id(a.get("image_id")))
        if image is None:
            report.add("dropped", "unknown_image", ref, f"image_id {a.get('image_id')!r:.40} is not in 'images'", 1)
            continue
        if as_int_id(a.get("category_id")) not in cat_ids:
            report.add("dropped", "unknown_class", ref, f"category_id {a.get('category_id')!r} is not in 'categories'", 1)
            continue
        if isinstance(a["category_id"], str):  # some exporters quote every number; pycocotools would not match it
            report.add("fixed", "category_id_string", ref,
                       f"category_id {a['category_id']!r} is a string: read as the number {as_int_id(a['category_id'])}")
        ann = _annotation(a, image, report, ref, where)
        if ann is not None:
            image.annotations.append(ann)
    if urls:
        report.note(f"{f}: {urls} images named by a URL (Label Studio's COCO export without images): named by "
                    "their file")
    return list(by_id.values()), cats


def _project_category(cats: list[Category], used: set[int | None]) -> Category | None:
    """Roboflow's placeholder: category 0 named after the project (``state``, with supercategory ``none``), the
    supercategory of every real class and used by no annotation. Kept, it would train as an empty class 0. Only this
    exact shape is one: any other category without annotations is a class that has no examples yet, and kept."""
    for c in cats:
        others = [o for o in cats if o is not c]
        if c.id not in used and others and all(o.supercategory == c.name for o in others):
            return c
    return None


def _annotation(a: dict, image: ImageRecord, report: Report, ref: str, where: SourceRef) -> Annotation | None:
    seg = a.get("segmentation")
    polygons = rle = None
    try:
        if isinstance(seg, list) and seg:
            polygons = []
            for p in seg:
                vals = finite(p) if isinstance(p, list) else None
                if vals is None or len(vals) % 2:
                    raise ValueError("polygon is not an even-length list of finite numbers")
                if len(vals) < 6:
                    report.add("fixed", "short_polygon", ref, f"polygon part with {len(vals) // 2} vertices removed")
                    continue
                polygons.append(vals)
            polygons = polygons or None
        elif isinstance(seg, dict):
            rle = canonical_rle(seg)
        elif seg not in (None, []):
            raise ValueError(f"segmentation must be a polygon list or an RLE object, not {type(seg).__name__}")
    except (ValueError, TypeError, OverflowError) as e:
        report.add("dropped", "bad_segmentation", ref, str(e), 1)
        return None
    bbox = finite(a["bbox"]) if isinstance(a.get("bbox"), list) and len(a["bbox"]) == 4 else None
    if bbox is not None:
        x, y, w, h = bbox
        box = (x, y, x + w, y + h)
    elif polygons or rle:
        box = polygons_bbox(polygons) if polygons else rle_bbox(rle)
        report.add("fixed", "missing_bbox", ref, "bbox computed from the segmentation")
    else:
        report.add("dropped", "bad_bbox", ref, f"bbox {a.get('bbox')!r} is not 4 finite numbers", 1)
        return None
    attrs = dict(a.get("attributes")) if isinstance(a.get("attributes"), dict) else {}
    if (score := read_score(a.get(SCORE))) is not None:
        attrs[SCORE] = score
    return Annotation(as_int_id(a["category_id"]), box, polygons=polygons, rle=rle,
                      iscrowd=bool(a.get("iscrowd", 0)), attributes=attrs, source=where)


def annotation_area(ann: Annotation, height: int, width: int) -> float:
    """COCO's area: the mask's pixel count when there is a mask, else the box's."""
    if ann.rle is not None:
        return rle_area(ann.rle)
    if ann.polygons:
        return polygons_area(ann.polygons, height, width)
    return ann.width * ann.height


def to_coco_dict(dataset: Dataset, images: list[ImageRecord], file_names: list[str]) -> dict:
    """COCO instances dict for ``images`` with image and annotation ids from 1."""
    cat_map = dataset.coco_category_ids()
    out_images, out_anns = [], []
    for img_id, (im, name) in enumerate(zip(images, file_names), start=1):
        out_images.append({"id": img_id, "file_name": name, "width": im.width, "height": im.height})
        for ann in im.annotations:
            x0, y0, x1, y1 = ann.bbox
            d: dict[str, Any] = {
                "id": len(out_anns) + 1, "image_id": img_id, "category_id": cat_map[ann.category_id],
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": annotation_area(ann, im.height, im.width),
                "iscrowd": int(ann.iscrowd)}
            if ann.rle is not None:
                d["segmentation"] = ann.rle
            elif ann.polygons:
                d["segmentation"] = ann.polygons
            if (score := score_of(ann)) is not None:  # a pre-label's confidence, where COCO results keep it
                d["score"] = score
            if attrs := other_attributes(ann):
                d["attributes"] = attrs
            out_anns.append(d)
    cats = [{"id": cat_map[c.id], "name": c.name, "supercategory": c.supercategory}
            for c in dataset.sorted_categories()]
    return {"info": {"description": "written by detft"}, "images": out_images,
            "annotations": out_anns, "categories": cats}


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink") -> list[Path]:
    """Write ``annotations/instances_<split>.json`` and ``images/<split>/...`` under ``out``."""
    written = []
    placer = ImagePlacer(out, image_mode, report)
    for split in dataset.splits():
        images = dataset.images_in(split)
        folder = safe_component(split, "split name")
        names = [placer.place(im, f"images/{folder}")
                 for im in progress(images, f"writing COCO {split}", unit="img")]
        path = inside(out, f"annotations/instances_{folder}.json")
        atomic_write_text(path, json.dumps(to_coco_dict(dataset, images, names)))
        written.append(path)
    return written
