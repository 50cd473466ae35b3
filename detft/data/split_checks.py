"""Warnings, said before the first epoch and kept in eval.json (``warnings``), of when the number a run reports
will mislead: a class with objects to score but no training object (the model never saw one, so its AP is about 0
and the mean over classes carries that 0), classes with too few training objects to learn, scored images the model
trained on (identical bytes in two splits, or near-identical by the difference hash ``detft split`` groups
images by), and a split with too few objects for its AP to tell two runs apart. Each names its classes or files.
A published Roboflow export of ships validates 4 of its 5 classes on no training object at all: its AP of 0.005
measured the split, not the model, and nothing said so.

Cost: counting objects is free. Identical images are found by byte size first, and only files whose size another
split also has are read (:func:`..operations.merging.earlier_copies`). Near-identical ones need every image's
difference hash, one decode each (a 640x480 JPEG, decoded at 1/8 scale, 0.7 ms on one core; a PNG of that size
9 ms), so that check runs on at most :data:`NEAR_CHECK_LIMIT` images and says so when there are more."""

from __future__ import annotations

from collections import Counter
from typing import Any, TypedDict

from ..annotations.dataset import Category, ImageRecord
from ..annotations.stats import objects_per_class
from ..operations.merging import earlier_copies
from ..operations.split import NEAR_BITS, near_groups

MIN_TRAIN_OBJECTS = 10
"""A class with fewer training objects than this is named: ten is the most shots of the standard few-shot detection
benchmarks (Pascal VOC's 1, 2, 3, 5 and 10), so below it a class is in few-shot territory, where plain fine-tuning
learns it poorly and its AP depends on which few objects happened to be labelled."""

MIN_SCORED_OBJECTS = 20
"""A scored split with fewer objects than this is named: one object found or missed then moves its class's recall
by more than 5 points, more than most differences between two settings or two seeds."""

NEAR_CHECK_LIMIT = 10_000
"""The most images (training and scored together) hashed for near-duplicates before training: 7 s of JPEGs or
90 s of PNGs at the rates above. Past it the check is skipped, and that is said: ``detft split`` hashes and groups
any number once, where the cost is expected."""

SHOWN = 5  # classes or files a printed warning names before "and N more"; eval.json lists every one


class SplitWarning(TypedDict):
    """One warning as eval.json keeps it; the printed line is ``warning: `` and its message."""

    kind: str  # untrained_classes, small_split, same_images, near_duplicates, near_duplicates_unchecked, rare_classes
    split: str  # the split it is about
    message: str  # the counts, the consequence, and the first SHOWN names
    items: list[dict[str, Any]]  # every class or image it is about, with its counts or its twin


def check_splits(categories: list[Category], train: list[ImageRecord], scored: dict[str, list[ImageRecord]],
                 train_split: str = "train") -> list[SplitWarning]:
    """The warnings for training on ``train`` and scoring each split in ``scored`` (name -> images; the val
    split first), the most damaging kinds first."""
    names = {c.id: c.name for c in categories}
    trained = objects_per_class(train)
    warnings = [w for split, images in scored.items()
                for w in _class_warnings(split, objects_per_class(images), trained, names)]
    same, copies = _same_images(train, scored, train_split)
    warnings += same
    warnings += _near_duplicates(train, scored, copies)
    rare = sorted((c for c in names if 0 < trained[c] < MIN_TRAIN_OBJECTS), key=lambda c: (trained[c], names[c]))
    if rare:
        warnings.append(SplitWarning(
            kind="rare_classes", split=train_split, items=[{"class": names[c], "objects": trained[c]} for c in rare],
            message=f"{train_split}: {len(rare)} class(es) with fewer than {MIN_TRAIN_OBJECTS} training objects, too "
                    "few to learn well (their AP rests on which few objects were labelled): "
                    + _listed([f"{names[c]} ({trained[c]})" for c in rare])))
    return warnings


def _of(n: int, total: int) -> str:
    return f"{n} of its {total} images {'is' if n == 1 else 'are'}"


def _listed(parts: list[str]) -> str:
    return ", ".join(parts[:SHOWN]) + (f" and {len(parts) - SHOWN} more" if len(parts) > SHOWN else "")


