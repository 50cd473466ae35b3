"""Box-head sizes that fit the data, chosen with ``--box-head`` for every R-CNN.

torchvision's v1 and MobileNet detectors (and detft's offline ones) put a ``TwoMLPHead`` of two 1024-wide layers
after RoIAlign: 12.8M parameters on 256x7x7 features, run on 512 sampled proposals per image, which is most
of a step once the backbone is frozen. ``light`` keeps the design at 256 wide (3.3M); ``convfc`` is the head of
torchvision's v2 models (four 3x3 convolutions with BatchNorm, then one 1024-wide layer). ``default`` keeps
the model's own. A new head starts from random weights, also on a COCO-pretrained detector."""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead

from ..errors import DetftError
from .catalog import ModelSpec

HEADS = ("twomlp", "light", "convfc")  # what set_box_head builds
BOX_HEADS = ("default", *HEADS)  # --box-head: or the model's own
WIDTH = {"twomlp": 1024, "light": 256}


def build_detector(spec: ModelSpec, *, num_classes: int, weights: str | None, box_head: str = "default",
                   **kwargs: Any) -> nn.Module:
    """``spec``'s network with the box head asked for; ``box_head`` travels in a run's model_kwargs, so a
    checkpoint is always rebuilt with the head it was trained with."""
    model = spec.build(num_classes=num_classes, weights=weights, **kwargs)
    if box_head != "default":
        set_box_head(model, box_head, num_classes)
    return model


def set_box_head(model: nn.Module, kind: str, num_classes: int) -> None:
    if kind not in HEADS:
        raise DetftError(f"--box-head {kind!r}: choose {', '.join(BOX_HEADS)}")
    heads = model.roi_heads
    pool = heads.box_roi_pool.output_size
    size = pool[0] if isinstance(pool, (tuple, list)) else int(pool)
    channels = model.backbone.out_channels
    if kind == "convfc":
        heads.box_head = FastRCNNConvFCHead((channels, size, size), [256, 256, 256, 256], [1024],
                                            norm_layer=nn.BatchNorm2d)
        width = 1024
    else:
        width = WIDTH[kind]
        heads.box_head = TwoMLPHead(channels * size * size, width)
    heads.box_predictor = FastRCNNPredictor(width, num_classes)


def set_sampling(model: nn.Module, rpn_batch: int | None, roi_batch: int | None) -> None:
    """Anchors (RPN) and proposals (box head) sampled per image for the losses; None keeps torchvision's 256/512."""
    for value, sampler, flag in ((rpn_batch, model.rpn.fg_bg_sampler, "--rpn-batch"),
                                 (roi_batch, model.roi_heads.fg_bg_sampler, "--roi-batch")):
        if value is not None:
            if value < 1:
                raise DetftError(f"{flag} {value}: at least one sample per image")
            sampler.batch_size_per_image = value
