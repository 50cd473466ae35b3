"""Dataset statistics for ``detft inspect``: what a person checks before training on a conversion."""

from __future__ import annotations

import math
from collections import Counter

from .dataset import Dataset, ImageRecord

SIZE_BINS = (0, 8, 16, 32, 64, 96, 128, 256, 512, 1024, math.inf)  # sqrt(box area) in px; 32/96 are COCO's


def objects_per_class(images: list[ImageRecord]) -> Counter[int]:
    """Objects per class id that training learns from and COCO's evaluation scores: crowd regions left out."""
    return Counter(a.category_id for im in images for a in im.annotations if not a.iscrowd)


def class_table(dataset: Dataset) -> str:
    splits = dataset.splits()
    counts = Counter((im.split or "train", a.category_id) for im in dataset.images for a in im.annotations)
    images_with = Counter((im.split or "train", a.category_id) for im in dataset.images
                          for a in {a.category_id: a for a in im.annotations}.values())
    width = max([len(c.name) for c in dataset.categories] + [5])
    head = f"{'class':<{width}}  " + "  ".join(f"{s + ' boxes':>12} {s + ' imgs':>10}" for s in splits)
    rows = [head, "-" * len(head)]
    for c in dataset.sorted_categories():
        rows.append(f"{c.name:<{width}}  " + "  ".join(
            f"{counts[(s, c.id)]:>12} {images_with[(s, c.id)]:>10}" for s in splits))
    totals = Counter(im.split or "train" for im in dataset.images)
    boxes = Counter(im.split or "train" for im in dataset.images for _ in im.annotations)
    rows.append("-" * len(head))
    rows.append(f"{'all':<{width}}  " + "  ".join(f"{boxes[s]:>12} {totals[s]:>10}" for s in splits))
    return "\n".join(rows)


def size_histogram(dataset: Dataset, bar: int = 40) -> str:
    sizes = [math.sqrt(max(a.width * a.height, 0.0)) for im in dataset.images for a in im.annotations]
    hist = Counter()
    for s in sizes:
        for lo, hi in zip(SIZE_BINS, SIZE_BINS[1:]):
            if lo <= s < hi:
                hist[(lo, hi)] += 1
                break
    peak = max(hist.values(), default=1)
    rows = ["box size (sqrt of area, px)   count"]
    for lo, hi in zip(SIZE_BINS, SIZE_BINS[1:]):
        n = hist[(lo, hi)]
        label = f"[{lo}, {hi})" if hi != math.inf else f"[{lo}, inf)"
        rows.append(f"{label:<14} {n:>8}  {'#' * round(bar * n / peak)}")
    small = sum(s < 32 for s in sizes)
    large = sum(s >= 96 for s in sizes)
    rows.append(f"COCO areas: small {small}, medium {len(sizes) - small - large}, large {large}")
    return "\n".join(rows)


def unlabeled_images(dataset: Dataset) -> list[str]:
    return [im.file_name for im in dataset.images if not im.annotations]
