"""CVAT 1.1 XML, for images and for video (read; for images, written): boxes (rotated ones become polygons), polygons, polylines that
return to their start (polygons), ellipses (polygons), masks (CVAT's cropped RLE) and the ``occluded`` flag. Shapes sharing a ``group_id`` and label
are one instance with several parts. Video tracks become one image per frame (``images/frame_000042.PNG``,
as CVAT exports frames), ``outside`` shapes are absent from their frame and a track is interpolated between
the keyframes it lists, as CVAT does. Project exports keep each image's ``subset`` and find images under
``images/<subset>/``. Polylines, points and skeletons are not objects: reported, dropped."""

from __future__ import annotations

import math
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

import numpy as np

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..annotations.images import MAX_PIXELS
from ..annotations.geometry import ELLIPSE_VERTICES, ellipse_polygon, encode_mask, polygons_bbox, rle_bbox, rotated_box_polygon
from ..util.output import atomic_write_text, safe_component
from ..util.progress import progress
from ..annotations.report import Report
from .base import (CategoryIndex, box_annotation, declared_size, finite, join_group_part, locate_image,
                   outline_of_polyline)
from .layout import ImagePlacer
from .pairing import Fallback
from .shapes import SCORE, folder_per_split, other_attributes, outlines, read_score, score_of
from .xmlsafe import parse

NAME = "cvat"
MAX_MASK_PIXELS = MAX_PIXELS  # a mask is never larger than its image


def find_xml(src: Path) -> Path:
    if src.is_file():
        return src
    if (src / "annotations.xml").is_file():
        return src / "annotations.xml"
    for p in sorted(src.glob("*.xml")):
        with open(p, "rb") as f:
            if b"<annotations" in f.read(4096):
                return p
    raise FormatError(src, "no CVAT XML found (annotations.xml, or an .xml whose root is <annotations>)")


def read(src: Path, report: Report, classes: list[str] | None = None, images_dir: Path | None = None) -> Dataset:
    f = find_xml(src)
    root_el = parse(f)
    if root_el.tag != "annotations":
        raise FormatError(f, f"root element is <{root_el.tag}>, expected <annotations> (CVAT 1.1)")
    label_names = [el.text.strip() for el in root_el.iterfind(".//meta//labels/label/name") if el.text]
    cats = CategoryIndex(classes if classes is not None else (label_names or None))
    root = f.parent
    search = ([images_dir] if images_dir else []) + [root / "images", root]
    images = []
    fallback = Fallback(src if src.is_dir() else None, images_dir)
    for i, im_el in enumerate(root_el.iter("image")):
        name = im_el.get("name", "")
        if not name:
            raise FormatError(f, "<image> without a name attribute", obj=f"image {i}")
        subset = im_el.get("subset") or None
        width, height = declared_size(im_el.get("width"), im_el.get("height"), report, f"{f} image {i} ({name})")
        where_dirs = ([root / "images" / subset] if subset else []) + search
        path = locate_image(name, where_dirs, report, f"{f} image {i}") or fallback.find(f, name)
        image = ImageRecord(name, width, height, path=path, split=subset,
                            source=SourceRef(str(f), index=i), origin=str(f))
        shapes = [(j, el) for j, el in enumerate(im_el) if el.tag != "tag"]
        report.holds(f, shapes=len(shapes))
        _add_shapes(image, shapes, f"{f} image {i} ({name})", cats, report)
        images.append(image)
    tracks = root_el.findall("track")
    if tracks:
        images += _track_frames(f, root_el, tracks, search, cats, report)
    fallback.note(images, report, "images the XML names")  # CVAT lists every image of its task: no negatives
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def _add_shapes(image: ImageRecord, shapes: list[tuple[int, Element]], ref_base: str, cats: CategoryIndex,
                report: Report) -> None:
    groups: dict[tuple[str, str], Annotation] = {}
    for j, shape in shapes:
        where = SourceRef(ref_base, index=j)
        ann = _shape(shape, image, cats, report, f"{where} <{shape.tag}>", where)
        if ann is None:
            continue
        label, group = shape.get("label", ""), shape.get("group_id") or "0"
        if group != "0" and join_group_part(groups, (label, group), ann):
            report.add("converted", "group_merged", str(where), f"part of group {group} ({label}): one instance")
            continue
        image.annotations.append(ann)


