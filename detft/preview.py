"""A PNG grid of sample images with their boxes and masks drawn, because people check a conversion
by looking at it. Images are shown as displayed (EXIF orientation applied), like the annotations."""

from __future__ import annotations

import colorsys
import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from .dataset import Dataset, ImageRecord
from .geometry import decode_mask
from .images import read_rgb
from .output import atomic_write_bytes

MASK_ALPHA = 0.45


def color(category_id: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((category_id * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def render(image: ImageRecord, names: dict[int, str]) -> Image.Image:
    rgb = read_rgb(image).astype(np.float32)
    for ann in image.annotations:
        mask = None
        if ann.rle is not None:
            mask = decode_mask(ann.rle).astype(bool)
        elif ann.polygons:
            layer = Image.new("L", (rgb.shape[1], rgb.shape[0]), 0)
            for p in ann.polygons:
                ImageDraw.Draw(layer).polygon(p, fill=1)
            mask = np.asarray(layer).astype(bool)
        if mask is not None and mask.shape == rgb.shape[:2]:
            rgb[mask] = rgb[mask] * (1 - MASK_ALPHA) + np.array(color(ann.category_id)) * MASK_ALPHA
    canvas = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 300))
    for ann in image.annotations:
        c = color(ann.category_id)
        draw.rectangle(ann.bbox, outline=c, width=width)
        label = names.get(ann.category_id, str(ann.category_id)) + (" (crowd)" if ann.iscrowd else "")
        tx, ty = ann.bbox[0], max(0, ann.bbox[1] - 11)
        draw.rectangle(draw.textbbox((tx, ty), label), fill=c)
        draw.text((tx, ty), label, fill=(0, 0, 0))
    return canvas


def grid(dataset: Dataset, out: Path, n: int = 16, cell: int = 320, seed: int = 0) -> int:
    """Write a grid of up to ``n`` random images to ``out``; returns how many were drawn."""
    usable = [im for im in dataset.images if im.path is not None]
    picks = random.Random(seed).sample(usable, min(n, len(usable)))
    cols = max(1, int(np.ceil(np.sqrt(len(picks)))))
    rows = max(1, int(np.ceil(len(picks) / cols)))
    sheet = Image.new("RGB", (cols * cell, rows * cell), (32, 32, 32))
    names = {c.id: c.name for c in dataset.categories}
    for k, im in enumerate(picks):
        tile = ImageOps.contain(render(im, names), (cell - 4, cell - 4))
        x, y = (k % cols) * cell + 2, (k // cols) * cell + 2
        sheet.paste(tile, (x, y))
        ImageDraw.Draw(sheet).text((x + 2, y + 2), Path(im.file_name).name[:40], fill=(255, 255, 255))
    atomic_write_bytes(out, _png_bytes(sheet))
    return len(picks)


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
