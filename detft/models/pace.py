"""How many passes over the training images a time budget fits, measured before training.

Whether a start's backbone should train on data far from its domain turned on how often training would see that
data: on the development suite the trained backbone won where a 5-minute budget fitted it 6 or more epochs and lost
at 2-5 (bench/RESULTS.md, "--freeze auto by the data"). A time budget fixes seconds, not epochs; the epochs depend on
the image files (decoding a 2048-pixel JPEG costs more than the network at 320), the model, the machine and the
split sizes, so they are measured on the user's images: a few training steps with every layer trainable, a few
evaluation steps, each image read from disk as the loader reads it, a second or two on a CPU.

The probe times the work every step does (read, letterbox, forward, backward) and not what ultralytics adds around
it (augmentation, the assigner, optimizer and EMA updates, NMS and metrics in validation, checkpoints); ``OVERHEAD``
is that remainder, measured on the development suite as the ratio of the epochs the budget really fitted to the
probe's estimate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

# real epoch time over the probe's estimate, the probe on training's threads: the median over the six
# development-suite sets whose epochs under a 5-minute budget are known (ratios 0.88-1.10, median 0.97, two probe
# runs averaged; bench/RESULTS.md, "--freeze auto by the data"). What ultralytics adds is about what its loader
# workers take off the main thread's reading.
OVERHEAD = 1.0


@dataclass(frozen=True)
class Pace:
    train_s: float  # seconds per training image: read, letterbox, forward and backward with every layer training
    val_s: float  # seconds per validation image: read, letterbox, forward in eval mode
    images: int  # images the probe timed
    seconds: float  # what the probe cost, warm-up included

    def epoch_s(self, train: int, val: int, devices: int = 1) -> float:
        """Seconds an epoch of ``train`` images plus the validation of ``val`` takes, with the training images
        shared over ``devices`` (DDP)."""
        return OVERHEAD * (train * self.train_s / max(devices, 1) + val * self.val_s)

    def epochs_in(self, budget_s: float, train: int, val: int, devices: int = 1) -> float:
        return budget_s / max(self.epoch_s(train, val, devices), 1e-9)

    def describe(self) -> str:
        return (f"{1000 * self.train_s:.0f} ms per training image, {1000 * self.val_s:.0f} ms per validation image "
                f"({self.images} images timed, {self.seconds:.1f} s)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_pace(net: torch.nn.Module, batches: Callable[[], Iterator[torch.Tensor]], device: torch.device,
                 loss: Callable[[object], torch.Tensor], steps: int = 3) -> Pace:
    """The pace of ``net`` (a copy the caller may spend: it is trained in place and its statistics move) on the
    batches ``batches()`` yields, reading included: one warm-up step, then ``steps`` timed training steps (every
    parameter trainable, ``loss`` of the outputs backpropagated) and ``steps`` timed evaluation steps. ``batches``
    must yield at least ``2 * steps + 1`` batches."""
    started = time.perf_counter()
    for p in net.parameters():
        p.requires_grad_(True)
    net.to(device).train()
    stream = batches()

    def step(train: bool) -> int:
        x = next(stream).to(device)
        if train:
            loss(net(x)).backward()
            net.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                net(x)
        return x.shape[0]

    step(True)  # the first step allocates; it is not timed
    _sync(device)
    clock, n_train = time.perf_counter(), 0
    for _ in range(steps):
        n_train += step(True)
    _sync(device)
    train_s = (time.perf_counter() - clock) / n_train
    net.eval()
    clock, n_val = time.perf_counter(), 0
    for _ in range(steps):
        n_val += step(False)
    _sync(device)
    val_s = (time.perf_counter() - clock) / n_val
    return Pace(train_s=train_s, val_s=val_s, images=n_train + n_val, seconds=time.perf_counter() - started)
