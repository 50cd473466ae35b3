"""Ultralytics YOLO behind the Predictor interface (boxes, and masks at full image resolution).

``model.predict()`` sets its source and arguments up again on every call, about 20 ms a call on a 2-core CPU
(bench/RESULTS.md, "Many cameras in one process"): a video or a camera loop calls it once a frame. So the first call
after the settings change goes through ``model.predict()``, which builds ultralytics' predictor for them; the calls
after it run that predictor's own stages (preprocess, inference, postprocess), as ultralytics' stream loop does, with
the same letterbox, NMS and results."""

from __future__ import annotations

from typing import Any

import numpy as np
from ..models.labels import LabelMap
from ..util.threads import torch_threads_kept
from .detections import Detections


class YOLOPredictor:
    def __init__(self, model: Any, labels: LabelMap, device: str = "cpu", score_threshold: float = 0.001,
                 max_dets: int = 100, iou: float = 0.7, imgsz: int = 640):
        self.model, self.labels = model, labels
        self.masks = model.task == "segment"
        self.kw = {"conf": score_threshold, "max_det": max_dets, "iou": iou, "imgsz": imgsz, "device": device,
                   "verbose": False, "retina_masks": True}
        self.lut = np.array(labels.model_to_category(), np.int64)
        self.set_up = False  # ultralytics' predictor holds self.kw: its stages can run without model.predict()

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.kw.update(conf=conf, max_det=max_dets)
        self.set_up = False

    def _results(self, bgr: list[np.ndarray]) -> list[Any]:
        if not self.set_up:
            results = self.model.predict(bgr, **self.kw)
            self.set_up = True
            return results
        import torch

        stages = self.model.predictor
        stages.batch = ([f"image{i}.jpg" for i in range(len(bgr))], bgr, [""] * len(bgr))  # results read paths here
        with torch.inference_mode():
            x = stages.preprocess(bgr)
            return stages.postprocess(stages.inference(x), x, bgr)

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        with torch_threads_kept():
            results = self._results([np.ascontiguousarray(im[..., ::-1]) for im in images])  # BGR
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
        (:mod:`..labelling.ranking`): the last neck layer before the head averaged over the map (the layer
        ultralytics' own ``embed`` reads), on the input ``predict`` letterboxes. Through the set-up predictor's
        stages, so ``predict`` and ``embed`` in turn (``detft rank``) set nothing up again."""
        import torch

        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]
        with torch_threads_kept():
            if not self.set_up:
                self._results(bgr)  # sets ultralytics' predictor up; these detections are not needed
            stages = self.model.predictor
            with torch.inference_mode():
                rows = stages.model(stages.preprocess(bgr), embed=[len(self.model.model.model) - 2])
        # ultralytics' AutoBackend hands a batch of one back as its one vector, not a tuple of one
        rows = [rows] if isinstance(rows, torch.Tensor) else rows
        return np.stack([r.float().cpu().numpy() for r in rows])
