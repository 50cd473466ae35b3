"""Pascal VOC XML: one ``Annotations/<id>.xml`` per image, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

VOC pixel coordinates are 1-based and inclusive; detft boxes are 0-based continuous, so reading
maps ``(xmin - 1, ymin - 1, xmax, ymax)`` (Detectron2's convention) and writing undoes it exactly.
``difficult``, ``truncated``, ``occluded`` and ``pose`` survive as annotation attributes."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from xml.etree.ElementTree import Element, SubElement, tostring

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..util.output import atomic_write_text, inside, safe_component
from ..annotations.report import Report
from ..util.progress import progress
from .base import CategoryIndex, declared_size, finite, locate_image, read_list
from .layout import ImagePlacer
from .pairing import ImageIndex, complete, split_of_path
from .xmlsafe import parse

NAME = "voc"
FLAGS = ("difficult", "truncated", "occluded")


def xml_files(src: Path) -> list[Path]:
    """``Annotations/*.xml``, else every VOC XML under ``src`` in whatever folders hold them (other XML, such as a
    CVAT export or a tool's settings beside the data, is not VOC's and is left alone)."""
    if src.is_file():
        return [src]
    if (src / "Annotations").is_dir():
        return sorted((src / "Annotations").rglob("*.xml"))
    return [f for f in sorted(src.rglob("*.xml")) if is_voc(f)]


def is_voc(f: Path) -> bool:
    try:
        with open(f, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b"<annotation" in head and b"<annotations" not in head


def _splits(root: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Split by id from ``ImageSets/Main/{train,val,test}.txt``, and each list's entries. An entry is also known by
    its last path part and its stem (``aerial/x.jpg`` is ``x``): lists written on another machine carry prefixes
    and suffixes that the annotation files do not."""
    split_of: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    main = root / "ImageSets" / "Main"
    for split in ("train", "val", "test"):
        f = main / f"{split}.txt"
        if f.is_file():
            lists[split] = read_list(f)
            for entry in lists[split]:
                for key in _keys(entry):
                    split_of.setdefault(key, split)
    return split_of, lists


CLASS_FLAG = re.compile(r"^(.*\S)\s+(-1|0|1)$")  # VOC's per-class list form: ``id  1`` / ``id -1``


def _keys(entry: str) -> list[str]:
    """Names an entry may mean: itself (an id may hold spaces, ``a b``), without VOC's class flag (``id  1``), and
    each by its last path part and stem."""
    flagged = CLASS_FLAG.match(entry)
    keys = []
    for e in (entry, flagged.group(1)) if flagged else (entry,):
        path = Path(e.replace("\\", "/"))
        keys += [e, path.name, path.stem]
    return list(dict.fromkeys(keys))


def _text(el: Element, tag: str) -> str | None:
    child = el.find(tag)
    return child.text.strip() if child is not None and child.text else None


def read(src: Path, report: Report, classes: list[str] | None = None, images_dir: Path | None = None) -> Dataset:
    files = xml_files(src)
    if not files:
        raise FormatError(src, "no VOC XML files found (expected Annotations/*.xml)")
    root = src if src.is_dir() else src.parent
    split_of, lists = _splits(root)
    cats = CategoryIndex(classes)
    index = ImageIndex(root) if src.is_dir() else None
    images: list[ImageRecord] = []
    for f in progress(files, "reading VOC", unit="file"):
        images.append(_read_file(f, root, images_dir, split_of, cats, report, index))
    _report_lists(root, lists, images, files, report)
    images = complete(index, images, report)
    return Dataset(images, cats.finish(images), root=root, format=NAME)


def _report_lists(root: Path, lists: dict[str, list[str]], images: list[ImageRecord], files: list[Path],
                  report: Report) -> None:
    """How many entries of each ImageSets list matched an annotation file, said per list (a list read wrong, one
    entry for 29, must show), and each entry that matched none named: its objects are unknown and lost, and its
    image is not in the dataset."""
    have = {key for f in files for key in _keys(_xml_id(f, root))} | {Path(im.file_name).stem for im in images}
    for split, entries in lists.items():
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        missing = [e for e in entries if not any(k in have for k in _keys(e))]
        report.note(f"{listing}: {len(entries)} entries, {len(entries) - len(missing)} matched an annotation file"
                    + (f", {len(missing)} did not (named below)" if missing else ""))
        for entry in missing:
            report.add("dropped", "missing_annotation_file", str(listing),
                       f"{entry!r} is listed but no annotation file is named so (Annotations/{entry}.xml): the image "
                       "is left out")


def _xml_id(f: Path, root: Path) -> str:
    """The id ImageSets/Main lists an XML by: its path under Annotations/ without the suffix."""
    try:
        return f.relative_to(root / "Annotations").with_suffix("").as_posix()
    except ValueError:
        return f.stem


def _read_file(f: Path, root: Path, images_dir: Path | None, split_of: dict[str, str],
               cats: CategoryIndex, report: Report, index: ImageIndex | None = None) -> ImageRecord:
    el = parse(f)
    if el.tag != "annotation":
        raise FormatError(f, f"root element is <{el.tag}>, expected <annotation>")
    written = _text(el, "filename")
    name = written or f.with_suffix(".jpg").name
    size = el.find("size")
    w, h = declared_size(_text(size, "width"), _text(size, "height"), report, str(f)) if size is not None else (0, 0)
    search = ([images_dir] if images_dir else []) + [root / "JPEGImages", root / "images", f.parent,
                                                       f.parent.parent / "JPEGImages", root]
    path = locate_image(name, search, report, str(f))
    if index is not None:
        if path is not None:
            index.claim(path)
        else:  # a stale, extension-less or misspelt <filename>, or images in a folder of another name
            path, _ = index.find(f, written)
            name = path.name if path is not None else name
    xml_id = _xml_id(f, root)
    split = split_of.get(xml_id) or split_of.get(Path(xml_id).name) or split_of.get(Path(name).stem)
    if split is None and index is not None:
        split = split_of_path(f, root) or (split_of_path(path, root) if path is not None else None)
    image = ImageRecord(name, w, h, path=path, split=split, source=SourceRef(str(f)), origin=str(f))
    objects = list(el.iter("object"))
    report.holds(f, shapes=len(objects))
    for i, obj in enumerate(objects):
        where = SourceRef(str(f), index=i)
        cat = cats.id_for(_text(obj, "name") or "", report, str(where))
        if cat is None:
            continue
        bb = obj.find("bndbox")
        vals = finite([_text(bb, t) for t in ("xmin", "ymin", "xmax", "ymax")]) if bb is not None else None
        if vals is None:
            report.add("dropped", "bad_bbox", str(where), "missing or non-numeric <bndbox>", 1)
            continue
        attrs: dict = {t: int(float(v)) for t in FLAGS if (v := _text(obj, t)) is not None and finite([v])}
        if (pose := _text(obj, "pose")) and pose != "Unspecified":
            attrs["pose"] = pose
        xmin, ymin, xmax, ymax = vals
        image.annotations.append(Annotation(cat, (xmin - 1, ymin - 1, xmax, ymax), attributes=attrs, source=where))
    return image


def _num(v: float) -> str:
    return str(int(round(v))) if abs(v - round(v)) < 1e-6 else f"{v:.3f}".rstrip("0")


def to_xml(dataset: Dataset, image: ImageRecord, file_name: str, report: Report) -> str:
    names = {c.id: c.name for c in dataset.categories}
    ann = Element("annotation")
    SubElement(ann, "folder").text = "JPEGImages"
    SubElement(ann, "filename").text = file_name
    size = SubElement(ann, "size")
    for tag, v in (("width", image.width), ("height", image.height), ("depth", 3)):
        SubElement(size, tag).text = str(v)
    SubElement(ann, "segmented").text = "0"
    for a in image.annotations:
        if a.has_mask:
            report.add("converted", "mask_to_box", a.where(), "VOC XML stores boxes only; mask dropped")
        obj = SubElement(ann, "object")
        SubElement(obj, "name").text = names[a.category_id]
        SubElement(obj, "pose").text = str(a.attributes.get("pose", "Unspecified"))
        attrs = dict(a.attributes)
        if a.iscrowd:
            attrs["difficult"] = 1
            report.add("converted", "crowd_to_difficult", a.where(), "VOC has no crowd regions; written as difficult")
        for t in FLAGS:
            if t in attrs or t != "occluded":
                SubElement(obj, t).text = str(int(attrs.get(t, 0)))
        bb = SubElement(obj, "bndbox")
        x0, y0, x1, y1 = a.bbox
        for tag, v in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            SubElement(bb, tag).text = _num(v)
    return tostring(ann, encoding="unicode") + "\n"


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink") -> list[Path]:
    placer = ImagePlacer(out, image_mode, report, per_image_files=True)
    ids: dict[str, list[str]] = {}
    for split in dataset.splits():
        for im in progress(dataset.images_in(split), f"writing VOC {split}", unit="img"):
            rel = PurePosixPath(placer.place(im, "JPEGImages"))
            xml_id = rel.with_suffix("").as_posix()
            atomic_write_text(inside(out, f"Annotations/{xml_id}.xml"), to_xml(dataset, im, rel.name, report))
            ids.setdefault(split, []).append(xml_id)
    written = []
    for split, lst in ids.items():
        path = inside(out, f"ImageSets/Main/{safe_component(split, 'split name')}.txt")
        atomic_write_text(path, "".join(i + "\n" for i in lst))
        written.append(path)
    return written
