"""Helpers every reader shares: class-name bookkeeping, finding images, loading text files with
errors that name the file, and number parsing that reports instead of crashing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..dataset import Annotation, Category, ImageRecord
from ..errors import FormatError
from ..report import Report


class CategoryIndex:
    """Class names -> ids while reading.

    With ``classes`` given the list and its order are fixed and other names are reported as
    unknown; otherwise names are collected and, at :meth:`finish`, numbered 1..N in sorted order so
    the result does not depend on which file happened to be read first."""

    def __init__(self, classes: list[str] | None = None):
        self.fixed = classes is not None
        self.ids: dict[str, int] = {n: i + 1 for i, n in enumerate(classes or [])}

    def id_for(self, name: str, report: Report, where: str) -> int | None:
        name = str(name).strip()
        if name in self.ids:
            return self.ids[name]
        if self.fixed or not name:
            report.add("dropped", "unknown_class", where,
                       f"class {name!r} is not in the class list" if name else "empty class name", 1)
            return None
        self.ids[name] = len(self.ids) + 1
        return self.ids[name]

    def finish(self, images: list[ImageRecord]) -> list[Category]:
        if self.fixed:
            return [Category(i, n) for n, i in self.ids.items()]
        order = sorted(self.ids)
        remap = {self.ids[n]: i + 1 for i, n in enumerate(order)}
        for im in images:
            for a in im.annotations:
                a.category_id = remap[a.category_id]
        return [Category(i + 1, n) for i, n in enumerate(order)]


def load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None


def finite(values: list[Any]) -> list[float] | None:
    """Floats, or None when any value is not a finite number."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def box_annotation(cat: int, x0: float, y0: float, x1: float, y1: float, **kw: Any) -> Annotation:
    """An annotation from two corners given in any order (tools let people drag either way)."""
    return Annotation(cat, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), **kw)


def locate_image(name: str, search: list[Path]) -> Path | None:
    """The first existing file named ``name`` (as given, then by basename) in ``search``."""
    rel = name.replace("\\", "/")
    for base in search:
        p = base / rel
        if p.is_file():
            return p
    base_name = rel.rsplit("/", 1)[-1]
    for base in search:
        p = base / base_name
        if p.is_file():
            return p
    return None


def relative_name(path: Path, root: Path, fallback: str) -> str:
    """``path`` relative to ``root`` when it lies inside, else ``fallback`` (the name as written)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return fallback


def split_from_name(name: str) -> str | None:
    low = name.lower()
    for key, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if key in low:
            return split
    return None
