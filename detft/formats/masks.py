"""Instance-mask PNGs: ``images/<name>.<ext>`` with ``masks/<name>.png`` where every instance has
its own pixel value (0 is background; 8- or 16-bit, or a palette PNG read by index as VOC's
``SegmentationObject`` and labelme2voc write them, where 255 is VOC's "void" border and not an
instance), and a class map ``classes.json``.

``classes.json`` maps a pixel value to a class name, either for every image
(``{"default": {"1": "cat", "2": "dog"}}``) or per image stem (``{"img01": {"1": "cat"}}``, which
wins over ``default``). Masks become exact RLEs, so nothing is lost to polygon tracing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..annotations.geometry import encode_mask, rle_bbox
from ..annotations.images import decode_file, find_images, probe
from ..annotations.report import Report
from ..util.progress import progress
from .base import CategoryIndex, load_json

NAME = "masks"


def read(src: Path, report: Report, classes: list[str] | None = None) -> Dataset:
    if not (src / "masks").is_dir() or not (src / "images").is_dir():
        raise FormatError(src, "instance-mask layout needs images/ and masks/ folders")
    cmap_path = src / "classes.json"
    if not cmap_path.is_file():
        raise FormatError(src, "instance-mask layout needs classes.json (pixel value -> class name)")
    cmap = load_json(cmap_path)
    if not isinstance(cmap, dict) or not all(isinstance(v, dict) for v in cmap.values()):
        raise FormatError(cmap_path, 'expected {"default" or image stem: {pixel value: class name}}')
    cats = CategoryIndex(classes)
    images = []
    used: set[Path] = set()
    for path in progress(find_images(src / "images"), "reading masks", unit="img"):
        rel = path.relative_to(src / "images")
        info = probe(path)
        image = ImageRecord(rel.as_posix(), info.width, info.height, path=path, source=SourceRef(str(path)))
        mask_path = src / "masks" / rel.with_suffix(".png")
        used.add(mask_path)
        image.origin = str(mask_path)
        if mask_path.is_file():
            mapping = {**cmap.get("default", {}), **cmap.get(rel.with_suffix("").as_posix(), {})}
            _instances(mask_path, image, mapping, cats, report)
        images.append(image)
    for orphan in sorted(set(find_images(src / "masks")) - used):
        m, _, _ = _decode(orphan)
        n = _count_instances(m) if m is not None else 1  # unreadable: at least one object
        report.holds(orphan, shapes=n)
        report.add("dropped", "orphan_mask", str(orphan), "no image of this name under images/", n)
    return Dataset(images, cats.finish(images), root=src, format=NAME)


VOID = 255  # VOC's border/"difficult" value in palette masks


def _decode(path: Path) -> tuple[np.ndarray | None, bool, str]:
    """Pixel values as stored, whether they are palette indices, and why there are none: a palette PNG's indices
    (OpenCV would expand it to colours), else OpenCV's unchanged decode (8/16-bit grey, or colour). The header is
    probed first: a mask too large to be any image's (30000x30000) is refused before it is decoded."""
    header = probe(path)
    if not header.ok:
        return None, False, f"the mask is {header.error}"
    try:
        with Image.open(path) as im:
            if im.mode == "P":
                return np.array(im), True, ""
    except (OSError, ValueError, SyntaxError) as e:
        return None, False, f"cannot decode the mask ({e})"
    m = decode_file(path, cv2.IMREAD_UNCHANGED)
    return m, False, "" if m is not None else f"cannot decode the {path.suffix} file"


def _count_instances(m: np.ndarray) -> int:
    """Instances a mask holds as written: distinct non-background values (distinct colours for a colour mask)."""
    values = np.unique(m.reshape(-1, m.shape[2]), axis=0) if m.ndim == 3 else np.unique(m)
    return int(sum(1 for v in values if np.any(v != 0)))


def _instances(mask_path: Path, image: ImageRecord, mapping: dict, cats: CategoryIndex, report: Report) -> None:
    m, palette, error = _decode(mask_path)
    if m is None:
        report.holds(mask_path, shapes=1)
        report.add("dropped", "unreadable_mask", str(mask_path), f"{error}: its objects (at least one) are lost", 1)
        return
    n = _count_instances(m) - int(palette and bool((m == VOID).any()))
    report.holds(mask_path, shapes=n)
    if m.ndim == 3:
        report.add("dropped", "color_mask", str(mask_path),
                   f"a colour mask ({n} colours): instance masks must be single-channel or palette PNGs", n)
        return
    if image.width and (m.shape[1], m.shape[0]) != (image.width, image.height):
        report.add("dropped", "mask_size", str(mask_path),
                   f"mask is {m.shape[1]}x{m.shape[0]}, image is {image.width}x{image.height}", n)
        return
    for value in np.unique(m):
        if value == 0 or (palette and value == VOID):
            continue
        where = SourceRef(str(mask_path), index=int(value))
        name = mapping.get(str(int(value)))
        if name is None:
            report.add("dropped", "unknown_class", str(where), f"pixel value {int(value)} has no class in classes.json", 1)
            continue
        cat = cats.id_for(name, report, str(where))
        if cat is None:
            continue
        rle = encode_mask(m == value)
        image.annotations.append(Annotation(cat, rle_bbox(rle), rle=rle, source=where))
