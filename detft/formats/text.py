"""Custom text annotations, declared rather than guessed: ``--from text --fields "x1 y1 x2 y2 class"``.

Many published datasets ship a text format no tool names: one ``.txt`` per image in a sibling folder
(``x1 y1 x2 y2 type``, ``class cx cy w h score``), or one file for all whose first field is the image
(``img.jpg,x,y,w,h,label``). A template of field names says what each column is, so no converter has to be
written and the data goes through the same pairing, checks, report and writers as every format:

- fields: ``x1 y1 x2 y2`` (corners), ``cx cy w h`` (centre and size) or ``x y w h`` (top-left and size), ``class``,
  ``score`` (kept as an attribute), ``image`` (the image's file name: one file describes many images), and ``_``
  for a column to skip; ``--coords normalized`` for coordinates in [0, 1] of the image's size;
- separator: tab, semicolon, comma or whitespace, found per file from its first line;
- a first line with no number in it that names the box's columns (``x1``, ``xmin``, ``left``...) is a header (said,
  with its file and line); any other line that is not numbers where numbers belong is dropped and reported with its
  file and line, a first one too;
- a class written as an integer is named by a names file beside the labels or at the root (``classes.txt``,
  ``labels.txt``, ``*.names``, 0-based) when there is one, else kept as written;
- per-image files pair with their images by the image index (their own stem, anywhere under the root, nearest
  first), and the unlabelled images of a labelled folder join as negatives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..annotations.images import probe
from ..annotations.report import Report
from ..errors import DetftError, FormatError
from ..util.progress import progress
from .base import CategoryIndex, as_int_id, finite, read_text
from .pairing import ImageIndex, complete, split_of_path

NAME = "text"
BOXES = (("x1", "y1", "x2", "y2"), ("cx", "cy", "w", "h"), ("x", "y", "w", "h"))
KNOWN = {f for box in BOXES for f in box} | {"class", "score", "image", "_"}
NAMES_FILES = ("classes.txt", "labels.txt", "obj.names")
NOT_LABELS = {"classes", "labels", "train", "val", "valid", "test", "trainval", "readme", "license"}
HEADER_NAMES = {  # how published files' headers name each field: lower case, letters and digits only
    "x1": {"x1", "xmin", "left", "x0", "xtl"}, "y1": {"y1", "ymin", "top", "y0", "ytl"},
    "x2": {"x2", "xmax", "right", "xbr"}, "y2": {"y2", "ymax", "bottom", "ybr"},
    "cx": {"cx", "xc", "xcenter", "centerx", "x"}, "cy": {"cy", "yc", "ycenter", "centery", "y"},
    "x": {"x", "x1", "xmin", "left", "x0"}, "y": {"y", "y1", "ymin", "top", "y0"},
    "w": {"w", "width"}, "h": {"h", "height"},
    "class": {"class", "cls", "label", "category", "classid", "classname", "labelid", "categoryid", "type", "id", "name"},
    "score": {"score", "conf", "confidence", "prob", "probability"},
    "image": {"image", "img", "file", "filename", "imagename", "imagefile", "path", "imagepath", "name"},
}


@dataclass(frozen=True)
class Template:
    fields: tuple[str, ...]
    box: tuple[str, str, str, str]

    @property
    def per_image(self) -> bool:
        return "image" not in self.fields


def parse_fields(text: str) -> Template:
    """``--fields``: the columns, named; exactly one complete box among them."""
    fields = tuple(text.replace(",", " ").split())
    unknown = [f for f in fields if f not in KNOWN]
    if unknown:
        raise DetftError(f"--fields {text!r}: unknown field(s) {', '.join(unknown)}; fields are "
                         f"{' '.join(sorted(KNOWN))} (_ skips a column)")
    repeated = sorted({f for f in fields if f != "_" and fields.count(f) > 1})
    if repeated:
        raise DetftError(f"--fields {text!r}: {', '.join(repeated)} given twice")
    boxes = [b for b in BOXES if set(b) <= set(fields)]
    if len(boxes) != 1 or any(f in fields for b in BOXES if b != boxes[0] for f in set(b) - set(boxes[0])):
        raise DetftError(f"--fields {text!r}: name one box, as x1 y1 x2 y2, cx cy w h, or x y w h")
    return Template(fields, boxes[0])  # type: ignore[arg-type]


def _splitter(line: str) -> re.Pattern[str]:
    for sep in ("\t", ";", ","):
        if sep in line:
            return re.compile(rf"\s*{re.escape(sep)}\s*")
    return re.compile(r"\s+")


def _names(folders: list[Path]) -> list[str]:
    for folder in folders:
        for path in [*(folder / n for n in NAMES_FILES), *sorted(folder.glob("*.names"))]:
            if path.is_file():
                return [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]
    return []


def read(src: Path, report: Report, fields: str | None = None, coords: str = "pixel",
         classes: list[str] | None = None) -> Dataset:
    if not fields:
        raise DetftError(f"{src}: --from text needs --fields, the name of each column (e.g. --fields \"x1 y1 x2 y2 "
                         "class\")")
    if coords not in ("pixel", "normalized"):
        raise DetftError(f"--coords {coords!r}: pixel or normalized")
    template = parse_fields(fields)
    root = src if src.is_dir() else src.parent
    files = [src] if src.is_file() else sorted(
        p for p in src.rglob("*.txt") if p.stem.lower() not in NOT_LABELS and not any(
            part.startswith(".") for part in p.relative_to(src).parts))
    if not files:
        raise FormatError(src, "no .txt annotation files found")
    names = _names([root, *sorted({f.parent for f in files})])
    index = ImageIndex(root)
    cats = CategoryIndex(classes)
    images: dict[Path, ImageRecord] = {}
    for f in progress(files, "reading text annotations", unit="file"):
        _read_file(f, template, coords == "normalized", names, index, images, cats, report)
    records = complete(index, list(images.values()), report) if template.per_image else list(images.values())
    if not template.per_image:
        report.note(index.summary(len(records), 0, what="images the files name"))
    return Dataset(records, cats.finish(records), root=root, format=NAME)


def _read_file(f: Path, template: Template, normalized: bool, names: list[str], index: ImageIndex,
               images: dict[Path, ImageRecord], cats: CategoryIndex, report: Report) -> None:
    lines = read_text(f).splitlines()
    rows = [(n, ln) for n, ln in enumerate(lines, start=1) if ln.strip() and not ln.lstrip().startswith("#")]
    split = _splitter(rows[0][1].strip()) if rows else None
    report.holds(f, shapes=len(rows))
    own: ImageRecord | None = None
    if template.per_image:
        own = _image(f, None, index, images)
        if own is None:
            report.add("dropped", "missing_image", str(f), f"no image with the stem {f.stem!r} under {index.root}",
                       len(rows))
            return
    for k, (lineno, line) in enumerate(rows):
        values = split.split(line.strip()) if split else []
        where = f"{f}:{lineno}"
        row = dict(zip(template.fields, values))
        box = finite([row[b] for b in template.box]) if len(values) >= len(template.fields) else None
        score = finite([row["score"]]) if "score" in row else [None]
        if box is None or score is None:
            if k == 0 and _is_header(values, template, where):  # column names, not an object
                report.note(f"{where}: first line {line.strip()[:60]!r} read as a header")
                continue
            report.add("dropped", "bad_line", where, f"expected {len(template.fields)} columns ({' '.join(template.fields)})"
                       f" with numbers where {' '.join(template.box)} are"
                       + (" (nor is it a header: one names those columns and holds no number)" if k == 0 else ""), 1)
            continue
        image = own or _image(f, row["image"], index, images)
        if image is None:
            report.add("dropped", "missing_image", where, f"no image named {row['image']!r} under {index.root}", 1)
            continue
        name = _class(row.get("class", "object"), names, report, where)
        cat = cats.id_for(name, report, where) if name is not None else None
        if cat is None:
            continue
        x0, y0, x1, y1 = _corners(template.box, box, image, normalized)
        image.annotations.append(Annotation(cat, (x0, y0, x1, y1), source=SourceRef(str(f), line=lineno),
                                            attributes={"score": score[0]} if score[0] is not None else {}))


def _image(f: Path, name: str | None, index: ImageIndex, images: dict[Path, ImageRecord]) -> ImageRecord | None:
    """The record of the image ``f`` describes (``name`` given by a row, else the file's own stem), made once."""
    path, _ = index.find(f, name, own_stem=name is None)
    if path is None:
        return None
    if path not in images:
        info = probe(path)
        images[path] = ImageRecord(path.relative_to(index.root).as_posix(), info.width, info.height, path=path,
                                   split=split_of_path(path, index.root) or split_of_path(f, index.root),
                                   source=SourceRef(str(f)), origin=str(f))
    return images[path]


def _header_fields(token: str) -> set[str]:
    """The fields a header's column name may stand for (``x_min`` -> x1 and x)."""
    key = re.sub(r"[^a-z0-9]", "", token.lower())
    return {field for field, spellings in HEADER_NAMES.items() if key in spellings}


def _is_header(values: list[str], template: Template, where: str) -> bool:
    """Whether a first line is column names: no number in it, and a name for each of the box's columns; a header
    that names the template's columns in another order is an error (--fields would read each line wrongly)."""
    if any(finite([v]) is not None for v in values):
        return False
    named = [_header_fields(v) for v in values]
    if not all(any(field in fields for fields in named) for field in template.box):
        return False
    declared = set(template.fields) - {"_"}
    if len(values) == len(template.fields):
        for column, (value, fields, field) in enumerate(zip(values, named, template.fields), start=1):
            if field != "_" and field not in fields and fields & declared:
                raise FormatError(where, f"the header calls column {column} {value!r}, --fields calls it {field!r} "
                                  f"(header: {' '.join(values)}; --fields: {' '.join(template.fields)}): give the "
                                  "fields in the file's order")
    return True


def _class(token: str, names: list[str], report: Report, where: str) -> str | None:
    """A class as written, or its name when it is an index into the names file; None, reported, for digits that
    are no index (``²``, which ``isdigit`` admits and ``int`` refuses, or a number of 19 digits or more)."""
    if not token.isdigit():
        return token
    k = as_int_id(token)
    if k is None:
        shown = repr(token) if len(token) <= 20 else f"{token[:20]!r}... ({len(token)} digits)"
        report.add("dropped", "bad_class", where, f"class {shown} is not a class index (digits 0-9, fewer than 19)", 1)
        return None
    if names and k < len(names):
        return names[k]
    if names:
        report.add("fixed", "undeclared_class", where, f"class index {k} but {len(names)} names: kept as {token!r}")
    return token


def _corners(box: tuple[str, ...], v: list[float], image: ImageRecord, normalized: bool) -> tuple[float, ...]:
    sx, sy = (image.width, image.height) if normalized else (1, 1)
    a, b, c, d = v[0] * sx, v[1] * sy, v[2] * sx, v[3] * sy
    if box[0] == "x1":
        return a, b, c, d
    if box[0] == "cx":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    return a, b, a + c, b + d
