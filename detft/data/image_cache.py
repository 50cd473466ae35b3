"""Training images decoded once, at the size the model works at, and reused every later epoch.

Every epoch the data-loader workers decode each JPEG again, and for a photo larger than the model's input
the model's transform then throws most of those pixels away. :func:`shrink_image` does that reduction in the
dataset instead, with the transform's own operation (so the model's resize is then a no-op-sized step and a
4000x3000 photo no longer crosses from a worker as a 144 MB float tensor), and :class:`ImageCache` keeps the
result as uint8 so epoch 2 on reads no JPEG at all.

The cache is one memory-mapped file under the run folder that every worker process maps (written by
whichever worker decodes an image first, each image in its own slot, a ready byte per image set after
its pixels): the OS keeps it in RAM while it fits, it works with fork and spawn alike, and it has no
/dev/shm size limit to hit. Images take slots in order while their bytes stay within the budget; the rest
are decoded every time, as without a cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

Size = tuple[int, int]  # (height, width)


def shrunk_size(height: int, width: int, min_size: int, max_size: int) -> Size:
    """The size torchvision's GeneralizedRCNNTransform resizes an image to (its ``_resize_image_and_masks``,
    shorter side ``min_size``, longer side at most ``max_size``), or the size as is when that would enlarge it:
    enlarging in uint8 gains nothing the model's own float resize does not do."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    if scale >= 1:
        return height, width
    return math.floor(height * scale), math.floor(width * scale)


def shrink_image(rgb: np.ndarray, size: Size) -> np.ndarray:
    """``rgb`` (HxWx3 uint8) at ``size``, bilinear without antialiasing as the transform resizes it, so training
    sees the pixels inference will."""
    if rgb.shape[:2] == size:
        return rgb
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    return image[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def shrink_targets(boxes: np.ndarray, masks: np.ndarray | None, original: Size,
                   size: Size) -> tuple[np.ndarray, np.ndarray | None]:
    """xyxy ``boxes`` scaled per axis as torchvision's ``resize_boxes`` does, instance ``masks`` resized nearest
    as the transform resizes them, from an image of size ``original`` to ``size``."""
    if original == size:
        return boxes, masks
    ratios = np.array([size[1] / original[1], size[0] / original[0]] * 2, np.float32)
    if masks is not None:
        masks = F.interpolate(torch.from_numpy(masks)[:, None].float(), size=size)[:, 0].byte().numpy() \
            if len(masks) else np.zeros((0, *size), np.uint8)
    return boxes * ratios, masks


class ImageCache:
    """uint8 images of known sizes in one shared memory-mapped file; see the module docstring."""

    def __init__(self, path: Path, sizes: list[Size], budget_bytes: int, only: set[int] | None = None):
        """Slots for the images ``sizes`` lists, in order, within ``budget_bytes``; with ``only``, for those
        indices alone (a DDP rank's shard: the others never pass through this process)."""
        self.path, self.sizes = path, sizes
        path.unlink(missing_ok=True)  # left by an interrupted run: stale if the data changed since
        path.parent.mkdir(parents=True, exist_ok=True)
        self.offsets: list[int] = []  # -1: no slot (over the budget, or not this process's)
        self.wanted = len(sizes) if only is None else len(only)
        used = 0
        for i, (h, w) in enumerate(sizes):
            size = h * w * 3
            fits = used + size <= budget_bytes and (only is None or i in only)
            self.offsets.append(len(sizes) + used if fits else -1)
            used += size if fits else 0
        self.bytes = used
        self.nbytes = len(sizes) + used  # a ready byte per image, then the slots
        np.memmap(path, np.uint8, mode="w+", shape=(max(1, self.nbytes),)).flush()  # sparse: zero ready bytes
        self._map: np.memmap | None = None

    @property
    def cached(self) -> int:
        """How many images have a slot."""
        return sum(o >= 0 for o in self.offsets)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_map": None}  # each worker process maps the file itself

    def _mapped(self) -> np.memmap:
        if self._map is None:
            self._map = np.memmap(self.path, np.uint8, mode="r+", shape=(max(1, self.nbytes),))
        return self._map

    def get(self, index: int) -> np.ndarray | None:
        """The image's pixels (a private copy: augmentations may write to it), or None before it is stored."""
        offset = self.offsets[index]
        if offset < 0 or not self._mapped()[index]:
            return None
        h, w = self.sizes[index]
        return np.array(self._mapped()[offset:offset + h * w * 3]).reshape(h, w, 3)

    def put(self, index: int, rgb: np.ndarray) -> None:
        offset = self.offsets[index]
        if offset < 0:
            return
        if rgb.shape != (*self.sizes[index], 3):
            raise AssertionError(f"image {index}: {rgb.shape} is not its slot's {self.sizes[index]}")
        data = self._mapped()
        data[offset:offset + rgb.size] = rgb.reshape(-1)
        data[index] = 1  # after the pixels: a reader never sees a half-written image as ready

    def describe(self) -> str:
        stored = int(np.count_nonzero(self._mapped()[:len(self.sizes)])) if self.sizes else 0
        return f"{stored}/{self.wanted} images decoded once and kept ({self.bytes / 2**20:.0f} MiB of slots)"

    def close(self) -> None:
        """Unmap and remove the file (at the end of training)."""
        self._map = None
        self.path.unlink(missing_ok=True)
