"""Ultralytics YOLO behind the Predictor interface (boxes, and masks at full image resolution)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ..models.labels import LabelMap
from ..models.yolo import torch_threads_kept
from .detections import Detections


class YOLOPredictor:
    def __init__(self, model: Any, labels: LabelMap, device: str = "cpu", score_threshold: float = 0.001,
                 max_dets: int = 100, iou: float = 0.7, imgsz: int = 640):
        self.model, self.labels = model, labels
        self.masks = model.task == "segment"
        self.kw = {"conf": score_threshold, "max_det": max_dets, "iou": iou, "imgsz": imgsz, "device": device,
                   "verbose": False, "retina_masks": True}
        self.lut = np.array(labels.model_to_category(), np.int64)

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.kw.update(conf=conf, max_det=max_dets)

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        with torch_threads_kept():
            results = self.model.predict([np.ascontiguousarray(im[..., ::-1]) for im in images], **self.kw)  # BGR
        out = []
        for im, r in zip(images, results):
            b = r.boxes
            masks = None
            if self.masks:
                masks = r.masks.data.cpu().numpy().astype(bool) if r.masks is not None else np.zeros((0, *im.shape[:2]), bool)
            out.append(Detections(b.xyxy.cpu().numpy().astype(np.float32), b.conf.cpu().numpy().astype(np.float32),
                                  self.lut[b.cls.cpu().numpy().astype(np.int64)], masks))
        return out

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Each image's features, one row each, for spreading a pick over what images show
        (:mod:`..labelling.ranking`): the last neck layer before the head averaged over the map (ultralytics' own
        ``embed``), at the size the model predicts at."""
        with torch_threads_kept():
            rows = self.model.embed([np.ascontiguousarray(im[..., ::-1]) for im in images], imgsz=self.kw["imgsz"],
                                    device=self.kw["device"], verbose=False)
        return np.stack([r.float().cpu().numpy() for r in rows])
