"""The COCO instance-segmentation start offline: YOLOv5 v7.0's ``yolov5s-seg.pt`` in ultralytics' modules.

The checkpoint pickles YOLOv5's own classes, which detft neither has nor runs; its tensors are read inertly
(:mod:`.inert_pickle`) and mapped by name into ultralytics' YOLOv5 network with a Segment head
(``cfg/yolov5-seg.yaml``), whose backbone, neck and mask prototype are YOLOv5's layer for layer. Two parts
cannot carry over: YOLOv5's anchor-based output convolutions (ultralytics' heads are anchor-free), which start
fresh as every head does on new classes, and the prototype's upsampling, a fixed nearest-neighbour resize in
YOLOv5 and a learnt transposed convolution in ultralytics, which starts as exactly that resize so the pretrained
prototype computes what it was trained to. Anything else that does not fit is an error, never a partial load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DetftError
from .inert_pickle import read_checkpoint

CFG = Path(__file__).with_name("cfg") / "yolov5s-seg.yaml"  # ultralytics reads cfg/yolov5-seg.yaml at scale s
SOURCE_HEAD = ("model.24.anchors", "model.24.m.")  # YOLOv5's anchor-based outputs: no ultralytics counterpart
FRESH = ("model.24.cv2.", "model.24.cv3.", "model.24.cv4.", "model.24.dfl.", "model.24.proto.upsample.")


def nearest_upsample(conv: nn.ConvTranspose2d) -> None:
    """Make a 2x2, stride-2 transposed convolution a nearest-neighbour 2x upsampling (each input pixel copied to
    its 2x2 output block, channel by channel): what YOLOv5's prototype was trained behind."""
    if conv.in_channels != conv.out_channels or conv.kernel_size != (2, 2) or conv.stride != (2, 2):
        raise DetftError(f"cannot make {conv} a nearest upsampling")
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[torch.arange(conv.in_channels), torch.arange(conv.in_channels)] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()


def _layers(cfg: dict) -> list[str]:
    """The backbone and neck layer specs, comparable between YOLOv5's yaml and ultralytics' (``'None'`` vs None)."""
    return [str(layer).replace("'None'", "None") for layer in (cfg["backbone"] + cfg["head"][:-1])]


def load_yolov5_seg(path: Path) -> Any:
    """An ultralytics YOLO segment model holding ``path``'s YOLOv5s-seg weights (80 COCO classes named)."""
    from ultralytics import YOLO

    source, attributes = read_checkpoint(path)
    model = YOLO(str(CFG))
    cfg, theirs = model.model.yaml, attributes.get("yaml")
    if not isinstance(theirs, dict) or "backbone" not in theirs or "head" not in theirs:
        raise DetftError(f"{path} holds no YOLOv5 model description (yaml): not a YOLOv5 checkpoint")
    scale = cfg["scales"][cfg["scale"]][:2]
    if _layers(theirs) != _layers(cfg) or [theirs.get("depth_multiple"), theirs.get("width_multiple")] != scale:
        raise DetftError(f"{path} is not a YOLOv5s-seg network ({theirs.get('yaml_file', 'its yaml')}, depth/width "
                         f"{theirs.get('depth_multiple')}/{theirs.get('width_multiple')}); detft maps only that one")
    own = model.model.state_dict()
    mapped = {k: v for k, v in source.items() if not k.startswith(SOURCE_HEAD)}
    problems = [f"{k} is not in the ultralytics network" for k in mapped if k not in own]
    problems += [f"{k} {tuple(v.shape)} -> {tuple(own[k].shape)}" for k, v in mapped.items()
                 if k in own and v.shape != own[k].shape]
    problems += [f"{k} gets no tensor" for k in own if k not in mapped and not k.startswith(FRESH)]
    if problems:
        raise DetftError(f"{path} does not map into ultralytics' YOLOv5s-seg: " + "; ".join(problems[:5])
                         + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    model.model.load_state_dict(mapped, strict=False)
    nearest_upsample(model.model.model[-1].proto.upsample)
    names = attributes.get("names")
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if isinstance(names, dict) and len(names) == cfg["nc"]:
        model.model.names = {int(k): str(v) for k, v in names.items()}
    return model
