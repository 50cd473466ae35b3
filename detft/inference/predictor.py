"""One Predictor interface for every architecture, so eval, predict and video share one path.

A Predictor takes RGB uint8 images (as displayed) and returns a :class:`Detections` per image whose
labels are the dataset's category ids."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..engine import checkpoint
from ..models.labels import LabelMap
from .detections import Detections


class Predictor(Protocol):
    labels: LabelMap
    masks: bool

    def predict(self, images: list[np.ndarray]) -> list[Detections]: ...


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def ultralytics_device(device: str | torch.device = "auto") -> str | int:
    """``--device`` as ultralytics takes it: "cpu" or a GPU index (``cuda:1`` is 1, not 0), one translation
    for training, evaluation and prediction."""
    dev = device if isinstance(device, torch.device) else pick_device(device)
    if dev.type != "cuda":
        return "cpu"
    return dev.index if dev.index is not None else torch.cuda.current_device()


class RCNNPredictor:
    """torchvision Faster/Mask R-CNN behind the Predictor interface."""

    def __init__(self, model: nn.Module, labels: LabelMap, device: torch.device | str = "cpu",
                 score_threshold: float = 0.001, max_dets: int = 100, mask_threshold: float = 0.5):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model.roi_heads.score_thresh = score_threshold
        self.model.roi_heads.detections_per_img = max_dets
        self.labels = labels
        self.masks = bool(model.roi_heads.has_mask())
        self.mask_threshold = mask_threshold
        self.lut = np.array(labels.model_to_category(), np.int64)

    @torch.inference_mode()
    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        tensors = [torch.from_numpy(np.ascontiguousarray(im)).to(self.device).permute(2, 0, 1).float().div_(255)
                   for im in images]
        outputs = self.model(tensors)
        results = []
        for im, out in zip(images, outputs):
            masks = None
            if self.masks:
                masks = (out["masks"][:, 0] > self.mask_threshold).cpu().numpy() if len(out["scores"]) \
                    else np.zeros((0, *im.shape[:2]), bool)
            results.append(Detections(out["boxes"].float().cpu().numpy(), out["scores"].float().cpu().numpy(),
                                      self.lut[out["labels"].cpu().numpy()], masks))
        return results


def predict_records(predictor: Predictor, images: list, desc: str = "predict") -> list[Detections]:
    """Detections for dataset images, one at a time with a progress bar (decoded as displayed)."""
    from ..images import read_rgb
    from ..progress import progress

    return [predictor.predict([read_rgb(im)])[0] for im in progress(images, desc, unit="img")]


def training_config(weights: Path) -> dict:
    """The TrainConfig (as a dict) a run or checkpoint was trained with, whatever the architecture."""
    from ..models.yolo import read_meta

    path = checkpoint.weights_path(weights)
    meta_file = path.parent.parent / "detft_meta.json"
    if meta_file.is_file():
        return read_meta(meta_file).get("config", {})
    return checkpoint.load(path)["meta"].get("config", {})


def load_predictor(weights: Path, device: str = "auto", score_threshold: float = 0.001,
                   max_dets: int = 100, imgsz: int | None = None, trust_weights: bool = False) -> Predictor:
    """A Predictor for a run folder or checkpoint, whatever architecture trained it; ``imgsz``
    overrides the inference size it was trained at. YOLO checkpoints load through the restricted
    loader unless ``trust_weights`` (R-CNN ones always load with ``weights_only=True``)."""
    from ..models.rcnn import image_sizes
    from ..models.registry import resolve
    from ..models.weights import load_into

    path = checkpoint.weights_path(weights)
    meta_file = path.parent.parent / "detft_meta.json"
    if meta_file.is_file():  # an ultralytics run trained through detft
        return _load_yolo(path, meta_file, device, score_threshold, max_dets, imgsz, trust_weights)
    ckpt = checkpoint.load(path)
    meta = ckpt["meta"]
    labels = LabelMap.from_json(meta["labels"])
    spec = resolve(meta["model_name"])
    sizes = image_sizes(imgsz) if imgsz else meta.get("model_kwargs", {})
    model = spec.build(num_classes=labels.num_classes, weights="none", **sizes)
    load_into(model, ckpt["model"], str(path))
    return RCNNPredictor(model, labels, pick_device(device), score_threshold, max_dets)


def _load_yolo(path: Path, meta_file: Path, device: str, score_threshold: float, max_dets: int,
               imgsz: int | None, trust: bool) -> Predictor:
    from ..models.yolo import load_checkpoint, read_meta
    from .yolo_predictor import YOLOPredictor

    meta = read_meta(meta_file)
    dev = pick_device(device)
    return YOLOPredictor(load_checkpoint(path, trust), LabelMap.from_json(meta["labels"]),
                         device=ultralytics_device(dev), score_threshold=score_threshold,
                         max_dets=max_dets, imgsz=imgsz or meta.get("imgsz", 640))
