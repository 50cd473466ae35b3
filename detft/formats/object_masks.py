"""One binary mask image per object, as the Kaggle Data Science Bowl 2018 and Matterport's nucleus sample ship it:
``<id>/images/<id>.png`` with ``<id>/masks/<any>.png``, one file per object, every non-zero pixel the object
(DSB writes 0/255; any non-zero value counts). Also ``images/<stem>.<ext>`` with ``masks/<stem>_<n>.png`` or
``masks/<stem>/<n>.png`` beside it. The files name no class: every object is one class, ``--class-name`` or, by
default, the dataset folder's name (said). Masks become exact RLEs, as the instance-mask reader keeps them.

A mask may be any image file: PNG, TIFF or BMP are read as stored; a lossy one (JPEG, WebP) blurs its edges into
grey values, so it is read as the pixels of at least half intensity, with a warning. A mask file that cannot be read,
is larger than its image (checked from its header, before decoding) or belongs to no image is reported dropped."""

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
LOSSY = {".jpg", ".jpeg", ".webp"}  # masks saved in these have grey edges: thresholded at half intensity


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


def _mask_files(folder: Path) -> list[Path]:
    """The mask images of a folder (hidden files, a macOS zip's ``._x.png``, are not masks)."""
    return sorted(p for p in folder.iterdir() if is_image_name(p.name) and p.is_file())


def _pairs(src: Path, report: Report) -> list[tuple[Path, list[Path]]]:
    """Each image with its mask files, in either layout; mask files of no image reported dropped."""
    ids = _per_id(src)
    if ids:
        return [(next(p for p in sorted((d / "images").iterdir()) if p.stem == d.name), _mask_files(d / "masks"))
                for d in ids]
    by_stem: dict[str, list[Path]] = {}
    unnamed = []
    for m in sorted((src / "masks").iterdir()):
        if m.is_dir():
            by_stem.setdefault(m.name, []).extend(_mask_files(m))
        elif is_image_name(m.name):
            stem = _numbered(m.stem)
            (by_stem.setdefault(stem, []) if stem is not None else unnamed).append(m)
    images = find_images(src / "images")
    stems = {image.stem for image in images}
    orphans = unnamed + [m for stem, masks in by_stem.items() if stem not in stems for m in masks]
    for m in sorted(orphans):
        report.holds(m, images=0, shapes=1)
        report.add("dropped", "orphan_mask", str(m), "no image under images/ of the stem this mask names "
                   "(masks/<stem>_<n>.<ext> or masks/<stem>/<n>.<ext>)", 1)
    return [(image, by_stem.get(image.stem, [])) for image in images]


def read(src: Path, report: Report, class_name: str | None = None) -> Dataset:
    if not src.is_dir() or not is_object_masks(src):
        raise FormatError(src, "one mask per object needs <id>/images/<id>.png with <id>/masks/*.png, or images/ "
                               "with masks/<stem>_<n>.png or masks/<stem>/<n>.png")
    name = class_name or src.resolve().name
    if class_name is None:
        report.note(f"{src}: the masks name no class: every object is {name!r}, the dataset folder's name "
                    "(--class-name chooses another)")
    images = []
    for image_path, mask_paths in progress(_pairs(src, report), "reading object masks", unit="img"):
        info = probe(image_path)
        image = ImageRecord(image_path.relative_to(src).as_posix(), info.width, info.height, path=image_path,
                            source=SourceRef(str(image_path)), origin=str(image_path.parent.parent / "masks"))
        report.holds(Path(image.origin), shapes=len(mask_paths))
        for mask_path in mask_paths:
            _add(mask_path, image, report)
        images.append(image)
    return Dataset(images, [Category(1, name)], root=src, format=NAME)


def _add(mask_path: Path, image: ImageRecord, report: Report) -> None:
    where = str(mask_path)
    header = probe(mask_path)  # the size from the header: a 30000x30000 mask is refused before it is decoded
    if not header.ok:
        report.add("dropped", "unreadable_mask", where, f"the mask is {header.error}", 1)
        return
    if image.width and (header.width, header.height) != (image.width, image.height):
        report.add("dropped", "mask_size", where, f"mask is {header.width}x{header.height}, image is "
                   f"{image.width}x{image.height}", 1)
        return
    m = decode_file(mask_path, cv2.IMREAD_UNCHANGED)
    if m is None:
        report.add("dropped", "unreadable_mask", where, f"cannot decode the {mask_path.suffix} file", 1)
        return
    if m.ndim == 3:  # a grey mask saved as RGB(A): the object is wherever any channel is set
        m = m.max(axis=2)
    if (m.shape[1], m.shape[0]) != (header.width, header.height):  # EXIF-turned: the header told the turned size
        report.add("dropped", "mask_size", where, f"mask decodes to {m.shape[1]}x{m.shape[0]}, its header says "
                   f"{header.width}x{header.height}", 1)
        return
    lossy = mask_path.suffix.lower() in LOSSY
    pixels = m >= (np.iinfo(m.dtype).max + 1) // 2 if lossy else m > 0
    if not pixels.any():
        report.add("dropped", "empty_mask", where, "the mask holds no pixel of its object"
                   + (" (a lossy mask: pixels under half intensity are its blurred edges)" if lossy else ""), 1)
        return
    if lossy:
        report.add("warning", "lossy_mask", where, f"a {mask_path.suffix} mask: its edges are blurred by compression, "
                   "read as the pixels of at least half intensity (save masks as PNG to keep them exact)")
    rle = encode_mask(np.ascontiguousarray(pixels))
    image.annotations.append(Annotation(1, rle_bbox(rle), rle=rle, source=SourceRef(where)))
