"""Freezing that does what it says.

A frozen module's parameters stop receiving gradients, and its BatchNorm layers become
FrozenBatchNorm2d: their statistics can no longer drift when ``model.train()`` puts the model in
training mode (a plain ``requires_grad=False`` leaves BN running stats updating, the bug behind
ultralytics issue #9391). Unfreezing re-enables gradients for the convolutions; BatchNorm statistics
stay frozen, as torchvision's own detection fine-tuning keeps them with small batches."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..errors import DetftError
from .weights import freeze_batchnorm, freeze_batchnorms

FREEZE_CHOICES = ("backbone", "backbone+neck", "none")
ALIASES = {"backbone+fpn": "backbone+neck"}  # the R-CNN-only name detft 0.1 used


def parse_freeze(spec: str | int) -> str | int:
    """``--freeze`` in the one vocabulary every family follows ('auto' is resolved by the family before it gets
    here): 'backbone' (the feature extractor),
    'backbone+neck' (also the FPN / YOLO neck: only the heads train), 'none', or N (the first N backbone
    stages: ResNet stem and layer1..4, the feature blocks of the offline backbones, YOLO's backbone layers)."""
    text = ALIASES.get(str(spec).strip(), str(spec).strip())
    if text in FREEZE_CHOICES or text == "auto":
        return text
    if text.isascii() and text.isdigit():
        return int(text)
    raise DetftError(f"--freeze {spec!r}: use auto, {', '.join(FREEZE_CHOICES)} or a number of backbone stages")


@dataclass
class FreezeState:
    spec: str
    frozen_modules: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.frozen_modules)


def backbone_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone body's stages in input-to-output order (ResNet: stem, layer1..4)."""
    body = model.backbone.body
    children = list(body.named_children())
    if any(n == "layer1" for n, _ in children):
        stem = [(n, m) for n, m in children if not n.startswith("layer")]
        layers = [(n, m) for n, m in children if n.startswith("layer")]
        return [("backbone.body." + "+".join(n for n, _ in stem), nn.ModuleList([m for _, m in stem]))] + \
               [(f"backbone.body.{n}", m) for n, m in layers]
    return [(f"backbone.body.{n}", m) for n, m in children]


def _targets(model: nn.Module, spec: str) -> list[str]:
    what = parse_freeze(spec)
    if what == "none":
        return []
    if what == "backbone":
        return ["backbone.body"]
    if what == "backbone+neck":
        return ["backbone"]
    if isinstance(what, int):
        stages = backbone_stages(model)
        n = what
        if n > len(stages):
            raise DetftError(f"--freeze {n}: the backbone has only {len(stages)} stages")
        names = []
        for name, _ in stages[:n]:
            prefix, _, joined = name.rpartition(".")
            names += [f"{prefix}.{part}" for part in joined.split("+")]
        return names
    raise AssertionError(what)


def freeze(model: nn.Module, spec: str) -> FreezeState:
    """Freeze what ``spec`` names (see :func:`parse_freeze`)."""
    names = _targets(model, str(spec))
    for name in names:
        module = model.get_submodule(name)
        for p in module.parameters():
            p.requires_grad_(False)
        freeze_batchnorms(module)
        if isinstance(module, nn.BatchNorm2d):
            parent_name, _, child = name.rpartition(".")
            freeze_batchnorm(model.get_submodule(parent_name), child)
    return FreezeState(str(spec), names)


def unfreeze(model: nn.Module, state: FreezeState) -> int:
    """Let the frozen modules' parameters train again; returns how many parameters that is."""
    n = 0
    for name in state.frozen_modules:
        for p in model.get_submodule(name).parameters():
            if not p.requires_grad:
                p.requires_grad_(True)
                n += p.numel()
    state.frozen_modules = []
    return n


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
