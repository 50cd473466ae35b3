"""The one in-memory annotation model that every reader produces and every writer consumes.

Conventions, fixed here so no format module has to guess:
- boxes are absolute pixel ``(x0, y0, x1, y1)`` floats in the image as displayed, i.e. after its
  EXIF orientation is applied (that is what annotation tools show and what OpenCV decodes);
- a mask is either ``polygons`` (flat ``[x0, y0, x1, y1, ...]`` lists, one instance may have several
  parts) or ``rle`` (COCO RLE dict, counts compressed or not), never both;
- category ids are explicit and kept as the source gave them; writers map them to their own
  numbering through :meth:`Dataset.coco_category_ids` / :meth:`Dataset.yolo_class_ids` only.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Box = tuple[float, float, float, float]


def name_key(name: str) -> str:
    """A class name as detft compares names across datasets and in ``--map``: NFKC Unicode form (a composed and a
    decomposed 'é', a full-width letter are one name), surrounding spaces removed. Case is kept: 'Car' and 'car'
    may be two classes, so a difference of case alone is only said."""
    return unicodedata.normalize("NFKC", name).strip()


@dataclass(frozen=True)
class SourceRef:
    """Where an annotation or image came from, so a report can point a person at it."""

    file: str
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.index is not None:
            return f"{self.file} object {self.index}"
        return self.file


@dataclass
class Category:
    id: int
    name: str
    supercategory: str = ""


@dataclass
class Annotation:
    category_id: int
    bbox: Box
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    iscrowd: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    source: SourceRef | None = None

    @property
    def has_mask(self) -> bool:
        return bool(self.polygons) or self.rle is not None

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    def where(self) -> str:
        return str(self.source) if self.source else "<unknown source>"


@dataclass
class ImageRecord:
    """One image. ``file_name`` is the path as the annotations name it (POSIX, maybe relative);
    ``path`` is where it was found on disk, ``None`` when it could not be located."""

    file_name: str
    width: int
    height: int
    path: Path | None = None
    annotations: list[Annotation] = field(default_factory=list)
    split: str | None = None
    source: SourceRef | None = None
    origin: str | None = None  # the annotation file this image's objects were read from (losses are counted per file)
    data: bytes | None = None  # the encoded image when the annotations embed it (LabelMe imageData) and no file has it
    window: tuple[int, int, int, int] | None = None  # a tile: the (x0, y0, x1, y1) of its source image it shows

    def where(self) -> str:
        return str(self.source) if self.source else self.file_name


@dataclass
class Dataset:
    images: list[ImageRecord]
    categories: list[Category]
    root: Path | None = None
    format: str = ""

    def __post_init__(self) -> None:
        ids = [c.id for c in self.categories]
        dup = [i for i, n in Counter(ids).items() if n > 1]
        if dup:
            raise ValueError(f"duplicate category ids {dup} in {self.root or 'dataset'}")

    @property
    def num_annotations(self) -> int:
        return sum(len(im.annotations) for im in self.images)

    def category_by_id(self) -> dict[int, Category]:
        return {c.id: c for c in self.categories}

    def sorted_categories(self) -> list[Category]:
        return sorted(self.categories, key=lambda c: c.id)

    def coco_category_ids(self) -> dict[int, int]:
        """Map internal ids to COCO ids. Ids that are already valid COCO ids (all >= 1) are kept,
        so results files made against the source keep working; otherwise (e.g. YOLO's 0-based ids)
        they are renumbered 1..N in id order."""
        cats = self.sorted_categories()
        if all(c.id >= 1 for c in cats):
            return {c.id: c.id for c in cats}
        return {c.id: i + 1 for i, c in enumerate(cats)}

    def yolo_class_ids(self) -> dict[int, int]:
        """Map internal ids to YOLO's contiguous 0-based class indices, in id order."""
        return {c.id: i for i, c in enumerate(self.sorted_categories())}

    def splits(self) -> list[str]:
        """Split names present, in the conventional order first."""
        names = {im.split or "train" for im in self.images}
        order = ["train", "val", "test"]
        return [s for s in order if s in names] + sorted(names - set(order))

    def images_in(self, split: str) -> list[ImageRecord]:
        return [im for im in self.images if (im.split or "train") == split]

    def has_masks(self) -> bool:
        return any(a.has_mask for im in self.images for a in im.annotations)