def _frame_size(root_el: Element) -> tuple[str | None, str | None, int | None]:
    """Frame width, height and the last frame, from a video task's (or job's) meta."""
    size = root_el.find(".//meta//original_size")
    stop = root_el.findtext(".//meta//stop_frame")
    w, h = (size.findtext("width"), size.findtext("height")) if size is not None else (None, None)
    return w, h, int(stop) if stop and stop.strip().isascii() and stop.strip().isdigit() else None


def _track_frames(f: Path, root_el: Element, tracks: list[Element], search: list[Path], cats: CategoryIndex,
                  report: Report) -> list[ImageRecord]:
    """CVAT for video: one image per frame, each holding the track shapes that are inside it."""
    width, height, stop = _frame_size(root_el)
    frames: dict[tuple[str | None, int], ImageRecord] = {}

    def frame_image(subset: str | None, frame: int) -> ImageRecord:
        key = (subset, frame)
        if key not in frames:
            stem = f"frame_{frame:06d}"
            dirs = ([f.parent / "images" / subset] if subset else []) + search
            path = next((p for ext in FRAME_EXTS if (p := locate_image(stem + ext, dirs))), None)
            name = path.name if path else stem + FRAME_EXTS[0]
            w, h = declared_size(width, height, report, f"{f} frame {frame}")
            frames[key] = ImageRecord(name, w, h, path=path, split=subset, source=SourceRef(str(f), index=frame),
                                      origin=str(f))
        return frames[key]

    for t, track in enumerate(tracks):
        subset = track.get("subset") or None
        for frame, shape in _interpolated(track, stop):
            shape.set("label", track.get("label", ""))
            image = frame_image(subset, frame)
            report.holds(f, images=0, shapes=1)
            _add_shapes(image, [(t, shape)], f"{f} track {track.get('id', t)} frame {frame}", cats, report)
    for d in dict.fromkeys(search):  # frames no track touches are negatives
        for p in sorted(d.glob("frame_*")) if d.is_dir() else []:
            if p.stem[6:].isascii() and p.stem[6:].isdigit() and p.suffix in FRAME_EXTS:
                frame_image(None, int(p.stem[6:]))
    images = sorted(frames.values(), key=lambda im: (im.split or "", im.file_name))
    report.holds(f, images=len(images), shapes=0)
    return images


FRAME_EXTS = (".PNG", ".png", ".jpg", ".JPG", ".jpeg")


def _interpolated(track: Element, stop: int | None) -> list[tuple[int, Element]]:
    """(frame, shape) for every frame the track is inside, filling the frames between two listed shapes
    the way CVAT interpolates: boxes and same-length polygons linearly, other shapes held."""
    listed = sorted(((int(float(el.get("frame", "0"))), el) for el in track), key=lambda fe: fe[0])
    out: list[tuple[int, Element]] = []
    for k, (frame, el) in enumerate(listed):
        if el.get("outside") == "1":
            continue
        out.append((frame, el))
        end = listed[k + 1][0] if k + 1 < len(listed) else (stop + 1 if stop is not None else frame + 1)
        nxt = listed[k + 1][1] if k + 1 < len(listed) else None
        for g in range(frame + 1, end):
            out.append((g, _between(el, nxt if nxt is not None and nxt.get("outside") != "1" else None,
                                    (g - frame) / (end - frame))))
    return out