def _class_warnings(split: str, here: Counter[int], trained: Counter[int], names: dict[int, str]) -> list[SplitWarning]:
    """Classes ``split`` scores that training never showed, and too few objects in it to tell two runs apart."""
    out = []
    untrained = sorted((c for c in here if not trained[c]), key=lambda c: (-here[c], names[c]))
    if untrained:
        ceiling = (len(here) - len(untrained)) / len(here)
        out.append(SplitWarning(
            kind="untrained_classes", split=split,
            items=[{"class": names[c], "objects": here[c], "training_objects": 0} for c in untrained],
            message=f"{split}: {len(untrained)} of the {len(here)} classes it scores have no training object: the "
                    f"model never saw one, so each scores AP about 0, and the mean AP over classes cannot reach much "
                    f"above {ceiling:.2f}: "
                    + _listed([f"{names[c]} ({here[c]} in {split})" for c in untrained])))
    total = sum(here.values())
    if total < MIN_SCORED_OBJECTS:
        out.append(SplitWarning(
            kind="small_split", split=split, items=[{"objects": total}],
            message=f"{split}: no objects to score, so it has no AP" if not total else
                    f"{split}: only {total} object(s) to score (fewer than {MIN_SCORED_OBJECTS}): one found or missed "
                    f"moves its class's recall by {1 / total:.0%} or more, more than most differences between runs"))
    return out


def _same_images(train: list[ImageRecord], scored: dict[str, list[ImageRecord]],
                 train_split: str) -> tuple[list[SplitWarning], set[int]]:
    """Scored images whose bytes an earlier split (training first) also has, one warning per pair of splits; and
    the ids of those that are training images, which the near-duplicate check need not hash again."""
    splits = [train_split, *scored]
    pairs: dict[tuple[str, str], list[dict[str, str]]] = {}
    of_training: set[int] = set()
    for split, images, found in zip(splits[1:], scored.values(), earlier_copies([train, *scored.values()])[1:]):
        for im, copy in zip(images, found):
            if copy is not None:
                pairs.setdefault((split, splits[copy[0]]), []).append({"image": im.file_name,
                                                                       "same_as": copy[1].file_name})
                if copy[0] == 0:
                    of_training.add(id(im))
    warnings = [SplitWarning(
        kind="same_images", split=split, items=[{**i, "in": other} for i in items],
        message=f"{split}: {_of(len(items), len(scored[split]))} also in {other} (identical bytes), so "
                + ("it scores images the model trained on: " if other == train_split else
                   f"{other} and {split} score the same images: ")
                + _listed([f"{i['image']} = {i['same_as']}" for i in items]))
        for (split, other), items in pairs.items()]
    return warnings, of_training


def _near_duplicates(train: list[ImageRecord], scored: dict[str, list[ImageRecord]],
                     said: set[int]) -> list[SplitWarning]:
    """Scored images near-identical to a training image (or joined to one by a chain of near-identical frames, as
    ``detft split`` groups them): the model is scored on what it trained on, slightly changed. The images in
    ``said`` (ids; copies of training images, already named) are neither hashed nor named again."""
    if not scored:  # nothing scored: no image to compare with training's, none worth decoding
        return []
    readable = [im for ims in (train, *scored.values()) for im in ims
                if (im.path is not None or im.data is not None) and id(im) not in said]
    if len(readable) > NEAR_CHECK_LIMIT:
        return [SplitWarning(
            kind="near_duplicates_unchecked", split=next(iter(scored), ""), items=[{"images": len(readable)}],
            message=f"near-identical images across splits not checked: {len(readable):,} images, more than the "
                    f"{NEAR_CHECK_LIMIT:,} hashed before training; detft split hashes them all and keeps each group of "
                    "near-identical images in one split")]
    groups = near_groups(readable)
    trained = {id(im) for im in train}
    first_trained: dict[int, ImageRecord] = {}
    for im, g in zip(readable, groups):
        if id(im) in trained:
            first_trained.setdefault(g, im)
    group_of = {id(im): g for im, g in zip(readable, groups)}
    out = []
    for split, images in scored.items():
        items = [{"image": im.file_name, "near": first_trained[group_of[id(im)]].file_name} for im in images
                 if id(im) in group_of and group_of[id(im)] in first_trained]
        if items:
            out.append(SplitWarning(
                kind="near_duplicates", split=split, items=items,
                message=f"{split}: {_of(len(items), len(images))} near-identical to training images "
                        f"(difference hashes within {NEAR_BITS} of 64 bits, directly or through a chain of such "
                        "frames), so it partly scores what the model trained on: "
                        + _listed([f"{i['image']} ~ {i['near']}" for i in items])))
    return out
