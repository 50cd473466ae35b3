"""Model name -> builder. ``--arch`` names an R-CNN family (its default model) or any registered model.

Builders take plain keyword arguments (num_classes, weights, min_size, max_size) and return an
``nn.Module``; tests or plugins register their own with :func:`register`."""

from __future__ import annotations

from ..errors import DetftError
from .catalog import FAMILY_DEFAULTS, REGISTRY, ModelSpec, register

__all__ = ["ModelSpec", "register", "resolve", "known"]


def known(arch: str) -> bool:
    """Whether ``arch`` is an R-CNN family or a registered model."""
    _load_builtin()
    return arch in FAMILY_DEFAULTS or arch in REGISTRY


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