def _between(a: Element, b: Element | None, t: float) -> Element:
    el = Element(a.tag, dict(a.attrib))
    el.extend(list(a))
    el.set("keyframe", "0")
    if b is None or b.tag != a.tag:
        return el
    if a.tag == "box":
        for k in ("xtl", "ytl", "xbr", "ybr", "rotation"):
            va, vb = finite([a.get(k) or 0]), finite([b.get(k) or 0])
            if va and vb:
                el.set(k, f"{va[0] + (vb[0] - va[0]) * t:.4f}")
    elif a.get("points") and b.get("points"):
        pa, pb = a.get("points", "").split(";"), b.get("points", "").split(";")
        if len(pa) == len(pb):
            va = finite([v for p in pa for v in p.split(",")])
            vb = finite([v for p in pb for v in p.split(",")])
            if va and vb and len(va) == len(vb):
                vals = [x + (y - x) * t for x, y in zip(va, vb)]
                el.set("points", ";".join(f"{vals[i]:.4f},{vals[i + 1]:.4f}" for i in range(0, len(vals), 2)))
    return el


def _attributes(shape: Element) -> dict:
    attrs: dict = {el.get("name", ""): (el.text or "") for el in shape.iter("attribute")}
    if SCORE in attrs and (score := read_score(attrs[SCORE])) is not None:
        attrs[SCORE] = score
    for k, v in attrs.items():  # a checkbox attribute: CVAT writes true/false
        if v in ("true", "false"):
            attrs[k] = v == "true"
    if shape.get("occluded") is not None:
        attrs["occluded"] = int(shape.get("occluded", "0") == "1")
    return attrs


def _shape(shape: Element, image: ImageRecord, cats: CategoryIndex, report: Report, ref: str,
           where: SourceRef) -> Annotation | None:
    if shape.tag == "tag":  # image-level labels, not objects
        return None
    if shape.tag not in ("box", "polygon", "polyline", "mask", "ellipse"):
        report.add("dropped", "unsupported_shape", ref, f"<{shape.tag}> is not an object outline", 1)
        return None
    cat = cats.id_for(shape.get("label", ""), report, ref)
    if cat is None:
        return None
    attrs = _attributes(shape)
    if shape.tag == "ellipse":
        vals = finite([shape.get(k) for k in ("cx", "cy", "rx", "ry")])
        rot = finite([shape.get("rotation") or 0])
        if vals is None or rot is None:
            report.add("dropped", "bad_points", ref, "ellipse needs numeric cx, cy, rx, ry", 1)
            return None
        poly = ellipse_polygon(*vals, theta=math.radians(rot[0]))
        report.add("converted", "ellipse_to_polygon", ref, f"ellipse as a {ELLIPSE_VERTICES}-gon")
        return Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=where)
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
    if shape.tag in ("polygon", "polyline"):
        pairs = [p.split(",") for p in (shape.get("points") or "").split(";") if p.strip()]
        pts = finite([v for p in pairs for v in p]) if all(len(p) == 2 for p in pairs) else None
        if shape.tag == "polyline":
            if (pts := outline_of_polyline(pts, report, ref)) is None:
                report.add("dropped", "unsupported_shape", ref, "an open <polyline> is not an object outline", 1)
                return None
        elif pts is None or len(pts) < 6:
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


def _attribute_kinds(dataset: Dataset) -> dict[str, str]:
    """Every annotation attribute the file will carry, with the CVAT input type that holds it: ``score`` a number
    in [0, 1], 0/1 flags (VOC's difficult, truncated) checkboxes, anything else text. ``occluded`` is CVAT's own
    shape flag, not an attribute."""
    kinds: dict[str, str] = {}
    for im in dataset.images:
        for a in im.annotations:
            if score_of(a) is not None:
                kinds[SCORE] = "number"
            for k, v in other_attributes(a).items():
                if k != "occluded":
                    kind = "checkbox" if v in (0, 1) else "text"
                    kinds[k] = kind if kinds.get(k, kind) == kind else "text"
    return kinds


ATTRIBUTE_VALUES = {"number": "0\n1\n0.0001", "checkbox": "false", "text": ""}  # number: min, max, step


