"""Deterministic train/val/test splits: the same images land in the same split for the same seed,
whatever order the files were read in (images are sorted by name before shuffling).

Two options a custom dataset needs (``detft split``): **stratified** by class, so a rare class is in every split
in proportion and not, by chance, only in train; and **grouped**, so near-identical images (the frames of one
video, bursts of one scene) stay in one split, or validation scores the model on copies of what it trained on.
Groups are found by looking: images whose difference hashes (9x8 grey thumbnails, 64 bits) are within
:data:`NEAR_BITS` of each other are joined, and joined chains form one group (a video drifts from frame to frame)."""

from __future__ import annotations

import functools
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..annotations.dataset import Dataset, ImageRecord
from ..annotations.report import Report
from ..errors import DetftError
from ..util.progress import progress

SPLIT_NAMES = ("train", "val", "test")
NEAR_BITS = 6  # of 64: frames of one video differ by fewer; two different photos by far more (bench/RESULTS.md)
CHUNK = 256  # images of one band bucket compared at once


def parse_fractions(spec: str, flag: str = "--split") -> tuple[float, ...]:
    """``train,val,test`` fractions given as ``flag``: up to three finite, non-negative numbers summing to 1."""
    try:
        parts = tuple(float(p) for p in spec.split(","))
    except ValueError:
        raise DetftError(f"{flag} {spec!r}: expected fractions like 0.8,0.2,0") from None
    if not 1 <= len(parts) <= 3 or any(not math.isfinite(p) or p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise DetftError(f"{flag} {spec!r}: give up to three finite, non-negative fractions (train,val,test) "
                         "summing to 1")
    return parts


@dataclass(frozen=True)
class Splitting:
    fractions: tuple[float, ...]
    seed: int = 0
    stratify: bool = False  # each class in each split in proportion to the fractions
    group: bool = False  # near-identical images kept in one split


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


def dhash(image: ImageRecord) -> int:
    """64-bit difference hash of the image as displayed: each bit, whether a pixel of a 9x8 grey thumbnail is
    brighter than its right neighbour (robust to resizing, re-encoding and small changes between frames)."""
    from PIL import Image

    from ..annotations.images import read_rgb

    if image.path is not None and image.window is None:
        stat = image.path.stat()
        return _file_dhash(str(image.path), stat.st_mtime_ns, stat.st_size)
    return _grey_dhash(Image.fromarray(read_rgb(image)))


@functools.lru_cache(maxsize=1 << 16)
def _file_dhash(path: str, _mtime_ns: int, _size: int) -> int:
    """A file's hash, kept for the process while the file is unchanged: every trial of a benchmark loads the same
    data and checks its splits again."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("L", (64, 64))  # JPEG: decode at 1/8 scale, the thumbnail needs no more
        return _grey_dhash(im)


def _grey_dhash(im: Any) -> int:
    from PIL import Image

    grey = np.asarray(im.convert("L").resize((9, 8), Image.BILINEAR), np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def _bands(hashes: np.ndarray, n: int) -> list[np.ndarray]:
    """The 64 bits cut into ``n`` contiguous bands, each band's value per hash."""
    edges = np.linspace(0, 64, n + 1).astype(int)
    return [(hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1) for lo, hi in zip(edges[:-1], edges[1:])]


def near_groups(images: list[ImageRecord], near_bits: int = NEAR_BITS) -> list[int]:
    """A group number per image: connected components of "hashes within ``near_bits`` bits of each other".

    Two hashes that differ in at most ``near_bits`` bits agree exactly on at least one of ``near_bits + 1``
    bands, so only images sharing a band value are compared: exact, and near linear in the number of images."""
    hashes = np.array([dhash(im) for im in progress(images, "hashing images", unit="img")], np.uint64)
    parent = list(range(len(images)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for band in _bands(hashes, near_bits + 1):
        order = np.argsort(band, kind="stable")
        values = band[order]
        for members in np.split(order, np.flatnonzero(values[1:] != values[:-1]) + 1):
            if len(members) < 2:
                continue
            for k in range(0, len(members), CHUNK):
                rows = members[k:k + CHUNK]
                close = np.bitwise_count(hashes[rows][:, None] ^ hashes[members][None, :]) <= near_bits
                for i, j in zip(*np.nonzero(close)):
                    a, b = find(int(rows[i])), find(int(members[j]))
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(images))]


def _quotas(total: int, fractions: tuple[float, ...]) -> list[int]:
    bounds = np.round(np.cumsum(fractions) * total).astype(int)
    return np.diff(np.concatenate([[0], bounds])).tolist()


def split_dataset(dataset: Dataset, splitting: Splitting, report: Report) -> Dataset:
    """Overwrite every image's split as ``splitting`` says; stratification, groups and a split that had to be
    filled are reported."""
    names = SPLIT_NAMES[:len(splitting.fractions)]
    if not (splitting.stratify or splitting.group):
        assign_splits(dataset, splitting.fractions, splitting.seed)
        _fill_empty([[im] for im in sorted(dataset.images, key=lambda im: im.file_name)], names,
                    splitting.fractions, report)
        return dataset
    images = sorted(dataset.images, key=lambda im: im.file_name)
    group_of = near_groups(images) if splitting.group else list(range(len(images)))
    units: dict[int, list[ImageRecord]] = {}
    for im, g in zip(images, group_of):
        units.setdefault(g, []).append(im)
    order = list(units.values())
    random.Random(splitting.seed).shuffle(order)
    want_images = _quotas(len(images), splitting.fractions)
    classes = Counter(a.category_id for im in images for a in im.annotations)
    want = {c: _quotas(n, splitting.fractions) for c, n in classes.items()}
    have_images = [0] * len(names)
    have = {c: [0] * len(names) for c in classes}

    def counts(unit: list[ImageRecord]) -> Counter:
        return Counter(a.category_id for im in unit for a in im.annotations)

    if splitting.stratify:  # the units holding the rarest class first: they are the hardest to place well
        order.sort(key=lambda u: min((classes[c] for c in counts(u)), default=len(images) + 1))
    for unit in order:
        held = counts(unit)
        open_ = [k for k in range(len(names)) if splitting.fractions[k] > 0]
        if splitting.stratify and held:
            rare = min(held, key=lambda c: classes[c])
            k = max(open_, key=lambda k: (want[rare][k] - have[rare][k], want_images[k] - have_images[k], -k))
        else:
            k = max(open_, key=lambda k: (want_images[k] - have_images[k], -k))
        for im in unit:
            im.split = names[k]
        have_images[k] += len(unit)
        for c, n in held.items():
            have[c][k] += n
    _fill_empty(list(units.values()), names, splitting.fractions, report)
    if splitting.group:
        sizes = sorted((len(u) for u in units.values()), reverse=True)
        joined = sum(s for s in sizes if s > 1)
        report.note(f"split by groups: {len(images)} images in {len(units)} groups; {joined} near-identical images "
                    f"in {sum(s > 1 for s in sizes)} groups of 2 or more (largest {sizes[0]}), each kept in one split")
    if splitting.stratify and classes:
        placed = Counter((a.category_id, im.split) for im in images for a in im.annotations)
        worst = max((abs(placed[c, names[k]] / classes[c] - splitting.fractions[k]), c, k)
                    for c in classes for k in range(len(names)))
        cat = dataset.category_by_id()
        report.note(f"split stratified by class: every class within {worst[0]:.1%} of its share "
                    f"(worst: {cat[worst[1]].name if worst[1] in cat else worst[1]} in {names[worst[2]]})")
    return dataset


def _fill_empty(units: list[list[ImageRecord]], names: tuple[str, ...], fractions: tuple[float, ...],
                report: Report) -> None:
    """A split the fractions ask for is never left empty while another holds more than one unit (an image, or a
    group of near-identical ones): rounding a small dataset's quotas would otherwise train or validate on nothing.
    The smallest unit of the largest split moves; each move, and each split that cannot be filled, is said."""
    held = {n: [u for u in units if u[0].split == n] for n in names}
    for name, fraction in zip(names, fractions):
        if fraction <= 0 or held[name]:
            continue
        donors = [n for n in names if len(held[n]) > 1]
        if not donors:
            report.note(f"split {name} is empty: {len(units)} image(s) or group(s) cannot fill the "
                        f"{sum(f > 0 for f in fractions)} splits the fractions ask for")
            continue
        donor = max(donors, key=lambda n: (sum(len(u) for u in held[n]), -names.index(n)))
        unit = min(held[donor], key=lambda u: (len(u), u[0].file_name))
        held[donor].remove(unit)
        held[name].append(unit)
        for im in unit:
            im.split = name
        report.note(f"split {name} would be empty at fractions {','.join(f'{f:g}' for f in fractions)} with "
                    f"{len(units)} image(s) or group(s): {len(unit)} image(s) moved there from {donor}")


def kfolds(images: list[ImageRecord], k: int, seed: int = 0, group: bool = True) -> list[int]:
    """A fold number (0..k-1) per image of ``images``, for k-fold cross-validation: the same for the same images and
    seed, whatever order they come in. With ``group``, near-identical images (:func:`near_groups`) share a fold, or a
    model would be scored on copies of what it trained on; groups go largest first to the fold holding fewest
    images, so folds differ in size by at most the largest group."""
    if k < 2:
        raise DetftError(f"--folds {k}: at least 2 (each image is scored by a model trained on the other folds)")
    order = sorted(range(len(images)), key=lambda i: images[i].file_name)
    group_of = near_groups([images[i] for i in order]) if group else list(range(len(order)))
    units: dict[int, list[int]] = {}
    for i, g in zip(order, group_of):
        units.setdefault(g, []).append(i)
    if len(units) < k:
        fewer = (f"use --folds {len(units)} or fewer" if len(units) >= 2
                 else "score with the run's own model (--no-folds)")
        grouped = len(units) < len(images)
        raise DetftError(f"--folds {k}: only {len(images)} image(s)"
                         + (f" in {len(units)} group(s) of near-identical images" if grouped else "")
                         + f", fewer than the folds; {fewer}" + (" (or --no-group)" if grouped else ""))
    shuffled = list(units.values())
    random.Random(seed).shuffle(shuffled)
    shuffled.sort(key=len, reverse=True)  # stable: equal sizes keep the seeded order
    fold, held = [0] * len(images), [0] * k
    for unit in shuffled:
        f = min(range(k), key=lambda f: (held[f], f))
        for i in unit:
            fold[i] = f
        held[f] += len(unit)
    return fold
