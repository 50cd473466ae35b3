"""Format registry: name -> reader/writer, and auto-detection of which format a path holds."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dataset import Dataset
from ..errors import DetftError
from ..report import Report
from . import coco, csv, cvat, labelme, masks, via, voc, yolo

READERS: dict[str, Callable[..., Dataset]] = {
    "coco": coco.read, "yolo": yolo.read, "voc": voc.read, "labelme": labelme.read,
    "cvat": cvat.read, "via": via.read, "csv": csv.read, "masks": masks.read,
}
WRITERS: dict[str, Callable[..., list[Path]]] = {"coco": coco.write, "yolo": yolo.write, "voc": voc.write}


def _sniff(path: Path, size: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _file_format(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yolo"
    if suffix == ".csv":
        return "csv"
    head = _sniff(path)
    if suffix == ".xml":
        if b"<annotations" in head:
            return "cvat"
        if b"<annotation" in head:
            return "voc"
    if suffix == ".json":
        if b'"shapes"' in head and b'"imagePath"' in head:
            return "labelme"
        if b"_via_img_metadata" in head or (b'"regions"' in head and b'"filename"' in head):
            return "via"
        if b'"images"' in head or b'"annotations"' in head:
            return "coco"
    return None


def _folder_candidates(src: Path) -> list[str]:
    found = []
    if yolo.find_yaml(src) or ((src / "images").is_dir() and (src / "labels").is_dir()):
        found.append("yolo")
    if (src / "Annotations").is_dir():
        found.append("voc")
    if (src / "annotations.xml").is_file():
        found.append("cvat")
    if (src / "annotations").is_dir() and coco.annotation_files(src):
        found.append("coco")
    if (src / "masks").is_dir() and (src / "classes.json").is_file():
        found.append("masks")
    top = {p: _file_format(p) for p in sorted(src.iterdir()) if p.is_file() and p.suffix.lower() in (".json", ".csv", ".xml")}
    for fmt in ("labelme", "via", "coco", "csv", "voc"):
        if fmt in top.values() and fmt not in found and not (fmt == "voc" and "cvat" in found):
            found.append(fmt)
    return found


def detect(src: Path) -> str:
    """The format ``src`` holds; a clear error when none or several fit."""
    if not src.exists():
        raise DetftError(f"{src} does not exist")
    if src.is_file():
        fmt = _file_format(src)
        if fmt is None:
            raise DetftError(f"cannot tell the annotation format of {src}; name it with --from ({', '.join(READERS)})")
        return fmt
    found = _folder_candidates(src)
    if not found:
        raise DetftError(f"no known annotation format found in {src}; name it with --from ({', '.join(READERS)})")
    if len(found) > 1:
        raise DetftError(f"{src} is ambiguous: it looks like {' and '.join(found)}; choose one with --from")
    return found[0]


def read_dataset(src: Path, fmt: str | None, report: Report, **options: Any) -> Dataset:
    """Read ``src`` with the named (or detected) reader, passing it only the options it takes."""
    fmt = fmt or detect(src)
    if fmt not in READERS:
        raise DetftError(f"unknown format {fmt!r}; known: {', '.join(READERS)}")
    reader = READERS[fmt]
    accepted = inspect.signature(reader).parameters
    return reader(src, report, **{k: v for k, v in options.items() if k in accepted and v is not None})
