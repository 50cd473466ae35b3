"""Apple's CreateML object-detection JSON, as Create ML reads it and Roboflow, RectLabel and Label Studio's converter
write it: a list of ``{"image": name, "annotations": [{"label", "coordinates": {x, y, width, height}}]}`` with the
box's centre and size in pixels; Roboflow puts one ``_annotations.createml.json`` beside the images of each split
folder. Boxes only: masks are written as their boxes, said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..annotations.images import probe
from ..annotations.report import Report
from ..errors import FormatError
from ..util.output import atomic_write_text
from ..util.progress import progress
from .base import CategoryIndex, dataset_top, finite, load_json, locate_image, sibling_image_dirs, text_field
from .layout import ImagePlacer
from .pairing import Fallback
from .shapes import folder_per_split, report_unkept

NAME = "createml"
EXPORT_NAME = "_annotations.createml.json"  # Roboflow's name, one per split folder


def sniff(head: bytes) -> bool:
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[") and b'"coordinates"' in head and b'"image"' in head


def is_createml(data: Any) -> bool:
    return (isinstance(data, list) and bool(data) and all(isinstance(r, dict) and "image" in r for r in data)
            and any(isinstance(r.get("annotations"), list) for r in data))


def read(src: Path, report: Report, classes: list[str] | None = None, images_dir: Path | None = None) -> Dataset:
    if src.is_file():
        f = src
    else:
        found = [p for p in sorted(src.glob("*.json")) if is_createml(load_json(p))]
        if not found:
            raise FormatError(src, "no CreateML JSON found (a list of {'image', 'annotations'} records)")
        f = next((p for p in found if p.name == EXPORT_NAME), found[0])
    records = load_json(f)
    if not is_createml(records):
        raise FormatError(f, "not a CreateML file: expected a list of {'image': name, 'annotations': [...]}")
    root = f.parent
    search = [*([images_dir] if images_dir else []), root, root / "images", *sibling_image_dirs(root, dataset_top(src))]
    fallback = Fallback(src if src.is_dir() else None, images_dir)
    cats = CategoryIndex(classes)
    images = []
    for i, rec in enumerate(progress(records, "reading CreateML", unit="img")):
        where = f"{f} image {i}"
        name = text_field(rec.get("image"))
        anns = rec.get("annotations") or []
        if not name or not isinstance(anns, list):
            raise FormatError(f, "a record needs an 'image' name and a list of 'annotations'", obj=f"image {i}")
        path = locate_image(name, search, report, where) or fallback.find(f, name)
        info = probe(path) if path is not None else None
        image = ImageRecord(name, info.width if info and info.ok else 0, info.height if info and info.ok else 0,
                            path=path, source=SourceRef(where), origin=str(f))
        report.holds(f, shapes=len(anns))
        for j, ann in enumerate(anns):
            ref = f"{where} annotation {j}"
            coords = ann.get("coordinates") if isinstance(ann, dict) else None
            vals = finite([coords.get(k) for k in ("x", "y", "width", "height")]) if isinstance(coords, dict) else None
            if vals is None:
                report.add("dropped", "bad_bbox", ref, "coordinates need numeric x, y, width, height", 1)
                continue
            cat = cats.id_for(text_field(ann.get("label")) or "", report, ref)
            if cat is None:
                continue
            cx, cy, w, h = vals
            image.annotations.append(Annotation(cat, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                                                source=SourceRef(ref)))
        images.append(image)
    fallback.note(images, report, "images the JSON names")
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink") -> list[Path]:
    """``_annotations.createml.json`` beside the images, per split folder for several (Roboflow's layout)."""
    names = {c.id: c.name for c in dataset.categories}
    placer = ImagePlacer(out, image_mode, report)
    written = []
    for split, folder in folder_per_split(dataset).items():
        records = []
        for im in progress(dataset.images_in(split), f"writing CreateML {split}", unit="img"):
            anns = []
            for ann in im.annotations:
                report_unkept(ann, set(), report, "CreateML")
                if ann.has_mask:
                    report.add("converted", "mask_to_box", ann.where(), "CreateML holds boxes: the mask is written as its box")
                if ann.iscrowd:
                    report.add("converted", "crowd_to_object", ann.where(), "CreateML has no crowd regions: written as an object")
                x0, y0, x1, y1 = ann.bbox
                anns.append({"label": names[ann.category_id], "coordinates": {
                    "x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "width": x1 - x0, "height": y1 - y0}})
            records.append({"image": placer.place(im, folder), "annotations": anns})
        path = out / folder / EXPORT_NAME if folder else out / EXPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(records, ensure_ascii=False))
        written.append(path)
    return written
