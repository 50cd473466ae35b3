"""What ``--freeze auto``, ``--box-head auto`` and an unset ``--backbone-lr-factor`` or ``--roi-batch`` mean, by
what a start has learnt (YOLO takes the freeze column; the rest are R-CNN settings).

Measured, not guessed: ``bench/rcnn_defaults.py`` trains an ImageNet-only start (the packaged MobileNetV2-FPN)
each way for the same wall-clock time on BCCD and the embedded shapes (``bench/RESULTS.md``). With backbone
and FPN frozen and the light box head, the trunk runs once per image (the feature cache) and the head is 4x
smaller, so the same time buys about three times the epochs, and that beat every setting that trains more
of the network per step. With the trunk cached, the RoI heads are most of a step: sampling 128 proposals per
image instead of 512 for the box head's loss buys more epochs again and more AP at an equal budget (``bench/rcnn_defaults.py
--study views``). A start that learnt detection (COCO weights, a detector checkpoint, a pretrained
YOLO) keeps what it learnt: its backbone frozen and its own box head, which a new head would replace with
random weights. From random init there is nothing to keep: everything trains, the backbone at the heads' rate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..annotations.dataset import ImageRecord
from ..annotations.stats import objects_per_class
from ..config import TrainConfig


@dataclass(frozen=True)
class Choice:
    freeze: str
    box_head: str
    backbone_lr_factor: float  # for backbone layers that train (a pretrained one must not be wrecked)
    roi_batch: int | None  # proposals per image for the box head's loss (None: torchvision's 512)
    why: str


AUTO = {
    # 128 RoIs: with the trunk cached the RoI heads are most of a step; a quarter of them bought more epochs and
    # more AP at an equal budget (bench/rcnn_defaults.py --study views)
    "imagenet": Choice("backbone+neck", "light", 0.1, 128, "an ImageNet-only start: the best at an equal time budget"),
    "detector": Choice("backbone", "default", 0.1, None, "a start that learnt detection: what it learnt is kept"),
    "none": Choice("none", "default", 1.0, None, "random init: nothing learnt to keep"),
}


def pretraining(weights: str | None, default: str) -> str:
    """What a start has learnt: 'none' (random init), 'imagenet' (a classification backbone only) or 'detector'
    (every layer: COCO weights or a detector checkpoint); ``default`` is what the model's DEFAULT weights are."""
    text = str(weights or "none").lower()
    if text == "none":
        return "none"
    if text == "default":
        return default
    return "imagenet" if text == "backbone" or text.startswith("backbone:") else "detector"


def resolve_auto(cfg: TrainConfig, learnt: str,
                 fields: tuple[str, ...] = ("freeze", "box_head", "roi_batch")) -> tuple[TrainConfig, str | None]:
    """``cfg`` with each of ``fields`` that is 'auto' (or unset) replaced by what suits a start that learnt
    ``learnt``, and a line saying so (None when nothing was chosen)."""
    choice = AUTO[learnt]
    chosen = {k: getattr(choice, k) for k in fields
              if getattr(cfg, k) in ("auto", None) and getattr(choice, k) is not None}
    if not chosen:
        return cfg, None
    said = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in chosen.items())
    return cfg.replace(**chosen), f"auto: {said} ({choice.why})"


# The seeds' rule (Yosinski et al. 2014, "How transferable are features in deep neural networks?"; the practice
# Razavian et al. 2014 and CS231n's transfer-learning notes state): small data near the start's domain keeps the
# pretrained features (a fixed extractor), data far from it or plentiful trains them too. For a start that learnt
# detection, "far" is the feature shift of :mod:`.domain_shift` (the user's images against the statistics the start
# keeps of its own), "plentiful" the training images. FAR_SHIFT lies midway between two development-suite sets, an
# aquarium (0.30: the frozen backbone won at 5 CPU minutes) and drone views (0.41: the trained one won).
# Far is not enough: a backbone that trains must see the data often enough to move. Among the suite's sets far from
# COCO, at 5 CPU minutes, the trained backbone won where the budget fitted it 6 or more epochs (drone views 6-7,
# flakes under a microscope 17) and lost at 2-5 (crop rows 2, brain MRI 4-5, metal-printing defects 5), so a far set
# keeps the frozen backbone when training would see it fewer times. MIN_PASSES lies midway between the passes
# training really made on the two nearest sets: metal-printing defects 4.5 (lost) and drone views 6.2 (won); the
# pace probe estimates passes to about 10% (:mod:`.pace`). bench/RESULTS.md ("--freeze auto by the data") has the
# runs. LARGE_DATA is the practice's, not measured here: no suite set is that large.
FAR_SHIFT = 0.35
MIN_PASSES = 5.35
LARGE_DATA = 5000


@dataclass(frozen=True)
class Passes:
    """How many epochs training will run with the backbone training, and from what: the epochs asked for, or the
    time budget over the measured pace (:mod:`.pace`)."""

    epochs: float
    why: str

    def describe(self) -> str:
        return f"{self.epochs:.1f} epochs with the backbone training ({self.why})"


@dataclass(frozen=True)
class DataAmount:
    """How much there is to learn from: training images, objects, and the class with the fewest objects."""

    images: int
    objects: int
    fewest: int
    fewest_class: str | None

    @classmethod
    def of(cls, images: list[ImageRecord], names: dict[int, str]) -> DataAmount:
        counts = {**dict.fromkeys(names, 0), **objects_per_class(images)}
        used = {k: v for k, v in counts.items() if v} or counts
        rare = min(used, key=lambda k: (used[k], str(names.get(k, k))), default=None)
        return cls(len(images), sum(counts.values()), used.get(rare, 0) if rare is not None else 0,
                   names.get(rare, str(rare)) if rare is not None else None)

    def describe(self) -> str:
        rare = f", fewest per class {self.fewest:,} ({self.fewest_class})" if self.fewest_class else ""
        return f"{self.images:,} training images, {self.objects:,} objects{rare}"


def freeze_by_data(shift: float, amount: DataAmount, passes: Callable[[], Passes]) -> tuple[str, str]:
    """``--freeze auto`` for a start that learnt detection, from how far the data lies from the start's domain
    (``shift``), how much of it there is, and how often training will see it (``passes``, called only for data far
    from the domain: under a time budget it is measured); returns the policy and why, with the numbers."""
    near = f"near the start's domain (shift {shift:.2f} < {FAR_SHIFT})"
    if shift >= FAR_SHIFT:
        far = f"far from the start's domain (shift {shift:.2f} >= {FAR_SHIFT})"
        passes = passes()
        if passes.epochs >= MIN_PASSES:
            return "none", f"{far} and {passes.describe()} >= {MIN_PASSES}: the backbone trains too; {amount.describe()}"
        return "backbone", (f"{far} but only {passes.describe()} < {MIN_PASSES}: too few passes to move it, its "
                            f"features are kept; {amount.describe()}")
    if amount.images >= LARGE_DATA:
        return "none", (f"{near} with {amount.images:,} >= {LARGE_DATA:,} training images: enough to train the "
                        "backbone too")
    return "backbone", f"{near} with {amount.describe()}: its features are kept"
