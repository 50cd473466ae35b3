"""A frozen trunk runs once per image, not once per epoch.

When the backbone (or backbone+FPN) is frozen, its output for an image depends only on the pixels it is
given. With augmentations that have a few fixed outcomes (none, or a horizontal flip), those pixels repeat
every epoch, so the trunk's features are computed the first time an (image, variant) is seen, kept (fp16 by
default) and handed to the trainable heads from then on; only the heads run forward and backward. Samples
that a random scale or colour change altered get no key and run the trunk as usual. Peers freeze the
same layers and still run them every epoch.

The cache lives in RAM within a byte budget; ``auto`` spills what does not fit to files under the run
folder (removed when training ends), ``ram`` stops caching at the budget, ``disk`` keeps everything on disk.
The trunk module is not wrapped (checkpoints keep their keys): its ``forward`` is replaced on the instance
while the cache is attached, and restored by :meth:`FeatureCache.detach` (unfreezing drops the cache)."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DetftError

MODES = ("auto", "ram", "disk", "off")
PRECISIONS = {"fp16": torch.float16, "fp32": torch.float32}
UNCACHEABLE = -1  # the variant of a sample whose pixels a random augmentation changed

Key = tuple[int, int]  # (image index in the training set, variant: 0 as is, 1 flipped)


def default_budget() -> int:
    """Half the memory available now: the cache must never be what makes a run swap."""
    try:
        import psutil

        return int(psutil.virtual_memory().available * 0.5)
    except ImportError:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)


class FeatureCache:
    def __init__(self, mode: str, folder: Path, budget_bytes: int | None = None, precision: str = "fp16"):
        if mode not in MODES or mode == "off":
            raise DetftError(f"--cache-features {mode!r}: a cache needs one of auto, ram, disk")
        if precision not in PRECISIONS:
            raise DetftError(f"--cache-precision {precision!r}: choose {', '.join(PRECISIONS)}")
        self.mode, self.folder, self.dtype = mode, folder, PRECISIONS[precision]
        shutil.rmtree(folder, ignore_errors=True)  # left by an interrupted run: stale if the data changed since
        self.budget = default_budget() if budget_bytes is None else budget_bytes
        self.ram: dict[Key, dict[str, torch.Tensor]] = {}
        self.on_disk: set[Key] = set()
        self.bytes = 0
        self.hits = self.misses = self.bypassed = 0
        self.single = False  # the trunk returns one tensor (a bare body), not named maps: learnt when it first runs
        self.trunk: nn.Module | None = None
        self.keys: list[Key] | None = None

    # ------------------------------------------------------------------ storage
    def get(self, key: Key) -> dict[str, torch.Tensor] | None:
        if key in self.ram:
            return self.ram[key]
        if key in self.on_disk:
            return torch.load(self._file(key), map_location="cpu", weights_only=True)
        return None

    def put(self, key: Key, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keep ``features`` (if the budget allows) and return them as stored: the step that computed them uses
        the stored precision too, so a run's numbers never depend on when a feature was computed (an
        interrupted and resumed run stays identical to an uninterrupted one)."""
        stored = {n: f.detach().to("cpu", self.dtype).contiguous() for n, f in features.items()}
        size = sum(f.numel() * f.element_size() for f in stored.values())
        if self.mode != "disk" and self.bytes + size <= self.budget:
            self.ram[key] = stored
            self.bytes += size
        elif self.mode != "ram":
            self.folder.mkdir(parents=True, exist_ok=True)
            torch.save(stored, self._file(key))
            self.on_disk.add(key)
        return stored

    def _file(self, key: Key) -> Path:
        return self.folder / f"{key[0]}_{key[1]}.pt"

    def describe(self) -> str:
        where = f"{self.bytes / 2**20:.0f} MiB in RAM" + (f", {len(self.on_disk)} on disk" if self.on_disk else "")
        return f"feature cache: {len(self.ram) + len(self.on_disk)} entries ({where}); {self.hits} hits, " \
               f"{self.misses} computed, {self.bypassed} augmented samples bypassed it"

    # ------------------------------------------------------------------ the trunk
    def attach(self, trunk: nn.Module) -> None:
        """Route ``trunk``'s forward through the cache (keys come from :meth:`next_keys`)."""
        self.trunk = trunk
        original = type(trunk).forward

        def forward(x: torch.Tensor) -> Any:
            keys, self.keys = self.keys, None
            with torch.no_grad():  # frozen: nothing upstream of the heads needs a graph
                if keys is None:  # evaluation, validation loss: the trunk as it is
                    return original(trunk, x)
                return self._forward(lambda sub: original(trunk, sub), x, keys)

        trunk.forward = forward  # type: ignore[method-assign]

    def next_keys(self, keys: list[Key]) -> None:
        self.keys = keys

    def detach(self) -> None:
        """Unhook the trunk and drop everything cached (it is about to train, so its features change)."""
        if self.trunk is not None and "forward" in self.trunk.__dict__:
            del self.trunk.forward
        self.trunk = None
        self.ram.clear()
        self.on_disk.clear()
        self.bytes = 0
        shutil.rmtree(self.folder, ignore_errors=True)

    def _forward(self, run: Any, x: torch.Tensor, keys: list[Key]) -> Any:
        found: list[dict[str, torch.Tensor] | None] = [self.get(k) if k[1] != UNCACHEABLE else None for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            out = run(x[missing])  # rows of the padded batch: the same pixels an uncached step would see
            self.single = isinstance(out, torch.Tensor)
            out = {"0": out} if self.single else out
            for j, i in enumerate(missing):
                per_image = {n: f[j] for n, f in out.items()}
                if keys[i][1] == UNCACHEABLE:
                    self.bypassed += 1
                else:
                    self.misses += 1
                    per_image = self.put(keys[i], per_image)
                found[i] = per_image
        self.hits += len(keys) - len(missing)
        names = list(found[0])  # type: ignore[index]
        maps = OrderedDict((n, _stack([f[n] for f in found], x.device)) for n in names)  # type: ignore[index]
        return maps["0"] if self.single else maps


def _stack(maps: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """One batch of feature maps; maps cached from batches padded to another size are zero-padded at the bottom
    and right, as the image batch itself is (exact when the images share a size, the usual case)."""
    h = max(m.shape[-2] for m in maps)
    w = max(m.shape[-1] for m in maps)
    return torch.stack([F.pad(m.to(device, torch.float32), (0, w - m.shape[-1], 0, h - m.shape[-2])) for m in maps])
