"""CVAT for images 1.1 XML: boxes (rotated ones become polygons), polygons, masks (CVAT's cropped
RLE) and the ``occluded`` flag. Polylines, points and skeletons are not objects: reported, dropped."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from ..dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..geometry import encode_mask, polygons_bbox, rle_bbox, rotated_box_polygon
from ..report import Report
from .base import CategoryIndex, box_annotation, declared_size, finite, locate_image
from .xmlsafe import parse

NAME = "cvat"
MAX_MASK_PIXELS = 2 * 89_478_485  # Pillow's decompression-bomb limit: a mask is never larger than its image


def find_xml(src: Path) -> Path:
    if src.is_file():
        return src
    for p in (src / "annotations.xml", *sorted(src.glob("*.xml"))):
        if p.is_file():
            return p
    raise FormatError(src, "no CVAT annotations.xml found")


def read(src: Path, report: Report, classes: list[str] | None = None, images_dir: Path | None = None) -> Dataset:
    f = find_xml(src)
    root_el = parse(f)
    if root_el.tag != "annotations":
        raise FormatError(f, f"root element is <{root_el.tag}>, expected <annotations> (CVAT for images 1.1)")
    label_names = [el.text.strip() for el in root_el.iterfind(".//meta//labels/label/name") if el.text]
    cats = CategoryIndex(classes if classes is not None else (label_names or None))
    root = f.parent
    search = ([images_dir] if images_dir else []) + [root / "images", root]
    images = []
    for i, im_el in enumerate(root_el.iter("image")):
        name = im_el.get("name", "")
        if not name:
            raise FormatError(f, "<image> without a name attribute", obj=f"image {i}")
        width, height = declared_size(im_el.get("width"), im_el.get("height"), report, f"{f} image {i} ({name})")
        image = ImageRecord(name, width, height, path=locate_image(name, search), split=im_el.get("subset") or None,
                            source=SourceRef(str(f), index=i))
        for j, shape in enumerate(im_el):
            where = SourceRef(f"{f} image {i} ({name})", index=j)
            ref = f"{where} <{shape.tag}>"
            ann = _shape(shape, image, cats, report, ref, where)
            if ann is not None:
                image.annotations.append(ann)
        images.append(image)
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def _attributes(shape: Element) -> dict:
    attrs: dict = {el.get("name", ""): (el.text or "") for el in shape.iter("attribute")}
    if shape.get("occluded") is not None:
        attrs["occluded"] = int(shape.get("occluded", "0") == "1")
    return attrs


def _shape(shape: Element, image: ImageRecord, cats: CategoryIndex, report: Report, ref: str,
           where: SourceRef) -> Annotation | None:
    if shape.tag == "tag":  # image-level labels, not objects
        return None
    if shape.tag not in ("box", "polygon", "mask"):
        report.add("dropped", "unsupported_shape", ref, f"<{shape.tag}> is not an object outline", 1)
        return None
    cat = cats.id_for(shape.get("label", ""), report, ref)
    if cat is None:
        return None
    attrs = _attributes(shape)
    if shape.tag == "box":
        vals = finite([shape.get(k) for k in ("xtl", "ytl", "xbr", "ybr")])
        if vals is None:
            report.add("dropped", "bad_bbox", ref, "xtl/ytl/xbr/ybr missing or not numbers", 1)
            return None
        rot = (finite([shape.get("rotation") or 0]) or [None])[0]
        if rot is None:
            report.add("dropped", "bad_bbox", ref, f"rotation {shape.get('rotation')!r} is not a number", 1)
            return None
        if rot % 360:
            poly = rotated_box_polygon(*vals, rot)
            report.add("converted", "rotated_box_to_polygon", ref, f"box rotated {rot} degrees kept as a polygon")
            return Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=where)
        return box_annotation(cat, *vals, attributes=attrs, source=where)
    if shape.tag == "polygon":
        pairs = [p.split(",") for p in (shape.get("points") or "").split(";") if p.strip()]
        pts = finite([v for p in pairs for v in p]) if all(len(p) == 2 for p in pairs) else None
        if pts is None or len(pts) < 6:
            report.add("dropped", "bad_points", ref,
                       f"polygon needs at least 3 'x,y' points, got {(shape.get('points') or '')[:60]!r}", 1)
            return None
        return Annotation(cat, polygons_bbox([pts]), polygons=[pts], attributes=attrs, source=where)
    try:
        rle = _mask_rle(shape, image.height, image.width)
    except (ValueError, OverflowError) as e:
        report.add("dropped", "bad_mask", ref, str(e), 1)
        return None
    return Annotation(cat, rle_bbox(rle), rle=rle, attributes=attrs, source=where)


def _mask_rle(shape: Element, height: int, width: int) -> dict:
    """CVAT stores a mask as row-major run lengths (starting with zeros) over a crop box."""
    runs = [int(v) for v in (shape.get("rle") or "").replace(" ", "").split(",") if v]
    left, top = int(float(shape.get("left", 0))), int(float(shape.get("top", 0)))
    w, h = int(float(shape.get("width", 0))), int(float(shape.get("height", 0)))
    if width * height > MAX_MASK_PIXELS or min(runs, default=0) < 0:
        raise ValueError(f"a {width}x{height} mask with runs {runs[:4]}... is not a mask of a real image")
    if sum(runs) != w * h or not w or not h:
        raise ValueError(f"mask runs sum to {sum(runs)}, expected width*height={w * h}")
    if left + w > width or top + h > height:
        raise ValueError(f"mask crop {left},{top} {w}x{h} exceeds the {width}x{height} image")
    flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
    full = np.zeros((height, width), np.uint8)
    full[top:top + h, left:left + w] = flat.reshape(h, w)
    return encode_mask(full)
