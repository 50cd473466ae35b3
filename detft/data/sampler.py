"""Aspect-ratio grouped batches, sharded across DDP ranks, reproducible per epoch.

Grouping portrait and landscape images into separate batches cuts the padding torchvision's
GeneralizedRCNNTransform adds to batch images of different shapes (the references' GroupedBatchSampler).
Each rank keeps the same shard of the images every epoch (a seeded partition, shuffled within each epoch), so
a rank's image and feature caches hold its own shard only: the job's memory does not grow with the number of
GPUs, and no rank recomputes what another rank has already cached."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler[list[int]]):
    def __init__(self, aspect_ratios: list[float], batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        self.groups = [int(r >= 1.0) for r in aspect_ratios]
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.per_rank = math.ceil(len(aspect_ratios) / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard(self) -> list[int]:
        """This rank's images, the same every epoch (one process: all of them, in order)."""
        n = len(self.groups)
        if self.world_size == 1:
            return list(range(n))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        order += order[: self.per_rank * self.world_size - n]  # pad so every rank has as many steps
        return order[self.rank::self.world_size]

    def _indices(self) -> list[int]:
        shard = self.shard()
        if not self.shuffle:
            return shard
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return [shard[i] for i in torch.randperm(len(shard), generator=g).tolist()]

    def __iter__(self):
        """Batches of (epoch, index): the epoch travels with each index, so persistent worker processes (which
        hold their own copy of the dataset) seed every epoch's augmentation right."""
        buckets: dict[int, list[int]] = {0: [], 1: []}
        for i in self._indices():
            b = buckets[self.groups[i]]
            b.append(i)
            if len(b) == self.batch_size:
                yield [(self.epoch, j) for j in b]
                b.clear()
        rest = buckets[0] + buckets[1]  # leftovers: mixed batches rather than dropped images
        for k in range(0, len(rest), self.batch_size):
            yield [(self.epoch, j) for j in rest[k:k + self.batch_size]]

    def __len__(self) -> int:
        counts = [0, 0]
        for i in self._indices():
            counts[self.groups[i]] += 1
        full = sum(c // self.batch_size for c in counts)
        rest = sum(c % self.batch_size for c in counts)
        return full + math.ceil(rest / self.batch_size)
