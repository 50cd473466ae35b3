"""The table of R-CNN model builders: builders register here, :mod:`.registry` resolves ``--arch``/``--model``
against it. Split from the resolver so builder modules never import the module that imports them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .defaults import pretraining


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "fasterrcnn" | "maskrcnn"
    build: Callable[..., nn.Module]
    masks: bool
    default_weights: str = "DEFAULT"
    summary: str = ""
    pretraining: str = "detector"  # what its DEFAULT weights learnt: 'detector' (COCO, every layer) or 'imagenet'

    def learnt(self, weights: str | None) -> str:
        """What a start of this model has learnt (:func:`.defaults.pretraining`), which the auto settings follow:
        ``weights`` None is the model's default weights."""
        return pretraining(weights or self.default_weights, self.pretraining)


REGISTRY: dict[str, ModelSpec] = {}
FAMILY_DEFAULTS: dict[str, str] = {}


def register(name: str, family: str, masks: bool, default_weights: str = "DEFAULT", summary: str = "",
             family_default: bool = False,
             pretraining: str = "detector") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        REGISTRY[name] = ModelSpec(name, family, fn, masks, default_weights, summary, pretraining)
        if family_default:
            FAMILY_DEFAULTS[family] = name
        return fn

    return deco
