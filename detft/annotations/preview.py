"""A PNG grid of sample images with their boxes and masks drawn, because people check a conversion
by looking at it. Images are shown as displayed (EXIF orientation applied), like the annotations."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..util.output import atomic_write_bytes
from .dataset import Dataset, ImageRecord
from .geometry import decode_mask, polygons_to_mask
from .images import read_rgb
from .render import draw


def render(image: ImageRecord, names: dict[int, str]) -> Image.Image:
    """The image with its ground truth drawn by the same renderer as predictions (same colour per class)."""
    rgb = read_rgb(image)
    masks = []
    for ann in image.annotations:
        if ann.rle is not None:
            masks.append(decode_mask(ann.rle).astype(bool))
        elif ann.polygons:
            masks.append(polygons_to_mask(ann.polygons, rgb.shape[0], rgb.shape[1]).astype(bool))
        else:
            masks.append(None)
    texts = [names.get(a.category_id, str(a.category_id)) + (" (crowd)" if a.iscrowd else "") for a in image.annotations]
    boxes = np.array([a.bbox for a in image.annotations], np.float32).reshape(-1, 4)
    return Image.fromarray(draw(rgb, boxes, [a.category_id for a in image.annotations], texts, masks))


def grid(dataset: Dataset, out: Path, n: int = 16, cell: int = 320, seed: int = 0) -> int:
    """Write a grid of up to ``n`` random images to ``out``; returns how many were drawn."""
    usable = [im for im in dataset.images if im.path is not None or im.data is not None]
    picks = random.Random(seed).sample(usable, min(n, len(usable)))
    names = {c.id: c.name for c in dataset.categories}
    sheet([(render(im, names), Path(im.file_name).name[:40]) for im in picks], out, cell, caption_at_top=True)
    return len(picks)


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to fit ``width`` x ``height``, keeping its shape; never thinner than a pixel (a 20000x20
    panorama in a 316 px cell is 316x1, where Pillow's own contain() asks for a height of 0 and fails)."""
    scale = min(width / image.width, height / image.height)
    return image.resize((max(1, min(width, round(image.width * scale))), max(1, min(height, round(image.height * scale)))),
                        Image.BICUBIC)


def sheet(tiles: list[tuple[Image.Image, str]], out: Path, cell: int = 320, caption_at_top: bool = False) -> None:
    """Images fitted into square cells of a near-square grid, a caption on each, written to ``out`` as a PNG, or as
    a JPEG when its name says so (a sheet of photos, a tenth of the size)."""
    cols = max(1, int(np.ceil(np.sqrt(len(tiles)))))
    rows = max(1, int(np.ceil(len(tiles) / cols)))
    page = Image.new("RGB", (cols * cell, rows * cell), (32, 32, 32))
    room = 4 if caption_at_top else 16  # a caption under the image needs its own line
    for k, (image, caption) in enumerate(tiles):
        x, y = (k % cols) * cell + 2, (k // cols) * cell + 2
        page.paste(fit(image, cell - 4, cell - room), (x, y))
        ImageDraw.Draw(page).text((x + 2, y + 2 if caption_at_top else y + cell - 16), caption, fill=(255, 255, 255))
    buf = io.BytesIO()
    page.save(buf, format="JPEG" if out.suffix.lower() in (".jpg", ".jpeg") else "PNG", quality=90)
    atomic_write_bytes(out, buf.getvalue())
