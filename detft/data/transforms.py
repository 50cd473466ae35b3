"""Training augmentation with albumentations: boxes and masks move together, and every random
choice is seeded from (seed, epoch, image index) so a resumed run sees the same augmentations
whatever the number of workers.

With ``views`` (R-CNN over a cached frozen trunk), an image does not get a fresh draw every epoch: it has
``views`` fixed draws of the same pipeline, seeded from (seed, image index, view), and each epoch shows one of
them, every view once per cycle of ``views`` epochs in an order seeded per image and cycle. Each view is an
honest draw of flip, scale and colour (the same distribution a fresh draw has), but its pixels repeat, so the
frozen trunk's features of a view are computed once and cached like those of a flip: the trunk runs ``views``
times per image in a run instead of about every epoch."""

from __future__ import annotations

import random

import albumentations as A
import numpy as np

from ..errors import DetftError

AUGMENTATIONS = ("flip", "scale", "color", "mosaic")  # one vocabulary for every family
RCNN_AUGMENTATIONS = ("flip", "scale", "color")


def parse_augment(spec: str | None, supported: tuple[str, ...], family: str) -> list[str]:
    """``--augment``: comma-separated names from AUGMENTATIONS or 'none'; None means every one ``family``
    supports. A name the family cannot apply is an error, not silently skipped."""
    if spec is None:
        return list(supported)
    names = [s.strip() for s in spec.split(",") if s.strip() and s.strip() != "none"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise DetftError(f"--augment: unknown {unknown}; choose from {', '.join(AUGMENTATIONS)} or 'none'")
    unsupported = [n for n in names if n not in supported]
    if unsupported:
        raise DetftError(f"--augment {','.join(unsupported)}: not available for {family} (it has {', '.join(supported)})")
    return names


def build(spec: str | None = "none") -> A.Compose | None:
    """The R-CNN training pipeline for ``--augment`` (None: every augmentation R-CNN supports)."""
    names = parse_augment(spec, RCNN_AUGMENTATIONS, "R-CNN")
    if not names:
        return None
    ops: list[A.BasicTransform] = []
    if "flip" in names:
        ops.append(A.HorizontalFlip(p=0.5))
    if "scale" in names:
        ops.append(A.Affine(scale=(0.75, 1.25), translate_percent=(-0.05, 0.05), p=0.5, fill=114, fill_mask=0))
    if "color" in names:
        ops.append(A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5))
    return A.Compose(ops, bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels", "index"],
                                                    min_visibility=0.3, min_width=2, min_height=2, clip=True),
                     save_applied_params=True)  # which ops fired: the feature cache keys on them


FLIP = "HorizontalFlip"
DEFAULT_VIEWS = 4  # --augment-views over a cached trunk: bench/rcnn_defaults.py --study views (bench/RESULTS.md)
UNCACHEABLE = -1  # the variant of a fresh draw whose pixels a random scale or colour changed
VIEW_SALT = 719  # keeps the seeds of views apart from those of (seed, epoch, index) draws


def variant(applied: list[str], view: int | None = None) -> int:
    """The input's variant for the feature cache: 0 as read, 1 flipped; when a random scale or colour changed it,
    2 + its view (a view's pixels repeat), or UNCACHEABLE for a fresh draw. A view that came out as read or only
    flipped shares the key of the image or its flip, so its trunk runs once for both."""
    if any(name != FLIP for name in applied):
        return UNCACHEABLE if view is None else 2 + view
    return int(FLIP in applied)


def view_of(seed: int, epoch: int, index: int, views: int) -> int:
    """Which of image ``index``'s ``views`` views epoch ``epoch`` shows: each once per cycle of ``views`` epochs,
    in an order seeded per image and cycle (a resumed run, or any number of workers, shows the same)."""
    cycle, turn = divmod(epoch, views)
    return int(np.random.default_rng([seed, index, cycle, VIEW_SALT]).permutation(views)[turn])


def draw_seed(seed: int, epoch: int, index: int, views: int) -> tuple[tuple[int, ...], int | None]:
    """The seed of the augmentation draw for image ``index`` in ``epoch``, and its view (None: fresh draws)."""
    if views <= 0:
        return (seed, epoch, index), None
    view = view_of(seed, epoch, index, views)
    return (seed, index, view, VIEW_SALT), view


def apply(transform: A.Compose, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
          masks: np.ndarray | None, seed: tuple[int, ...]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Run ``transform`` with randomness fixed by ``seed``; masks of boxes that fell out go too. Also returns the
    names of the ops that fired."""
    transform.set_random_state(np.random.default_rng(list(seed)), random.Random("-".join(map(str, seed))))
    kwargs = {"image": image, "bboxes": boxes.reshape(-1, 4), "labels": labels, "index": np.arange(len(labels))}
    if masks is not None:
        kwargs["masks"] = list(masks)
    out = transform(**kwargs)
    keep = np.asarray(out["index"], dtype=np.int64)
    new_boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
    new_masks = None
    if masks is not None:
        m = out["masks"]
        new_masks = np.stack([np.asarray(m[i]) for i in keep]) if len(keep) else np.zeros((0, *out["image"].shape[:2]), np.uint8)
    applied = [name for name, _ in out.get("applied_transforms", [])]
    return out["image"], new_boxes, np.asarray(out["labels"], dtype=np.int64).reshape(-1), new_masks, applied
