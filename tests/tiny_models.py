"""Tiny Faster/Mask R-CNNs registered for tests: the engine's code paths at a fraction of the cost.

The backbone mimics torchvision's layout (``backbone.body`` with a stem and ``layerN`` stages, real
BatchNorm layers) so freezing, BN handling and checkpoints are exercised as on the real models."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from detft.models.catalog import register


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(OrderedDict(stem=_block(3, 16), layer1=_block(16, 32), layer2=_block(32, 64)))
        self.out_channels = 64

    def forward(self, x):
        return OrderedDict([("0", self.body(x))])


def _tiny(masks: bool, num_classes: int, weights: str | None = "none", min_size: int = 96, max_size: int = 96):
    kw = dict(num_classes=num_classes, min_size=min_size, max_size=max_size,
              rpn_anchor_generator=AnchorGenerator(sizes=((16, 32, 64),), aspect_ratios=((0.5, 1.0, 2.0),)),
              box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), rpn_batch_size_per_image=64, box_batch_size_per_image=64,
              box_head=TwoMLPHead(64 * 7 * 7, 256), box_predictor=FastRCNNPredictor(256, num_classes))
    del kw["num_classes"]  # given through the predictors
    if masks:
        return MaskRCNN(TinyBackbone(), mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
                        mask_head=MaskRCNNHeads(64, [64, 64], 1), mask_predictor=MaskRCNNPredictor(64, 64, num_classes), **kw)
    return FasterRCNN(TinyBackbone(), **kw)


register("tiny_fasterrcnn", "fasterrcnn", masks=False, default_weights="none")(
    lambda **kw: _tiny(False, **kw))
register("tiny_maskrcnn", "maskrcnn", masks=True, default_weights="none")(
    lambda **kw: _tiny(True, **kw))
