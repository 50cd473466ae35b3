"""CSV with one box per row and named columns (``filename,class,xmin,ymin,xmax,ymax`` by default).

Column names are configurable (``columns={"filename": "image", "class": "label", ...}``), a row
with an empty class and box keeps its image as a negative example, and optional ``width`` and
``height`` columns spare reading image headers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..annotations.dataset import Dataset, ImageRecord, SourceRef
from ..annotations.images import probe
from ..annotations.report import Report
from ..errors import FormatError
from .base import CategoryIndex, box_annotation, declared_size, finite, locate_image, read_text
from .pairing import ImageIndex

NAME = "csv"
FIELDS = ("filename", "class", "xmin", "ymin", "xmax", "ymax")
OPTIONAL = ("width", "height", "split")


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


def find_csv(src: Path) -> Path:
    if src.is_file():
        return src
    files = sorted(src.glob("*.csv"))
    if len(files) != 1:
        raise FormatError(src, f"expected one .csv file in the folder, found {len(files)}")
    return files[0]


def read(src: Path, report: Report, classes: list[str] | None = None, columns: dict[str, str] | None = None,
         images_dir: Path | None = None) -> Dataset:
    f = find_csv(src)
    cols = columns or parse_columns(None)
    root = f.parent
    search = ([images_dir] if images_dir else []) + [root, root / "images"]
    index = ImageIndex(root) if src.is_dir() else None  # images in folders of any name under the CSV's own
    cats = CategoryIndex(classes)
    images: dict[str, ImageRecord] = {}
    reader = csv.DictReader(io.StringIO(read_text(f), newline=""))
    try:
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
            if name not in images:
                images[name] = _new_image(name, row, cols, search, f, line, report, index)
                report.holds(f)
            image = images[name]
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
    all_images = list(images.values())
    if index is not None:
        report.note(index.summary(len(all_images), sum(im.path is None for im in all_images), "image names"))
    return Dataset(all_images, cats.finish(all_images), root=root, format=NAME)


def _new_image(name: str, row: dict, cols: dict[str, str], search: list[Path], f: Path, line: int,
               report: Report, index: ImageIndex | None) -> ImageRecord:
    path = locate_image(name, search)
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
