"""Optimizer and per-iteration learning-rate schedule (linear warmup, then cosine or step).

Pretrained backbone layers learn at ``backbone_lr_factor`` times the base rate, whether they train from the
first step or only after ``--unfreeze-at``: at the heads' rate a fine-tune wrecks ImageNet features (whose
BatchNorm statistics stay frozen) before the randomly initialised heads have learnt anything (measured in
bench/RESULTS.md). Frozen parameters sit in their own group from the start: while frozen they have no
gradient and the optimizer skips them; once unfrozen they train without rebuilding the optimizer or scheduler."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import DetftError


BACKBONE = "backbone.body."  # where every R-CNN backbone's pretrained layers sit (models/backbones.py)


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_lr_factor: float) -> list[dict]:
    """'trainable' (heads, FPN: the base rate), 'backbone' (trainable backbone layers) and 'frozen', each only
    when it has parameters; the last two at ``backbone_lr_factor`` times the rate."""
    named = list(model.named_parameters())
    members = {"trainable": [p for n, p in named if p.requires_grad and not n.startswith(BACKBONE)],
               "backbone": [p for n, p in named if p.requires_grad and n.startswith(BACKBONE)],
               "frozen": [p for _, p in named if not p.requires_grad]}
    rates = {"trainable": lr, "backbone": lr * backbone_lr_factor, "frozen": lr * backbone_lr_factor}
    return [{"params": params, "lr": rates[name], "weight_decay": weight_decay, "name": name}
            for name, params in members.items() if params]


def build_optimizer(name: str, groups: list[dict], lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise DetftError(f"--optimizer {name!r}: use sgd or adamw")


def lr_factor(step: int, total: int, warmup: int, schedule: str, milestones: tuple[float, ...] = (0.7, 0.9),
              gamma: float = 0.1, warmup_start: float = 0.001) -> float:
    """Multiplier of the base rate at optimizer step ``step`` of ``total``."""
    if warmup and step < warmup:
        return warmup_start + (1 - warmup_start) * step / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "step":
        return gamma ** sum(step >= m * total for m in milestones)
    if schedule == "constant":
        return 1.0
    raise DetftError(f"--schedule {schedule!r}: use cosine, step or constant")


class Schedule:
    """The per-step multiplier as an object, not a closure: LambdaLR saves a callable object's attributes in its
    state, so a ``total`` refitted to a time budget mid-run survives ``--resume``."""

    def __init__(self, total: int, warmup: int, schedule: str):
        lr_factor(0, total, warmup, schedule)  # validate the name now, not at the first step
        self.total, self.warmup, self.schedule = total, warmup, schedule

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.warmup, self.schedule)


def build_scheduler(optimizer: torch.optim.Optimizer, total: int, warmup: int, schedule: str) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, Schedule(total, warmup, schedule))
