"""Helpers every reader shares: class-name bookkeeping, finding images, loading text files with
errors that name the file, and number parsing that reports instead of crashing."""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import math
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..annotations.dataset import Annotation, Category, ImageRecord
from ..annotations.geometry import polygons_bbox, polyline_outline
from ..annotations.report import Report
from ..errors import FormatError


class CategoryIndex:
    """Class names -> ids while reading.

    With ``classes`` given the list and its order are fixed and other names are reported as
    unknown; otherwise names are collected and, at :meth:`finish`, numbered 1..N in sorted order so
    the result does not depend on which file happened to be read first (after the ``declared`` names, in their
    order, when the tool's project lists its classes)."""

    def __init__(self, classes: list[str] | None = None, declared: list[str] | None = None):
        self.fixed = classes is not None
        self.declared = list(dict.fromkeys(declared or []))  # a tool's own class list: its order, others after
        self.ids: dict[str, int] = {n: i + 1 for i, n in enumerate(classes or self.declared)}

    def id_for(self, name: str, report: Report, where: str) -> int | None:
        name = str(name).strip()
        if name in self.ids:
            return self.ids[name]
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):  # NUL, tabs, newlines: no writer can keep them
            report.add("dropped", "bad_class_name", where, f"class name {name!r} holds control characters", 1)
            return None
        if self.fixed or not name:
            report.add("dropped", "unknown_class", where,
                       f"class {name!r} is not in the class list" if name else "empty class name", 1)
            return None
        self.ids[name] = len(self.ids) + 1
        return self.ids[name]

    def finish(self, images: list[ImageRecord]) -> list[Category]:
        if self.fixed:
            return [Category(i, n) for n, i in self.ids.items()]
        order = self.declared + sorted(set(self.ids) - set(self.declared))
        remap = {self.ids[n]: i + 1 for i, n in enumerate(order)}
        for im in images:
            for a in im.annotations:
                a.category_id = remap[a.category_id]
        return [Category(i + 1, n) for i, n in enumerate(order)]


MAX_DIMENSION = 1 << 20  # pixels: larger declared image sizes are not images


def read_text(path: Path, max_bytes: int | None = None) -> str:
    """The one decoder for every annotation text file (JSON, YAML, labels, classes.txt, split lists, CSV,
    ImageSets): UTF-8, or UTF-8/UTF-16 with a byte-order mark; anything else is an error with the byte
    offset, never mojibake. ``max_bytes`` bounds files that are small by nature (a dataset YAML)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(path, f"cannot read ({e.strerror or e})") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise FormatError(path, f"{len(data):,} bytes: larger than the {max_bytes:,} a file of this kind may be")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise FormatError(path, f"not {name} text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def read_list(path: Path) -> list[str]:
    """The entries of a split list (VOC ImageSets, YOLO/darknet ``train.txt``): lines ended any way, LF, CRLF or
    the classic Mac CR some exports still write (split on ``\\n`` alone, a CR-only list of 29 images is one entry),
    a byte-order mark dropped, blank lines and ``#`` comments skipped. Lines are kept whole: a name may hold spaces,
    and VOC's per-class form (``id  1``) is VOC's to read."""
    lines = (line.strip() for line in read_text(path).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


MAX_YAML_BYTES = 1 << 20  # a dataset YAML is a few lines; anything this large is not one
MAX_YAML_ALIASES = 100


def load_yaml(path: Path) -> Any:
    """A dataset YAML, bounded: size, and alias references (an alias bomb in ``names`` expands to
    billions of entries when the structure is walked), with safe tags only."""
    import yaml

    class Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                Loader.aliases += 1
                if Loader.aliases > MAX_YAML_ALIASES:
                    mark = self.peek_event().start_mark
                    raise FormatError(path, f"more than {MAX_YAML_ALIASES} YAML aliases (*name): refused as an alias bomb",
                                      line=mark.line + 1)
            return super().compose_node(parent, index)

    text = read_text(path, max_bytes=MAX_YAML_BYTES)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506  Loader is a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise FormatError(path, f"invalid YAML: {getattr(e, 'problem', None) or e}",
                          line=mark.line + 1 if mark else None) from None


def load_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    except ValueError as e:  # an integer past Python's 4,300-digit conversion limit
        raise FormatError(path, f"invalid JSON: {e}") from None
    except RecursionError:
        raise FormatError(path, "invalid JSON: nested too deeply") from None


def as_id(value: Any) -> int | str | None:
    """An image id as COCO-style files write them: an integer (``1.0`` too, as pandas exports write it),
    or a string some tools use; None for anything else (NaN, a fraction, a list, an object, a boolean)."""
    if isinstance(value, str):
        return value if value.strip() else None
    return as_int_id(value)


def as_int_id(value: Any) -> int | None:
    """A category id: an integer (or an integer-valued number or digit string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    digits = value.strip().lstrip("-") if isinstance(value, str) else ""
    if digits.isascii() and digits.isdigit() and len(digits) < 19:  # not '²', which isdigit() admits and int() refuses
        return int(value)
    return None


def declared_size(width: Any, height: Any, report: Report, where: str) -> tuple[int, int]:
    """Image size as an annotation file declares it; anything not a positive whole number of pixels is
    reported and left unknown (0), to be read from the image file by the checker."""
    if width in (None, "", 0, "0") and height in (None, "", 0, "0"):
        if width is not None or height is not None:  # written, as 0: labelling tools that never read the image
            report.note("annotation files that declare an image size of 0 x 0: the image files' own sizes are used")
        return 0, 0
    vals = finite([width, height])
    if vals is None or not all(0 < v <= MAX_DIMENSION and float(v).is_integer() for v in vals):
        report.add("fixed", "bad_image_size", where, f"declared size {width!r}x{height!r} is not a pixel size; "
                   "the image file's is used")
        return 0, 0
    return int(vals[0]), int(vals[1])


def point_list(points: Any) -> list[float] | None:
    """``[[x, y], ...]`` flattened, or None unless every point is a pair of finite numbers."""
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
        return None
    return finite([v for p in points for v in p])


def list_field(data: dict, key: str, path: Path, obj: str | None = None) -> list:
    """``data[key]``, which must be a list: a file whose structure is wrong is a named error, not a crash."""
    value = data.get(key)
    if not isinstance(value, list):
        raise FormatError(path, f"'{key}' must be a list, not {type(value).__name__}", obj=obj)
    return value


def text_field(value: Any) -> str | None:
    """A name as annotation files write it: a string or a number; None for lists, objects, null."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def finite(values: list[Any]) -> list[float] | None:
    """Floats, or None when any value is not a finite number."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        return None
    return out if all(math.isfinite(v) for v in out) else None


def box_annotation(cat: int, x0: float, y0: float, x1: float, y1: float, **kw: Any) -> Annotation:
    """An annotation from two corners given in any order (tools let people drag either way)."""
    return Annotation(cat, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), **kw)


