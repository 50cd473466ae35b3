"""A frozen trunk runs once per image, not once per epoch.

When the backbone (or backbone+FPN) is frozen, its output for an image depends only on the pixels it is
given. With augmentations that have a few fixed outcomes (none, a horizontal flip, or an image's fixed
augmented views: data/transforms.py), those pixels repeat across epochs, so the trunk's features are computed
the first time an (image, variant) is seen, kept (fp16 by default) and handed to the trainable heads from then
on; only the heads run forward and backward. Samples that a fresh random scale or colour draw altered
(``--augment-views 0``) get no key and run the trunk as usual. Peers freeze the same layers and still run them
every epoch.

A frozen trunk always runs each image by itself at its own extent (its size rounded up to the transform's
``size_divisible``), not on the padded batch, and its maps are zero-padded to the batch they join. A map
computed inside a wider batch would carry that batch's padding: stacked later into a narrower batch it makes
torchvision's AnchorGenerator, which derives the stride from padded image size / map size, place every anchor
wrongly, and its border values would depend on which images it happened to be batched with. Computed at its own
extent, an image's features are one function of its pixels, the same with or without a cache (``--cache-features
off`` runs the same per-extent trunk, storing nothing), in whatever batch, on every epoch and after a resume, and
the same as one-image inference sees.

The store lives in RAM within a byte budget; ``auto`` spills what does not fit to files under the run
folder (removed when training ends), ``ram`` stops storing at the budget, ``disk`` keeps everything on disk;
files stop at half the disk space that was free (each map is small, a dataset's views are not).
The trunk module is not wrapped (checkpoints keep their keys): its ``forward`` is replaced on the instance
while attached, and restored by :meth:`FrozenTrunk.detach` (unfreezing drops it)."""

from __future__ import annotations

import math
import shutil
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import UNCACHEABLE
from ..errors import DetftError

MODES = ("auto", "ram", "disk", "off")
PRECISIONS = {"fp16": torch.float16, "fp32": torch.float32}

Key = tuple[int, int]  # (image index in the training set, variant: see data.transforms.variant)
Maps = dict[str, torch.Tensor]


def default_budget() -> int:
    """Half the memory available now: the cache must never be what makes a run swap."""
    try:
        import psutil

        return int(psutil.virtual_memory().available * 0.5)
    except ImportError:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)


