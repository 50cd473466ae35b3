"""ultralytics' detect and segment trainers as detft runs them: an AMP check that never reaches the network.

ultralytics' ``check_amp`` compares a freshly loaded ``yolo26n.pt`` in fp32 and fp16, and loads it by name, so on
a CUDA machine every training with AMP on downloads that checkpoint (YOLO_OFFLINE does not stop it): a stall
offline, a stray file in ``./weights`` online. detft's check keeps ultralytics' rule for GPUs known to break AMP
and runs the model being trained, once, under autocast, instead of a downloaded one.

The replacement is installed when this module is imported. ultralytics' multi-GPU training pickles the trainer's
class into the DDP worker processes it starts; those import this module to rebuild it, so they get the same
check (rank 0 runs it there)."""

from __future__ import annotations

import re
from typing import Any

import torch
from ultralytics.engine import trainer as engine
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.models.yolo.segment import SegmentationTrainer

# ultralytics' own list (utils/checks.check_amp): GPUs whose fp16 gives NaN losses or zero mAP
AMP_BROKEN = re.compile(r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)",
                        re.IGNORECASE)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def check_amp(model: torch.nn.Module) -> bool:
    """Whether to train with AMP on the model's device: never off an accelerator, never on a GPU known to break
    it, otherwise only if the model itself gives finite outputs under fp16 autocast."""
    device = model_device(model)
    if device.type != "cuda":
        return False
    gpu = torch.cuda.get_device_name(device)
    if AMP_BROKEN.search(gpu):
        print(f"AMP: off on {gpu}, which ultralytics lists as giving NaN losses or zero mAP in fp16")
        return False
    stride = int(max(getattr(model, "stride", torch.tensor([32.0])).max().item(), 32))
    x = torch.zeros(1, 3, stride * 4, stride * 4, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.float16):
            out = model(x)
    finally:
        model.train(was_training)
    finite = all(bool(torch.isfinite(t).all()) for t in _tensors(out))
    print(f"AMP: {'on' if finite else 'off: the model gives non-finite outputs in fp16 on'} {gpu} "
          "(checked on the model being trained, no download)")
    return finite


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out.float()]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return []


engine.check_amp = check_amp  # the name BaseTrainer._setup_train calls


class DetectTrainer(DetectionTrainer):
    """ultralytics' detection trainer, importable by its DDP workers from here (see the module docstring)."""


class SegmentTrainer(SegmentationTrainer):
    """ultralytics' segmentation trainer, importable by its DDP workers from here (see the module docstring)."""


TRAINERS: dict[str, type] = {"detect": DetectTrainer, "segment": SegmentTrainer}
