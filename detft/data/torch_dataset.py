"""A torch Dataset over detft ImageRecords in the form torchvision detection models take."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from ..annotations.dataset import ImageRecord
from ..annotations.geometry import decode_mask, polygons_to_mask
from ..annotations.images import read_rgb
from ..models.labels import LabelMap
from . import transforms as T
from .image_cache import ImageCache, Size, shrink_image, shrink_targets, shrunk_size


def instance_masks(image: ImageRecord, anns: list) -> np.ndarray:
    masks = np.zeros((len(anns), image.height, image.width), np.uint8)
    for k, a in enumerate(anns):
        if a.rle is not None:
            masks[k] = decode_mask(a.rle)
        elif a.polygons:
            masks[k] = polygons_to_mask(a.polygons, image.height, image.width)
        else:  # a box-only object in a mask dataset: its box is the best mask we have
            x0, y0, x1, y1 = (int(round(v)) for v in a.bbox)
            masks[k, y0:y1, x0:x1] = 1
    return masks


class DetectionDataset(TorchDataset):
    """Items are ``(image float CHW in [0,1], target dict)``; crowd regions are left out of training,
    as torchvision's references do. ``resize`` (the model's (min_size, max_size)) shrinks larger images to the
    size the model works at before augmentation, and ``cache`` keeps them decoded (see image_cache.py)."""

    def __init__(self, images: list[ImageRecord], labels: LabelMap, masks: bool = False,
                 augment: str | None = "none", seed: int = 0, resize: tuple[int, int] | None = None):
        self.images, self.labels, self.masks = images, labels, masks
        self.transform = T.build(augment)
        self.seed, self.epoch = seed, 0
        self.views, self.views_until = 0, None  # fresh draws every epoch (see use_views)
        self.sizes: list[Size] = [shrunk_size(im.height, im.width, *resize) if resize else (im.height, im.width)
                                  for im in images]
        self.cache: ImageCache | None = None

    def pixels(self, index: int) -> np.ndarray:
        """The image at its working size: from the cache, or decoded (and stored for next time)."""
        rgb = self.cache.get(index) if self.cache is not None else None
        if rgb is None:
            rgb = shrink_image(read_rgb(self.images[index]), self.sizes[index])
            if self.cache is not None:
                self.cache.put(index, rgb)
        return rgb

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def use_views(self, views: int, until: int | None = None) -> None:
        """Show each image one of ``views`` fixed augmented views per epoch (transforms.py) before epoch ``until``
        (the epoch a frozen trunk thaws: past it nothing is cached, and fresh draws see more), fresh draws
        after. Set before a DataLoader's workers start: they take the dataset as it is then."""
        self.views, self.views_until = views, until

    def __len__(self) -> int:
        return len(self.images)

    def aspect_ratios(self) -> list[float]:
        return [im.width / im.height for im in self.images]

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``item``: an index (augmented as of :meth:`set_epoch`), or (epoch, index) from the training sampler."""
        epoch, index = item if isinstance(item, tuple) else (self.epoch, item)
        image = self.images[index]
        rgb = self.pixels(index)
        anns = [a for a in image.annotations if not a.iscrowd]
        boxes = np.array([a.bbox for a in anns], np.float32).reshape(-1, 4)
        labels = np.array([self.labels.to_model(a.category_id) for a in anns], np.int64)
        masks = instance_masks(image, anns) if self.masks else None
        boxes, masks = shrink_targets(boxes, masks, (image.height, image.width), self.sizes[index])
        applied: list[str] = []
        view = None
        if self.transform is not None:
            views = self.views if self.views_until is None or epoch < self.views_until else 0
            seed, view = T.draw_seed(self.seed, epoch, index, views)
            rgb, boxes, labels, masks, applied = T.apply(self.transform, rgb, boxes, labels, masks, seed)
        target = {"boxes": torch.from_numpy(boxes).reshape(-1, 4), "labels": torch.from_numpy(labels),
                  "image_id": torch.tensor(index),
                  "cache_key": torch.tensor([index, T.variant(applied, view)])}  # the trainer takes it off for its cache
        if masks is not None:
            target["masks"] = torch.from_numpy(np.ascontiguousarray(masks))
        img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255)
        return img, target


def collate(batch: list) -> tuple[list, list]:
    images, targets = zip(*batch)
    return list(images), list(targets)