def free_disk(folder: Path) -> int:
    """Bytes free on the disk ``folder`` is (or will be) on."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


class FeatureStore:
    """Per-image trunk maps by (image, variant) key, in RAM within a budget, then (``auto``/``disk``) on disk."""

    def __init__(self, mode: str, folder: Path, budget_bytes: int | None = None, precision: str = "fp16",
                 disk_bytes: int | None = None):
        """``disk_bytes``: what spilled files may take (default: half the disk space free under ``folder`` now);
        past it a map is computed every time it is needed rather than fill the disk."""
        if mode not in MODES or mode == "off":
            raise DetftError(f"--cache-features {mode!r}: a cache needs one of auto, ram, disk")
        if precision not in PRECISIONS:
            raise DetftError(f"--cache-precision {precision!r}: choose {', '.join(PRECISIONS)}")
        self.mode, self.folder, self.dtype = mode, folder, PRECISIONS[precision]
        shutil.rmtree(folder, ignore_errors=True)  # left by an interrupted run: stale if the data changed since
        self.budget = default_budget() if budget_bytes is None else budget_bytes
        self.disk_budget = free_disk(folder) // 2 if disk_bytes is None else disk_bytes
        self.ram: dict[Key, Maps] = {}
        self.on_disk: set[Key] = set()
        self.bytes = self.disk_bytes = 0
        self.hits = self.misses = self.bypassed = 0

    def get(self, key: Key) -> Maps | None:
        if key in self.ram:
            return self.ram[key]
        if key in self.on_disk:
            return torch.load(self._file(key), map_location="cpu", weights_only=True)
        return None

    def put(self, key: Key, features: Maps) -> Maps:
        """Keep ``features`` (if the budget allows) and return them as stored: the step that computed them uses
        the stored precision too, so a run's numbers never depend on when a feature was computed (an
        interrupted and resumed run stays identical to an uninterrupted one)."""
        stored = {n: f.detach().to("cpu", self.dtype).contiguous() for n, f in features.items()}
        size = sum(f.numel() * f.element_size() for f in stored.values())
        if self.mode != "disk" and self.bytes + size <= self.budget:
            self.ram[key] = stored
            self.bytes += size
        elif self.mode != "ram" and self.disk_bytes + size <= self.disk_budget:
            self.folder.mkdir(parents=True, exist_ok=True)
            torch.save(stored, self._file(key))
            self.on_disk.add(key)
            self.disk_bytes += size
        return stored

    def _file(self, key: Key) -> Path:
        return self.folder / f"{key[0]}_{key[1]}.pt"

    def describe(self) -> str:
        where = f"{self.bytes / 2**20:.0f} MiB in RAM" + (f", {len(self.on_disk)} on disk" if self.on_disk else "")
        return f"feature cache: {len(self.ram) + len(self.on_disk)} entries ({where}); {self.hits} hits, " \
               f"{self.misses} computed, {self.bypassed} augmented samples bypassed it"

    def clear(self) -> None:
        self.ram.clear()
        self.on_disk.clear()
        self.bytes = 0
        shutil.rmtree(self.folder, ignore_errors=True)


class FrozenTrunk:
    """A frozen trunk of a torchvision detector run per image at its own extent under no_grad, through ``store``
    when there is one (keys from :meth:`next_keys`)."""

    def __init__(self, model: nn.Module, trunk: str, store: FeatureStore | None = None):
        self.store, self.name = store, trunk
        self.trunk: nn.Module | None = model.get_submodule(trunk)
        self.divisible = int(getattr(model.transform, "size_divisible", 1))
        self.sizes: list[tuple[int, int]] | None = None  # the batch's image sizes, from the transform's output
        self.single = False  # the trunk returns one tensor (a bare body), not named maps
        self.keys: list[Key] | None = None
        self._hook = model.transform.register_forward_hook(self._record_sizes)
        original = type(self.trunk).forward
        module = self.trunk

        def forward(x: torch.Tensor) -> Any:
            keys, self.keys = self.keys, None
            sizes, self.sizes = self.sizes, None
            with torch.no_grad():  # frozen: nothing upstream of the heads needs a graph
                return self._forward(lambda sub: original(module, sub), x, keys, sizes)

        module.forward = forward  # type: ignore[method-assign]

    def _record_sizes(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.sizes = [tuple(s) for s in output[0].image_sizes]  # type: ignore[misc]

    def next_keys(self, keys: list[Key]) -> None:
        self.keys = keys

    def detach(self) -> None:
        """Unhook the trunk and drop everything stored (it is about to train, so its features change)."""
        if self.trunk is not None and "forward" in self.trunk.__dict__:
            del self.trunk.forward
        self._hook.remove()
        self.trunk = None
        if self.store is not None:
            self.store.clear()

    def _extent(self, size: tuple[int, int]) -> tuple[int, int]:
        d = self.divisible
        return math.ceil(size[0] / d) * d, math.ceil(size[1] / d) * d

    def _compute(self, run: Callable[[torch.Tensor], Any], x: torch.Tensor, rows: list[int],
                 sizes: list[tuple[int, int]] | None) -> dict[int, Maps]:
        """Per-image maps of batch ``rows``, each image run by itself at its own extent. Not even images of one
        size share a call: convolution kernels are chosen by batch size, so the last bits of a map differ between
        a batch of one and of two, and a map must not depend on its batch-mates (a resumed run first computes a
        stored map in another batch than the uninterrupted run did; cache on and off must compute the same)."""
        maps: dict[int, Maps] = {}
        for i in rows:
            h, w = self._extent(sizes[i]) if sizes else x.shape[-2:]
            out = run(x[i:i + 1, :, :h, :w])
            self.single = isinstance(out, torch.Tensor)
            maps[i] = {n: f[0] for n, f in ({"0": out} if self.single else out).items()}
        return maps

    def _forward(self, run: Callable[[torch.Tensor], Any], x: torch.Tensor, keys: list[Key] | None,
                 sizes: list[tuple[int, int]] | None) -> Any:
        store = self.store if keys is not None else None  # evaluation, validation loss: nothing to store
        found: list[Maps | None] = [store.get(k) if store and k[1] != UNCACHEABLE else None for k in keys] \
            if store else [None] * len(x)
        missing = [i for i, f in enumerate(found) if f is None]
        for i, per_image in self._compute(run, x, missing, sizes).items():
            if store is not None:
                if keys[i][1] == UNCACHEABLE:  # type: ignore[index]
                    store.bypassed += 1
                else:
                    store.misses += 1
                    per_image = store.put(keys[i], per_image)  # type: ignore[index]
            found[i] = per_image
        if store is not None:
            store.hits += len(found) - len(missing)
        names = list(found[0])  # type: ignore[index]
        dtype = torch.float32 if store is not None else None  # stored maps come back in the computing dtype
        maps = OrderedDict((n, _stack([f[n] for f in found], x.device, dtype)) for n in names)  # type: ignore[index]
        return maps["0"] if self.single else maps


def _stack(maps: list[torch.Tensor], device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    """One batch of per-image maps, each zero-padded at the bottom and right to the largest, as the image batch
    itself is padded: the largest image extent is the batch's padded size, so the stack has the padded batch's
    map shape and anchors keep their stride."""
    h = max(m.shape[-2] for m in maps)
    w = max(m.shape[-1] for m in maps)
    return torch.stack([F.pad(m.to(device, dtype or m.dtype), (0, w - m.shape[-1], 0, h - m.shape[-2])) for m in maps])
