"""Where starting weights come from, and loading them safely.

``--weights`` is ``none``, a torchvision weights name for the chosen model (``DEFAULT``, ``COCO_V1``...,
downloaded and cached the usual torchvision way), ``backbone`` / ``backbone:NAME`` (ImageNet backbone
only), or a path (a detft checkpoint or a plain state dict). Files load with ``weights_only=True``."""

from __future__ import annotations

import contextlib
import os
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import get_model_weights
from torchvision.ops.misc import FrozenBatchNorm2d

from ..errors import DetftError, OfflineStart


@dataclass(frozen=True)
class WeightsChoice:
    kind: str  # "none" | "detector" | "backbone" | "file"
    value: Any = None  # a torchvision WeightsEnum member, or a Path


def choose(model_name: str, weights: str | None, backbone_weights_enum: Any = None) -> WeightsChoice:
    """Interpret ``--weights`` for ``model_name``."""
    if weights is None or weights.lower() == "none":
        return WeightsChoice("none")
    if os.sep in weights or weights.endswith((".pt", ".pth")) or Path(weights).exists():
        path = Path(weights)
        if path.is_dir():  # a run folder: its best checkpoint
            from ..runs import Run

            path = Run.open(path).weights
        if not path.is_file():
            raise DetftError(f"weights file {path} not found")
        return WeightsChoice("file", path)
    if weights.lower() == "backbone" or weights.lower().startswith("backbone:"):
        if backbone_weights_enum is None:
            raise DetftError(f"{model_name} has no ImageNet backbone weights in torchvision")
        name = weights.split(":", 1)[1] if ":" in weights else "DEFAULT"
        return WeightsChoice("backbone", _enum_member(backbone_weights_enum, name, model_name))
    try:
        enum = get_model_weights(model_name)
    except (ValueError, KeyError):
        raise DetftError(f"{model_name} has no torchvision weights; use --weights none or a file") from None
    return WeightsChoice("detector", _enum_member(enum, weights, model_name))


def _enum_member(enum: Any, name: str, model_name: str) -> Any:
    try:
        return enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        names = ", ".join(["DEFAULT", *enum.__members__])
        raise DetftError(f"unknown weights {name!r} for {model_name}; choose one of {names}, 'none' or a file") from None


@contextlib.contextmanager
def offline_hint(choice: WeightsChoice, model_name: str) -> Iterator[None]:
    """Turn a failed download into a message that says what to fetch and where to put it, and which offline
    start installed here would train instead."""
    try:
        yield
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
        if choice.kind not in ("detector", "backbone") or isinstance(e, FileNotFoundError):
            raise
        url = choice.value.url
        target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        raise OfflineStart(
            f"could not download pretrained weights {choice.value} ({e.__class__.__name__}: {e}).\n"
            f"  This machine looks offline. On a connected machine download\n    {url}\n"
            f"  and copy it to\n    {target}\n"
            f"  (or set TORCH_HOME), or train with --weights none / a local file.", offline_starts(model_name)) from None


def offline_starts(model_name: str) -> list[dict[str, str | None]]:
    """The options selecting each packaged start installed here that trains what ``model_name`` would: the R-CNNs
    on packaged ImageNet backbones of its family, and YOLO from COCO (boxes, or masks for a Mask R-CNN)."""
    from .packaged import available

    family = "maskrcnn" if model_name.startswith("maskrcnn") else "fasterrcnn"
    starts: list[dict[str, str | None]] = [{"model": f"{family}_{backbone}_fpn", "weights": None}
                                           for backbone in ("efficientnet_lite0", "mobilenet_v2") if available(backbone)]
    if available("yolov5s-seg-coco" if family == "maskrcnn" else "yolo11n-coco"):
        starts.append({"arch": "yolo", "model": None, "weights": None})
    return starts


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The model weights in a detft checkpoint or a plain state dict file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files; name the file either way
        raise DetftError(f"cannot load weights from {path}: {e.__class__.__name__}: {e}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DetftError(f"{path} holds no state dict")
    return obj


def freeze_batchnorm(parent: nn.Module, name: str) -> None:
    """Replace ``parent.<name>`` (a BatchNorm2d) with a frozen one holding the same statistics.

    timm's BatchNormAct2d is a BatchNorm2d that also applies the block's activation; it becomes timm's
    FrozenBatchNormAct2d so the activation survives (a plain FrozenBatchNorm2d would silently drop it)."""
    bn = getattr(parent, name)
    if hasattr(bn, "act") and hasattr(bn, "drop"):
        from timm.layers import freeze_batch_norm_2d

        setattr(parent, name, freeze_batch_norm_2d(bn))
        return
    frozen = FrozenBatchNorm2d(bn.num_features, eps=bn.eps)
    with torch.no_grad():
        frozen.weight.copy_(bn.weight.detach() if bn.weight is not None else torch.ones_like(frozen.weight))
        frozen.bias.copy_(bn.bias.detach() if bn.bias is not None else torch.zeros_like(frozen.bias))
        frozen.running_mean.copy_(bn.running_mean)
        frozen.running_var.copy_(bn.running_var)
    setattr(parent, name, frozen.to(bn.running_mean.device))


def freeze_batchnorms(module: nn.Module) -> None:
    """Freeze every BatchNorm2d below ``module``."""
    for sub_name, sub in list(module.named_modules()):
        if sub_name and isinstance(sub, nn.BatchNorm2d):
            parent_name, _, child = sub_name.rpartition(".")
            freeze_batchnorm(module.get_submodule(parent_name) if parent_name else module, child)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load that tolerates one difference: BatchNorms saved frozen (no num_batches_tracked)
    are frozen here too, so a checkpoint loads into a freshly built model of the same name."""
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.BatchNorm2d) and f"{name}.weight" in state and f"{name}.num_batches_tracked" not in state:
            parent_name, _, child = name.rpartition(".")
            freeze_batchnorm(model.get_submodule(parent_name) if parent_name else model, child)
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    heads = [k for k in mismatched if ".box_predictor." in k or ".mask_predictor." in k]
    if len(heads) != len(mismatched):
        raise DetftError(f"weights in {source} have other shapes for {[k for k in mismatched if k not in heads][:5]}")
    # a checkpoint trained on other classes: keep everything but the class-specific predictors
    result = model.load_state_dict({k: v for k, v in state.items() if k not in heads}, strict=False)
    missing = [k for k in result.missing_keys if k not in heads]
    if missing or result.unexpected_keys:
        raise DetftError(f"weights in {source} do not fit this model: missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]} (was it trained with another --model?)")
