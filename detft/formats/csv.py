"""CSV with one box per row and named columns (``filename,class,xmin,ymin,xmax,ymax`` by default).

Column names are configurable (``columns={"filename": "image", "class": "label", ...}``; VoTT's export header
``image,xmin,ymin,xmax,ymax,label`` is recognised), a row with an empty class and box keeps its image as a negative
example, and optional ``width`` and ``height`` columns spare reading image headers. A folder may hold one CSV per
split (``train.csv`` and ``valid.csv``, VoTT's ``<name>-export.csv`` per subset): each is read, its split taken from
its name."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..annotations.dataset import Dataset, ImageRecord, SourceRef
from ..annotations.images import probe
from ..annotations.report import Report
from ..errors import FormatError
from .base import (CategoryIndex, box_annotation, declared_size, finite, locate_image, read_text,
                   split_from_name)
from .pairing import ImageIndex

NAME = "csv"
FIELDS = ("filename", "class", "xmin", "ymin", "xmax", "ymax")
OPTIONAL = ("width", "height", "split")
VOTT = {"filename": "image", "class": "label"}  # VoTT's CSV export names these two columns its own way


def parse_columns(spec: str | None) -> dict[str, str]:
    """``"filename=image,class=label"`` -> mapping from detft field to CSV column name."""
    cols = {f: f for f in FIELDS + OPTIONAL}
    for part in (spec or "").split(","):
        if part.strip():
            key, _, col = part.partition("=")
            if key.strip() not in cols or not col.strip():
                raise FormatError("--csv-columns", f"bad entry {part!r}; fields are {', '.join(cols)}")
            cols[key.strip()] = col.strip()
    return cols


def find_csv(src: Path, report: Report) -> list[tuple[Path, str | None]]:
    """The CSV files to read, each with the split its name gives where the folder holds several (``train.csv`` beside
    ``valid.csv``, VoTT's ``train-export.csv`` beside ``test-export.csv``). Several whose names do not each give a
    different split cannot be told apart (two exports of the same images, a backup copy): an error naming them."""
    if src.is_file():
        return [(src, None)]
    files = sorted(src.glob("*.csv"))
    if not files:
        raise FormatError(src, "no .csv file in the folder")
    if len(files) == 1:
        return [(files[0], None)]
    splits = [split_from_name(f.stem) for f in files]
    unnamed = [f.name for f, s in zip(files, splits) if s is None]
    shared = sorted({s for s in splits if s is not None and splits.count(s) > 1})
    if unnamed or shared:
        why = (f"{', '.join(unnamed)} name(s) no split" if unnamed else
               "; ".join(f"{', '.join(f.name for f, t in zip(files, splits) if t == s)} all name {s}" for s in shared))
        raise FormatError(src, f"{len(files)} .csv files and their names do not tell them apart ({why}): name each "
                          "after its split (train, val, test), or pass the one to read")
    report.note(f"{src}: one CSV per split: " + ", ".join(f"{f.name} -> {s}" for f, s in zip(files, splits)))
    return list(zip(files, splits))


def read(src: Path, report: Report, classes: list[str] | None = None, columns: dict[str, str] | None = None,
         images_dir: Path | None = None) -> Dataset:
    files = find_csv(src, report)
    root = files[0][0].parent
    search = ([images_dir] if images_dir else []) + [root, root / "images"]
    index = ImageIndex(root) if src.is_dir() else None  # images in folders of any name under the CSV's own
    cats = CategoryIndex(classes)
    images: dict[tuple[Path, str], ImageRecord] = {}
    for f, split in files:
        _read_file(f, split, columns, search, index, cats, images, report)
    all_images = list(images.values())
    if index is not None:
        report.note(index.summary(len(all_images), sum(im.path is None for im in all_images), "image names"))
    return Dataset(all_images, cats.finish(all_images), root=root, format=NAME)


def _columns(f: Path, header: list[str], columns: dict[str, str] | None, report: Report) -> dict[str, str]:
    """The columns to read: those given, else detft's names, or VoTT's where the header is VoTT's (said)."""
    if columns is not None:
        return columns
    cols = parse_columns(None)
    if all(VOTT[k] in header and k not in header for k in VOTT):
        report.note(f"{f}: VoTT's header: file names from its 'image' column, classes from 'label'")
        cols.update(VOTT)
    return cols


def _read_file(f: Path, split: str | None, columns: dict[str, str] | None, search: list[Path],
               index: ImageIndex | None, cats: CategoryIndex, images: dict[tuple[Path, str], ImageRecord],
               report: Report) -> None:
    """The rows of one CSV into ``images`` (keyed by file and image name), ``split`` for rows that name none."""
    reader = csv.DictReader(io.StringIO(read_text(f), newline=""))
    try:
        cols = _columns(f, reader.fieldnames or [], columns, report)
        missing = [cols[k] for k in FIELDS if cols[k] not in (reader.fieldnames or [])]
        if missing:
            raise FormatError(f, f"missing column(s) {missing}; header is {reader.fieldnames}", line=1)
        previous = reader.line_num
        for row in reader:
            line, first = reader.line_num, previous + 1
            previous = line
            if line > first and any("\n" in (v or "") or "\r" in (v or "") for v in row.values() if isinstance(v, str)):
                # a quote that never closes swallows every following line into one field
                raise FormatError(f, f"a quoted field runs from line {first} to line {line}: an unbalanced '\"'",
                                  line=first)
            where = str(SourceRef(str(f), line=line))
            name = (row.get(cols["filename"]) or "").strip()
            if not name:
                report.holds(f, images=0, shapes=1)
                report.add("dropped", "bad_row", where, "empty file name", 1)
                continue
            if (f, name) not in images:
                images[f, name] = _new_image(name, row, cols, search, f, line, report, index)
                images[f, name].split = images[f, name].split or split
                report.holds(f)
            image = images[f, name]
            box = [row.get(cols[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            label = (row.get(cols["class"]) or "").strip()
            if not label and not any((v or "").strip() for v in box):
                continue  # a negative example: the image has no objects
            report.holds(f, images=0, shapes=1)
            vals = finite(box)
            if vals is None:
                report.add("dropped", "bad_bbox", where, f"box {box} is not four numbers", 1)
                continue
            cat = cats.id_for(label, report, where)
            if cat is not None:
                image.annotations.append(box_annotation(cat, *vals, source=SourceRef(str(f), line=line)))
    except csv.Error as e:
        raise FormatError(f, f"invalid CSV: {e}", line=reader.line_num) from None


def _new_image(name: str, row: dict, cols: dict[str, str], search: list[Path], f: Path, line: int,
               report: Report, index: ImageIndex | None) -> ImageRecord:
    path = locate_image(name, search, report, f"{f}:{line}")
    if index is not None:
        if path is not None:
            index.claim(path)
        else:
            path, _ = index.find(f, name, own_stem=False)
    w, h = declared_size(row.get(cols["width"]), row.get(cols["height"]), report, str(SourceRef(str(f), line=line)))
    if (w, h) == (0, 0) and path is not None:
        info = probe(path)
        w, h = info.width, info.height
    return ImageRecord(name, w, h, path=path, split=(row.get(cols["split"]) or "").strip() or None,
                       source=SourceRef(str(f), line=line), origin=str(f))