def _label_meta(labels: Element, name: str, kinds: dict[str, str]) -> None:
    """A ``<label>`` of the meta, as CVAT writes it, declaring the attributes: CVAT (and datumaro) keep an
    attribute on import only when the task's label declares it too."""
    label = SubElement(labels, "label")
    SubElement(label, "name").text = name
    SubElement(label, "type").text = "any"
    attributes = SubElement(label, "attributes")
    for attr_name, kind in kinds.items():
        attr = SubElement(attributes, "attribute")
        for tag, text in (("name", attr_name), ("mutable", "False"), ("input_type", kind),
                          ("default_value", "0" if kind == "number" else ATTRIBUTE_VALUES[kind]),
                          ("values", ATTRIBUTE_VALUES[kind])):
            SubElement(attr, tag).text = text


def _attribute_text(kind: str, value: object) -> str:
    if kind == "number":
        return f"{float(value):.4f}"  # type: ignore[arg-type]
    if kind == "checkbox":
        return "true" if value else "false"
    return str(value)


def _shape_attrs(ann: Annotation, label: str) -> dict[str, str]:
    return {"label": label, "source": "auto" if score_of(ann) is not None else "manual",
            "occluded": str(int(bool(ann.attributes.get("occluded", 0)))), "z_order": "0"}


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink") -> list[Path]:
    """``annotations.xml`` in CVAT for images 1.1 (what CVAT exports, and imports as a task's annotations:
    images matched by name) with the images under ``images/`` (``images/<subset>/`` and a ``subset`` per image
    for several splits or one other than train, as CVAT's project exports): boxes, polygons (the parts of one
    instance share a ``group_id``), the score and other attributes as ``<attribute>`` elements declared in the meta."""
    names = {c.id: c.name for c in dataset.categories}
    kinds = _attribute_kinds(dataset)
    root = Element("annotations")
    SubElement(root, "version").text = "1.1"
    task = SubElement(SubElement(root, "meta"), "task")
    for tag, text in (("id", "0"), ("name", "detft"), ("size", str(len(dataset.images))), ("mode", "annotation"),
                      ("overlap", "0")):
        SubElement(task, tag).text = text
    labels = SubElement(task, "labels")
    for c in dataset.sorted_categories():
        _label_meta(labels, c.name, kinds)
    placer = ImagePlacer(out, image_mode, report)
    frame, group = 0, 0
    for split, sub in folder_per_split(dataset).items():
        folder = f"images/{safe_component(sub, 'split name')}" if sub else "images"
        for im in progress(dataset.images_in(split), f"writing CVAT {split}", unit="img"):
            el = SubElement(root, "image", {"id": str(frame), "name": placer.place(im, folder),
                                            "width": str(im.width), "height": str(im.height)})
            if sub:
                el.set("subset", split)
            frame += 1
            for ann in im.annotations:
                parts = outlines(ann, report, "CVAT")
                attrs = _shape_attrs(ann, names[ann.category_id])
                if parts is not None and len(parts) > 1:
                    group += 1
                    attrs["group_id"] = str(group)
                shapes = []
                if parts is None:
                    shapes.append(SubElement(el, "box", {**attrs, **dict(zip(("xtl", "ytl", "xbr", "ybr"),
                                                                            (f"{v:.2f}" for v in ann.bbox)))}))
                for part in parts or ():
                    points = ";".join(f"{x:.2f},{y:.2f}" for x, y in zip(part[0::2], part[1::2]))
                    shapes.append(SubElement(el, "polygon", {**attrs, "points": points}))
                values = {k: v for k, v in ann.attributes.items() if k in kinds}
                for shape in shapes:
                    for k, v in values.items():
                        SubElement(shape, "attribute", {"name": k}).text = _attribute_text(kinds[k], v)
    path = out / "annotations.xml"
    atomic_write_text(path, '<?xml version="1.0" encoding="utf-8"?>\n' + tostring(root, encoding="unicode") + "\n")
    return [path]
