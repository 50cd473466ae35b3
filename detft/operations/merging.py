"""Several datasets as one (``detft merge``, and training on pseudo-labels beside real ones): classes joined by
name, the same image found twice (by its bytes, whatever it is called) kept once and reported. Only images
whose byte size another dataset also has are read and hashed.

The first dataset's class ids are kept as they are (a model trained on the merge still maps onto the first
dataset's own ids, which evaluation reads); a class first met in a later dataset gets the next free id."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from ..annotations.dataset import Category, Dataset, ImageRecord, name_key
from ..annotations.report import Report
from ..errors import DetftError
from ..util.progress import progress

CHUNK = 1 << 20


def content_hash(image: ImageRecord) -> str | None:
    """The image's bytes hashed (tiles: their window too); None when there is neither a file nor embedded data."""
    h = hashlib.sha1(usedforsecurity=False)
    if image.path is not None:
        try:
            with open(image.path, "rb") as f:
                while block := f.read(CHUNK):
                    h.update(block)
        except OSError as e:
            raise DetftError(f"{image.path}: cannot read ({e.strerror or e})") from None
    elif image.data is not None:
        h.update(image.data)
    else:
        return None
    if image.window is not None:
        h.update(repr(image.window).encode())
    return h.hexdigest()


def _size_key(image: ImageRecord) -> tuple[int, tuple[int, int, int, int] | None] | None:
    """What identical images must share before their bytes are worth hashing: byte size and tile window."""
    if image.path is not None:
        try:
            return image.path.stat().st_size, image.window
        except OSError as e:
            raise DetftError(f"{image.path}: cannot read ({e.strerror or e})") from None
    return (len(image.data), image.window) if image.data is not None else None


def earlier_copies(groups: list[list[ImageRecord]]) -> list[list[tuple[int, ImageRecord] | None]]:
    """Per image of each group, the first image of an earlier group with identical bytes, as (that group's index,
    that image), or None: the same image found twice whatever it is called. Copies within one group are not looked
    for (check reports a file listed twice). Only images whose byte size another group also has are read."""
    keys = [[_size_key(im) for im in images] for images in groups]
    in_groups = Counter(k for ks in keys for k in set(ks) if k is not None)  # a size no other group has: unique
    seen: dict[str, tuple[int, ImageRecord]] = {}  # content hash -> where an earlier group has it
    found: list[list[tuple[int, ImageRecord] | None]] = []
    for g, (images, ks) in enumerate(zip(groups, keys)):
        here: dict[str, tuple[int, ImageRecord]] = {}
        found.append([])
        for im, key in zip(images, ks):
            digest = content_hash(im) if key is not None and in_groups[key] > 1 else None
            found[-1].append(seen.get(digest) if digest is not None else None)
            if digest is not None and digest not in seen:
                here.setdefault(digest, (g, im))
        seen.update(here)
    return found


def _case_twins(names: list[str]) -> list[tuple[str, str]]:
    """Pairs of names equal but for case, the first-met one first."""
    first: dict[str, str] = {}
    pairs = []
    for n in names:
        key = name_key(n).casefold()
        if key in first:
            pairs.append((first[key], n))
        else:
            first[key] = n
    return pairs


def merge(datasets: list[Dataset], report: Report, labels: list[str] | None = None) -> Dataset:
    """One dataset of ``datasets`` in order; ``labels`` names each one in the report (default: its root). The
    datasets' image records are taken over (their annotations' class ids rewritten), not copied."""
    if not datasets:
        raise DetftError("merge: no datasets given")
    labels = labels or [str(ds.root or f"dataset {k + 1}") for k, ds in enumerate(datasets)]
    ids = {c.name: c.id for c in datasets[0].categories}
    supercategory = {c.name: c.supercategory for c in datasets[0].categories}
    alias: dict[str, str] = {}  # a later dataset's name -> the name it joins
    for ds, label in zip(datasets[1:], labels[1:]):
        for c in ds.sorted_categories():
            if c.name in ids or c.name in alias:
                continue
            same = next((n for n in ids if name_key(n) == name_key(c.name)), None)
            if same is not None:
                alias[c.name] = same
                report.note(f"class {c.name!r} of {label} joined to {same!r}: the names differ only in surrounding "
                            "spaces or Unicode form")
                continue
            ids[c.name] = max(ids.values(), default=0) + 1
            supercategory[c.name] = c.supercategory
    for a, b in _case_twins(list(ids)):
        report.note(f"classes {a!r} and {b!r} differ only in case: kept as two classes; --map \"'{b}'='{a}'\" joins "
                    "them")
    copies = earlier_copies([ds.images for ds in datasets])
    images: list[ImageRecord] = []
    for ds, label, found in zip(datasets, labels, copies):
        names = {c.id: c.name for c in ds.categories}
        for im, copy in zip(progress(ds.images, f"merging {Path(label).name}", unit="img"), found):
            if copy is not None:
                lost = len(im.annotations)
                report.add("dropped" if lost else "fixed", "duplicate_image", im.where(),
                           f"{im.file_name} is the same image as {labels[copy[0]]}: {copy[1].file_name} (identical "
                           "bytes): kept once, from the earlier dataset"
                           + (f"; its {lost} annotation(s) here are not used" if lost else ""), lost)
                continue
            for a in im.annotations:
                name = names[a.category_id]
                a.category_id = ids[alias.get(name, name)]
            images.append(im)
    categories = sorted((Category(i, n, supercategory[n]) for n, i in ids.items()), key=lambda c: c.id)
    root = datasets[0].root if len(datasets) == 1 else None
    return Dataset(images, categories, root=root, format="merged" if len(datasets) > 1 else datasets[0].format)
