"""torchvision Faster R-CNN and Mask R-CNN builders, with heads sized for the dataset's classes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights
from torchvision.models import detection as tvd
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

from .catalog import register
from .weights import choose, load_into, load_state_dict, offline_hint

TORCHVISION_MODELS: dict[str, tuple[Callable[..., nn.Module], str, Any, str]] = {
    # name: (torchvision builder, family, ImageNet backbone weights enum, summary)
    "fasterrcnn_resnet50_fpn_v2": (tvd.fasterrcnn_resnet50_fpn_v2, "fasterrcnn", ResNet50_Weights,
                                   "ResNet-50 FPN v2 (best box AP, 43M params)"),
    "fasterrcnn_resnet50_fpn": (tvd.fasterrcnn_resnet50_fpn, "fasterrcnn", ResNet50_Weights, "ResNet-50 FPN (41M)"),
    "fasterrcnn_mobilenet_v3_large_fpn": (tvd.fasterrcnn_mobilenet_v3_large_fpn, "fasterrcnn",
                                          MobileNet_V3_Large_Weights, "MobileNetV3-Large FPN (19M, fast)"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (tvd.fasterrcnn_mobilenet_v3_large_320_fpn, "fasterrcnn",
                                              MobileNet_V3_Large_Weights, "MobileNetV3-Large FPN at 320 px (CPU-friendly)"),
    "maskrcnn_resnet50_fpn_v2": (tvd.maskrcnn_resnet50_fpn_v2, "maskrcnn", ResNet50_Weights,
                                 "ResNet-50 FPN v2 masks (46M)"),
    "maskrcnn_resnet50_fpn": (tvd.maskrcnn_resnet50_fpn, "maskrcnn", ResNet50_Weights, "ResNet-50 FPN masks (44M)"),
}
FAMILY_DEFAULT = {"fasterrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn_v2"}


def image_sizes(imgsz: int) -> dict[str, int]:
    """R-CNN resize settings for a shorter side of ``imgsz``, keeping torchvision's 800:1333 ratio cap."""
    return {"min_size": imgsz, "max_size": max(imgsz, round(imgsz * 1333 / 800))}


def replace_heads(model: nn.Module, num_classes: int) -> None:
    """Size the box (and mask) predictors for ``num_classes`` (background included)."""
    heads = model.roi_heads
    box = heads.box_predictor
    if box.cls_score.out_features != num_classes:
        heads.box_predictor = FastRCNNPredictor(box.cls_score.in_features, num_classes)
    if heads.has_mask():
        mp = heads.mask_predictor
        if mp.mask_fcn_logits.out_channels != num_classes:
            heads.mask_predictor = MaskRCNNPredictor(mp.conv5_mask.in_channels, mp.conv5_mask.out_channels, num_classes)


def build_torchvision(builder: Callable[..., nn.Module], name: str, backbone_enum: Any, *, num_classes: int,
                      weights: str | None = "DEFAULT", min_size: int | None = None, max_size: int | None = None,
                      **kw: Any) -> nn.Module:
    """Build ``name`` for ``num_classes`` (K + 1) from the weights ``--weights`` names."""
    sizes = {k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v}
    choice = choose(name, weights, backbone_enum)
    with offline_hint(choice, name):
        if choice.kind == "detector":  # COCO-pretrained: build at 91 classes, then replace the heads
            model = builder(weights=choice.value, **sizes, **kw)
        else:
            model = builder(weights=None, weights_backbone=choice.value if choice.kind == "backbone" else None,
                            num_classes=num_classes, **sizes, **kw)
    replace_heads(model, num_classes)
    if choice.kind == "file":
        load_into(model, load_state_dict(choice.value), str(choice.value))
    return model


for _name, (_builder, _family, _bb, _summary) in TORCHVISION_MODELS.items():
    register(_name, _family, masks=_family == "maskrcnn", summary=_summary,
             family_default=_name in FAMILY_DEFAULT)(partial(build_torchvision, _builder, _name, _bb))
