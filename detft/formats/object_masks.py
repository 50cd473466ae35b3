"""One binary mask PNG per object, as the Kaggle Data Science Bowl 2018 and Matterport's nucleus sample ship it:
``<id>/images/<id>.png`` with ``<id>/masks/<any>.png``, one file per object, every non-zero pixel the object
(DSB writes 0/255; any non-zero value counts). Also ``images/<stem>.<ext>`` with ``masks/<stem>_<n>.png`` or
``masks/<stem>/<n>.png`` beside it. The files name no class: every object is one class, ``--class-name`` or, by
default, the dataset folder's name (said). Masks become exact RLEs, as the instance-mask reader keeps them."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from ..annotations.dataset import Annotation, Category, Dataset, ImageRecord, SourceRef
from ..annotations.geometry import encode_mask, rle_bbox
from ..annotations.images import decode_file, find_images, is_image_name, probe
from ..annotations.report import Report
from ..errors import FormatError
from ..util.progress import progress

NAME = "object-masks"
PROBE = 8  # folders looked at to recognise the per-id layout: a DSB download holds hundreds


def _per_id(src: Path) -> list[Path]:
    """``<id>/`` folders of the DSB layout under ``src`` (its own image named after the folder)."""
    return [d for d in sorted(src.iterdir()) if d.is_dir() and (d / "masks").is_dir() and (d / "images").is_dir()
            and any(p.stem == d.name for p in (d / "images").iterdir())]


def is_object_masks(src: Path) -> bool:
    """Whether ``src`` holds either layout (checked on a few folders, not the whole download)."""
    try:
        children = [d for d in sorted(src.iterdir())[:PROBE * 4] if d.is_dir()][:PROBE]
    except OSError:
        return False
    if any((d / "masks").is_dir() and (d / "images").is_dir() and any(p.stem == d.name for p in (d / "images").iterdir())
           for d in children):
        return True
    masks, images = src / "masks", src / "images"
    if not (masks.is_dir() and images.is_dir()) or (src / "classes.json").is_file():
        return False
    stems = {p.stem for p in images.iterdir() if is_image_name(p.name)}
    return any((m.is_dir() and m.name in stems) or _numbered(m.stem) in stems for m in list(masks.iterdir())[:PROBE * 4])


def _numbered(stem: str) -> str | None:
    """``img_3`` -> ``img``: the image a ``masks/<stem>_<n>.png`` belongs to."""
    m = re.fullmatch(r"(.+)_(\d+)", stem)
    return m.group(1) if m else None


def _pairs(src: Path) -> list[tuple[Path, list[Path]]]:
    """Each image with its mask files, in either layout."""
    ids = _per_id(src)
    if ids:
        return [(next(p for p in sorted((d / "images").iterdir()) if p.stem == d.name),
                 sorted(p for p in (d / "masks").iterdir() if p.suffix.lower() == ".png")) for d in ids]
    by_stem: dict[str, list[Path]] = {}
    for m in sorted((src / "masks").iterdir()):
        if m.is_dir():
            by_stem.setdefault(m.name, []).extend(sorted(p for p in m.iterdir() if p.suffix.lower() == ".png"))
        elif m.suffix.lower() == ".png" and (stem := _numbered(m.stem)) is not None:
            by_stem.setdefault(stem, []).append(m)
    return [(image, by_stem.get(image.stem, [])) for image in find_images(src / "images")]


def read(src: Path, report: Report, class_name: str | None = None) -> Dataset:
    if not src.is_dir() or not is_object_masks(src):
        raise FormatError(src, "one mask per object needs <id>/images/<id>.png with <id>/masks/*.png, or images/ "
                               "with masks/<stem>_<n>.png or masks/<stem>/<n>.png")
    name = class_name or src.resolve().name
    if class_name is None:
        report.note(f"{src}: the masks name no class: every object is {name!r}, the dataset folder's name "
                    "(--class-name chooses another)")
    images = []
    for image_path, mask_paths in progress(_pairs(src), "reading object masks", unit="img"):
        info = probe(image_path)
        image = ImageRecord(image_path.relative_to(src).as_posix(), info.width, info.height, path=image_path,
                            source=SourceRef(str(image_path)), origin=str(image_path.parent.parent / "masks"))
        report.holds(Path(image.origin), shapes=len(mask_paths))
        for mask_path in mask_paths:
            _add(mask_path, image, report)
        images.append(image)
    return Dataset(images, [Category(1, name)], root=src, format=NAME)


def _add(mask_path: Path, image: ImageRecord, report: Report) -> None:
    m = decode_file(mask_path, cv2.IMREAD_UNCHANGED)
    where = str(mask_path)
    if m is None:
        report.add("dropped", "unreadable_mask", where, "cannot decode the PNG", 1)
        return
    if m.ndim == 3:  # a grey mask saved as RGB(A): the object is wherever any channel is set
        m = m.max(axis=2)
    if image.width and (m.shape[1], m.shape[0]) != (image.width, image.height):
        report.add("dropped", "mask_size", where, f"mask is {m.shape[1]}x{m.shape[0]}, image is "
                   f"{image.width}x{image.height}", 1)
        return
    if not m.any():
        report.add("dropped", "empty_mask", where, "the mask holds no pixel of its object", 1)
        return
    rle = encode_mask(np.ascontiguousarray(m > 0))
    image.annotations.append(Annotation(1, rle_bbox(rle), rle=rle, source=SourceRef(where)))