def join_group_part(groups: dict[Any, Annotation], key: Any, ann: Annotation) -> bool:
    """Shapes that share a group id and a label are one instance drawn in parts (LabelMe's and CVAT's
    ``group_id``): join ``ann``'s polygons into the group's polygon instance and return True; otherwise
    ``ann`` becomes the instance later parts join."""
    first = groups.get(key)
    if first is not None and first.polygons and ann.polygons:
        first.polygons = first.polygons + ann.polygons
        first.bbox = polygons_bbox(first.polygons)
        return True
    groups[key] = ann
    return False


def lies_within(path: Path, folders: list[Path]) -> bool:
    """Whether ``path`` as written (``..`` folded, links not followed) lies in one of ``folders``: the test a path
    taken from a data file passes before it is opened, so ``../../home/me/x.jpg`` or ``/etc/x.jpg`` in a downloaded
    dataset cannot pull a file from elsewhere on the user's machine into the dataset they then train on or share.
    Links the dataset itself holds are its own layout and are not judged here; a path that names a dataset folder
    through its real location (the folder itself being a link) is inside."""
    def within(target: str, top: str) -> bool:
        return target == top or target.startswith(top.rstrip(os.sep) + os.sep)

    written = os.path.normpath(os.path.abspath(path))
    if any(within(written, os.path.normpath(os.path.abspath(f))) for f in folders):
        return True
    try:
        real = os.path.realpath(path)  # the same place named through a linked dataset folder (/data -> /mnt/data)
        return any(within(real, os.path.realpath(f)) for f in folders)
    except (OSError, ValueError):  # a name holding NUL, a link loop: not a place inside
        return False


def may_climb(name: str) -> bool:
    """Whether ``base / name`` can leave ``base``: only an absolute name or one with a ``..`` part can, so the
    common name (``x.jpg``, ``images/x.jpg``) skips :func:`lies_within`."""
    rel = name.replace("\\", "/")
    return rel.startswith("/") or ".." in rel.split("/")


def locate_image(name: str, search: list[Path], report: Report | None = None, where: str | None = None) -> Path | None:
    """The first existing file named ``name`` (as given, then by basename) in ``search``, the folders the reader
    chose. The name as given is used only where it stays inside those folders; one that climbs out or is absolute
    elsewhere is looked up by its file name alone, like any stale path, and said in ``report``."""
    rel = name.replace("\\", "/")
    base_name = rel.rsplit("/", 1)[-1]
    outside = False
    found = None
    for candidate in (rel, base_name):
        if candidate in ("", ".", ".."):
            continue
        climbs = may_climb(candidate)
        for base in search:
            p = base / candidate
            if climbs and not lies_within(p, search):
                outside = True
                continue
            try:
                if p.is_file():
                    found = p
                    break
            except (OSError, ValueError):  # a name too long for the filesystem, or holding NUL: not here
                continue
        if found is not None:
            break
    if outside and report is not None:
        report.add("warning", "image_path_outside_dataset", where or name,
                   f"{name!r} points outside the dataset's folders: not opened there; "
                   + (f"found by its file name at {found}" if found else "looked up by its file name")
                   + " (--images-dir names another image folder)")
    return found


