"""The embedded default dataset: coloured shapes on textured backgrounds, generated here so that
detft's main commands work on a fresh offline machine, with boxes and exact polygon masks.

Deterministic for a seed: the same annotations every time (``python -m detft.operations.synthetic OUT``)."""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..annotations.dataset import Annotation, Category, Dataset, ImageRecord
from ..annotations.geometry import ellipse_polygon, polygons_bbox
from ..formats.coco import to_coco_dict
from ..util.output import atomic_directory

CLASSES = ("circle", "square", "triangle")


def _shape(kind: str, cx: float, cy: float, r: float, angle: float) -> list[float]:
    if kind == "circle":
        return ellipse_polygon(cx, cy, r, r, n=24)
    n = 4 if kind == "square" else 3
    return [v for k in range(n) for v in (cx + r * math.cos(angle + 2 * math.pi * k / n),
                                          cy + r * math.sin(angle + 2 * math.pi * k / n))]


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    base = rng.integers(0, 256, 3)
    noise = rng.normal(0, 25, (size // 8, size // 8, 3))
    tex = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    return tex.filter(ImageFilter.GaussianBlur(2))


def make_image(rng: random.Random, nrng: np.random.Generator, size: int) -> tuple[Image.Image, list[Annotation]]:
    img = _background(nrng, size)
    draw = ImageDraw.Draw(img)
    anns: list[Annotation] = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(rng.choice([0, 1, 2, 2, 3, 3, 4])):
        for _attempt in range(20):
            r = rng.uniform(size * 0.08, size * 0.22)
            cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
            if all(math.hypot(cx - x, cy - y) > r + q + 2 for x, y, q in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        k = rng.randrange(len(CLASSES))
        poly = _shape(CLASSES[k], cx, cy, r, rng.uniform(0, math.pi))
        draw.polygon(poly, fill=tuple(rng.randrange(256) for _ in range(3)))
        anns.append(Annotation(k + 1, polygons_bbox([poly]), polygons=[[round(v, 2) for v in poly]]))
    return img, anns


def generate(out: Path, n_train: int = 48, n_val: int = 16, size: int = 160, seed: int = 0,
             overwrite: bool = False) -> Dataset:
    """Write a COCO dataset (``annotations/instances_{train,val}.json`` + ``images/{train,val}``)."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    images: list[ImageRecord] = []
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for split, n in (("train", n_train), ("val", n_val)):
            for i in range(n):
                img, anns = make_image(rng, nrng, size)
                name = f"{split}_{i:04d}.jpg"
                path = tmp / "images" / split / name
                path.parent.mkdir(parents=True, exist_ok=True)
                img.save(path, quality=92)
                images.append(ImageRecord(name, size, size, path=out / "images" / split / name,
                                          annotations=anns, split=split))
        ds = Dataset(images, [Category(i + 1, n) for i, n in enumerate(CLASSES)], root=out, format="coco")
        for split in ("train", "val"):
            split_images = ds.images_in(split)
            doc = to_coco_dict(ds, split_images, [im.file_name for im in split_images])
            doc["info"] = {"description": f"detft synthetic shapes, seed {seed}", "version": "1"}
            (tmp / "annotations").mkdir(exist_ok=True)
            (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc, indent=0) + "\n")
    return ds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="generate the synthetic shapes dataset")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    ds = generate(a.out, seed=a.seed, overwrite=a.overwrite)
    print(f"wrote {len(ds.images)} images, {ds.num_annotations} shapes to {a.out}")


if __name__ == "__main__":
    main()
