"""How far the user's images lie from what a pretrained start was trained on, read from the start itself.

A pretrained network carries a summary of its pretraining images: every BatchNorm layer keeps the running mean and
variance of its input channels over that data (COCO for a detector, ImageNet for a classifier). Domain shift is
largely held in these statistics (AdaBN: Li et al. 2016, "Revisiting Batch Normalization for Practical Domain
Adaptation"; Schneider et al. 2020 measure and correct covariate shift the same way), so the distance between the
statistics the user's images produce and the stored ones tells how far the data is from the start's domain, without
any of the start's own images: a few dozen images through the frozen trunk, about a second on a CPU.

Per channel the distance is the Fréchet (2-Wasserstein) distance between the two Gaussians, in units of the stored
standard deviation, sqrt(((m - mu)^2 + (s - sigma)^2) / sigma^2): 0 where the user's images excite the channel as the
pretraining images did, 1 where its mean or spread has moved by one of the start's own standard deviations. A layer's
distance is the mean over its channels, the trunk's the mean over its layers, reported with the shallow and the
deep half apart (colour and texture shift against shift in what the features mean)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

# above this many stored standard deviations a channel counts as saturated: a channel that was near constant on the
# pretraining data (sigma ~ 0) must not outweigh the rest of its layer
CHANNEL_CAP = 10.0


@dataclass(frozen=True)
class Shift:
    distance: float  # mean over the trunk's normalisation layers
    shallow: float  # the first half of the layers (input side)
    deep: float  # the second half
    layers: int
    images: int
    seconds: float

    def describe(self) -> str:
        return (f"feature shift {self.distance:.2f} from the start's own statistics (shallow {self.shallow:.2f}, "
                f"deep {self.deep:.2f}; {self.images} images, {self.layers} layers, {self.seconds:.1f} s)")


def norm_layers(trunk: nn.Module) -> list[nn.Module]:
    """The normalisation layers of ``trunk`` that keep running statistics (BatchNorm, torchvision's frozen BN)."""
    return [m for m in trunk.modules()
            if isinstance(getattr(m, "running_mean", None), torch.Tensor)
            and isinstance(getattr(m, "running_var", None), torch.Tensor)]


class _Moments:
    """Per-channel sums of a layer's inputs over every pixel of every image seen."""

    def __init__(self) -> None:
        self.n = 0
        self.total: torch.Tensor | None = None
        self.squares: torch.Tensor | None = None

    def __call__(self, _module: nn.Module, args: tuple) -> None:
        x = args[0].detach().double()
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        total, squares = flat.sum(1), (flat * flat).sum(1)
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares
        self.n += flat.shape[1]

    def distance(self, layer: nn.Module) -> float:
        mean = self.total / self.n
        std = (self.squares / self.n - mean * mean).clamp_min(0).sqrt()
        mu = layer.running_mean.detach().double()
        sigma = layer.running_var.detach().double().clamp_min(1e-6).sqrt()
        per_channel = (((mean - mu) ** 2 + (std - sigma) ** 2).sqrt() / sigma).clamp_max(CHANNEL_CAP)
        return float(per_channel.mean())


@torch.no_grad()
def feature_shift(forward: Callable[[torch.Tensor], object], trunk: nn.Module, inputs: Iterable[torch.Tensor]) -> Shift:
    """The distance of the images behind ``inputs`` (network-ready tensors, one batch each) from the pretraining
    statistics kept in ``trunk``'s normalisation layers; ``forward`` runs the network (or just the trunk) on a batch
    in eval mode, so the stored statistics are read, never updated."""
    layers = norm_layers(trunk)
    if not layers:
        raise ValueError("the network keeps no normalisation statistics to compare with")
    moments = [_Moments() for _ in layers]
    hooks = [layer.register_forward_pre_hook(m) for layer, m in zip(layers, moments)]
    started, images = time.perf_counter(), 0
    try:
        for batch in inputs:
            forward(batch)
            images += batch.shape[0]
    finally:
        for hook in hooks:
            hook.remove()
    if not images:
        raise ValueError("no images to measure the feature shift on")
    per_layer = [m.distance(layer) for layer, m in zip(layers, moments)]
    half = max(1, len(per_layer) // 2)
    return Shift(distance=sum(per_layer) / len(per_layer), shallow=sum(per_layer[:half]) / half,
                 deep=sum(per_layer[half:]) / max(1, len(per_layer) - half), layers=len(per_layer), images=images,
                 seconds=time.perf_counter() - started)


def spread_sample(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all when there are fewer): reproducible without a seed, and
    spread over the whole split rather than its first folder."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