def relative_name(path: Path, root: Path, fallback: str) -> str:
    """``path`` relative to ``root`` when it lies inside (as found: a linked image placed in a dataset folder is
    named by where it is placed, not by its target), else ``fallback`` (the name as written)."""
    for p, r in ((path.absolute(), root.absolute()), (path.resolve(), root.resolve())):
        if p.is_relative_to(r):
            return p.relative_to(r).as_posix()
    return fallback


SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "validate": "val", "dev": "val", "test": "test", "testing": "test"}


def canonical_split(name: str) -> str:
    """``valid``, ``Validation``, ``Train`` (Roboflow folders, CVAT subsets) as ultralytics and detft name
    them: ``val``, ``train``; other names are kept."""
    return SPLIT_ALIASES.get(name.strip().lower(), name)


_OUTER_ROOT: ContextVar[Path | None] = ContextVar("outer_root", default=None)


@contextlib.contextmanager
def reading_under(root: Path) -> Iterator[None]:
    """Readers called on one split folder of ``root`` (``train/``, ``valid/``) may find images anywhere in ``root``,
    the folder the user named (a split's JSON in ``valid/``, its images in ``images/`` beside it)."""
    token = _OUTER_ROOT.set(root)
    try:
        yield
    finally:
        _OUTER_ROOT.reset(token)


def dataset_top(src: Path) -> Path:
    """The folder whose images the annotation files of ``src`` may name: the folder the user named (for a file, its
    folder), or the one above when nothing under it is an image: an annotation-only folder (labelme's
    ``--output ann/`` writing ``imagePath: ../images/a.jpg``, ``ann/project.json`` beside ``IMAGES/``, COCO's
    ``annotations/instances_val2017.json`` beside ``val2017/``) belongs to the dataset that holds it."""
    from ..annotations.images import is_image_name

    outer = _OUTER_ROOT.get()
    if outer is not None and lies_within(src, [outer]):
        return outer
    named = src if src.is_dir() else src.parent
    try:
        holds_images = any(is_image_name(p.name) for p in itertools.islice(named.rglob("*"), MAX_TOP_PROBE))
    except OSError:
        holds_images = True
    return named if holds_images else named.parent


MAX_TOP_PROBE = 10_000  # entries looked at to tell an annotation folder (no image in it) from a dataset's own


def sibling_image_dirs(folder: Path, top: Path) -> list[Path]:
    """Where exports put images relative to their annotation file: beside it, in ``images/`` or
    ``IMAGES/`` under it, or in any folder next to it (the VIA and LabelMe layouts people zip up), never above
    ``top`` (:func:`dataset_top`): the folders beside the dataset are not the dataset."""
    dirs = [folder]
    for base in (folder, folder.parent) if folder != top and lies_within(folder.parent, [top]) else (folder,):
        try:
            dirs += sorted(p for p in base.iterdir() if p.is_dir() and p != folder and not p.name.startswith("."))
        except OSError:
            continue
    return list(dict.fromkeys(dirs))


def split_from_name(name: str) -> str | None:
    low = name.lower()
    for key, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if key in low:
            return split
    return None


def split_of_file(path: Path) -> str | None:
    """The split an annotation file holds: the one its own name gives (``instances_val2017.json``), else its folder's
    when that folder is a split folder (Roboflow's ``valid/_annotations.coco.json`` read on its own is ``val``, not
    the ``train`` a file without a split becomes)."""
    return split_from_name(path.stem) or SPLIT_ALIASES.get(path.parent.name.strip().lower())


def objects_kept(images: list[ImageRecord]) -> int:
    """Objects on images that were found (a file, or bytes the annotations embed): what one of several readings of
    the same images is judged by, since objects of a missing image are lost anyway."""
    return sum(len(im.annotations) for im in images if im.path is not None or im.data is not None)


SAME_IMAGES_SHARE = 0.5  # of the smaller set: two readings sharing this many image names describe the same images


def same_images(a: set[str], b: set[str]) -> bool:
    """Whether two annotation sets describe the same images (two exports of one folder, which are alternatives)
    rather than different ones (two splits, which are parts of one dataset), from the image names each lists."""
    return len(a & b) >= SAME_IMAGES_SHARE * max(1, min(len(a), len(b)))


def outline_of_polyline(points: list[float] | None, report: Report, where: str) -> list[float] | None:
    """A polyline read as the polygon it outlines (VIA's polyline, LabelMe's linestrip, CVAT's polyline): annotators
    draw outlines with the line tool and stop at, or a pixel or two short of, the start. Reported as a conversion;
    None for an open line, which the caller reports dropped."""
    found = polyline_outline(points) if points else None
    if found is None:
        return None
    polygon, gap = found
    if gap == 0:
        report.add("converted", "closed_polyline_to_polygon", where, "a polyline that ends where it starts read as a polygon")
    else:
        report.add("converted", "nearly_closed_polyline_to_polygon", where,
                   f"a polyline whose end is {gap:.1%} of its size from its start read as a polygon")
    return polygon
