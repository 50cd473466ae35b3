"""One Predictor interface for every architecture, so eval, predict and video share one path.

A Predictor takes RGB uint8 images (as displayed) and returns a :class:`Detections` per image whose
labels are the dataset's category ids."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..models.labels import LabelMap
from .detections import Detections


class Predictor(Protocol):
    labels: LabelMap
    masks: bool

    def predict(self, images: list[np.ndarray]) -> list[Detections]: ...

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        """Score threshold and detections kept per image: 0.25 to look at, 0.001 to evaluate (COCO practice)."""


class RCNNPredictor:
    """torchvision Faster/Mask R-CNN behind the Predictor interface."""

    def __init__(self, model: nn.Module, labels: LabelMap, device: torch.device | str = "cpu",
                 score_threshold: float = 0.001, max_dets: int = 100, mask_threshold: float = 0.5):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.set_thresholds(score_threshold, max_dets)
        self.labels = labels
        self.masks = bool(model.roi_heads.has_mask())
        self.mask_threshold = mask_threshold
        self.lut = np.array(labels.model_to_category(), np.int64)

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.model.roi_heads.score_thresh = conf
        self.model.roi_heads.detections_per_img = max_dets

    MIN_SIDE = 32  # px the shorter side keeps at the model's input size: one cell of the coarsest feature map

    def _padded(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` padded below or to the right so its shorter side is still :data:`MIN_SIDE` px once torchvision
        has resized it: a 20000x20 strip would shrink to 0 px and fail; the padding holds no object."""
        transform = self.model.transform
        height, width = image.shape[-2:]
        scale = min(float(transform.min_size[-1]) / min(height, width), float(transform.max_size) / max(height, width))
        need = int(np.ceil(self.MIN_SIDE / scale))
        pad_h, pad_w = (max(0, need - height), 0) if height < width else (0, max(0, need - width))
        return torch.nn.functional.pad(image, (0, pad_w, 0, pad_h)) if pad_h or pad_w else image

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        """The (3, H, W) float input of an RGB uint8 ``image`` on the device, padded (:meth:`_padded`)."""
        return self._padded(torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).float()
                            .div_(255))

    @torch.inference_mode()
    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        tensors = [self._tensor(im) for im in images]
        if self.device.type == "cpu":  # a batch is slower there than its images one by one (eight 512 px slice
            outputs = [self.model([t])[0] for t in tensors]  # windows, MobileNetV2 FPN, 2 cores: 3.4-3.8 s vs 2.4-2.6 s)
        else:
            outputs = self.model(tensors)
        results = []
        for im, out in zip(images, outputs):
            height, width = im.shape[:2]
            boxes = out["boxes"].float().cpu().numpy()
            boxes[:, 0::2], boxes[:, 1::2] = boxes[:, 0::2].clip(0, width), boxes[:, 1::2].clip(0, height)  # padding off
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            masks = None
            if self.masks:
                masks = (out["masks"][torch.from_numpy(keep).to(out["masks"].device), 0, :height, :width]
                         > self.mask_threshold).cpu().numpy() if keep.any() \
                    else np.zeros((0, height, width), bool)
            results.append(Detections(boxes[keep], out["scores"].float().cpu().numpy()[keep],
                                      self.lut[out["labels"].cpu().numpy()[keep]], masks))
        return results

    @torch.inference_mode()
    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Each image's features, one row each, for spreading a pick over what images show
        (:mod:`..labelling.ranking`): the coarsest level of the backbone's feature pyramid (or its one map),
        averaged over the map."""
        rows = []
        for im in images:
            batch, _ = self.model.transform([self._tensor(im)])
            features = self.model.backbone(batch.tensors)
            deepest = list(features.values())[-1] if isinstance(features, dict) else features
            rows.append(deepest.float().mean(dim=(2, 3))[0].cpu().numpy())
        return np.stack(rows)


class ClassThresholds:
    """``--conf auto``: a predictor whose detections must each reach their own class's threshold (the best-F1
    values ``detft eval`` stores in eval.json), so a rare class is not held to a common class's bar."""

    def __init__(self, inner: Predictor, thresholds: dict[int, float], max_dets: int = 100):
        self.inner, self.labels, self.masks = inner, inner.labels, inner.masks
        self.thresholds = thresholds  # category id -> score threshold
        self.floor = min(thresholds.values())
        self.set_thresholds(self.floor, max_dets)

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.inner.set_thresholds(conf, max_dets)

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        out = []
        for d in self.inner.predict(images):
            need = np.array([self.thresholds.get(int(c), self.floor) for c in d.labels], np.float32).reshape(-1)
            out.append(d.filter(d.scores >= need))
        return out


def predict_records(predictor: Predictor, images: list, desc: str = "predict",
                    every: float | None = None) -> list[Detections]:
    """Detections for dataset images, one at a time with a progress bar (decoded as displayed; ``every``: the
    seconds between progress lines in a log, see :func:`..util.progress.progress`)."""
    from ..annotations.images import read_rgb
    from ..util.progress import progress

    return [predictor.predict([read_rgb(im)])[0] for im in progress(images, desc, unit="img", every=every)]
