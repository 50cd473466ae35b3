"""Model name -> builder. ``--arch`` names a family (its default model) or any registered model.

Builders take plain keyword arguments (num_classes, weights, min_size, max_size) and return an
``nn.Module``; the CLI never reaches past this table, and tests or plugins can register their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import DetftError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "fasterrcnn" | "maskrcnn" | "yolo"
    build: Callable[..., nn.Module]
    masks: bool
    default_weights: str = "DEFAULT"
    summary: str = ""


REGISTRY: dict[str, ModelSpec] = {}
FAMILY_DEFAULTS: dict[str, str] = {}


def register(name: str, family: str, masks: bool, default_weights: str = "DEFAULT", summary: str = "",
             family_default: bool = False) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        REGISTRY[name] = ModelSpec(name, family, fn, masks, default_weights, summary)
        if family_default:
            FAMILY_DEFAULTS[family] = name
        return fn

    return deco


def resolve(arch: str, model: str | None = None) -> ModelSpec:
    """The spec for ``--arch`` (a family or a model name) and optional ``--model``."""
    _load_builtin()
    name = model or FAMILY_DEFAULTS.get(arch, arch)
    if name not in REGISTRY:
        raise DetftError(f"unknown model {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    spec = REGISTRY[name]
    if arch in FAMILY_DEFAULTS and spec.family != arch:
        raise DetftError(f"model {name!r} is a {spec.family}, not a {arch}")
    return spec


def _load_builtin() -> None:
    from . import offline_rcnn, rcnn  # noqa: F401  (register the built-in builders)
