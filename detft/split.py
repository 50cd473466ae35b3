"""Deterministic train/val/test splits: the same images land in the same split for the same seed,
whatever order the files were read in (images are sorted by name before shuffling)."""

from __future__ import annotations

import random

from .dataset import Dataset
from .errors import DetftError

SPLIT_NAMES = ("train", "val", "test")


def parse_fractions(spec: str) -> tuple[float, ...]:
    try:
        parts = tuple(float(p) for p in spec.split(","))
    except ValueError:
        raise DetftError(f"--split {spec!r}: expected fractions like 0.8,0.2,0") from None
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise DetftError(f"--split {spec!r}: give up to three non-negative fractions (train,val,test) summing to 1")
    return parts


def assign_splits(dataset: Dataset, fractions: tuple[float, ...], seed: int = 0) -> Dataset:
    """Overwrite every image's split. Counts are rounded so they add up to the number of images."""
    images = sorted(dataset.images, key=lambda im: im.file_name)
    random.Random(seed).shuffle(images)
    n = len(images)
    bounds, acc = [], 0.0
    for f in fractions:
        acc += f
        bounds.append(round(acc * n))
    start = 0
    for name, end in zip(SPLIT_NAMES, bounds):
        for im in images[start:end]:
            im.split = name
        start = end
    return dataset
