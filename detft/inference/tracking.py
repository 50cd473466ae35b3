"""Multi-object tracking on any Predictor's detections with ultralytics' ByteTrack.

The same tracker runs after every architecture, so track ids of a YOLO and an R-CNN run mean the
same thing; ultralytics' own ``model.track`` would only serve YOLO."""

from __future__ import annotations

from typing import Any

import numpy as np

from .detections import Detections


class ByteTrack:
    def __init__(self, config: str = "bytetrack.yaml", **overrides: Any):
        from ..models.yolo import prepare_offline

        prepare_offline(purpose="--track (ultralytics' ByteTrack)")
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        args = {**YAML.load(check_yaml(config)), **overrides}
        self.tracker = BYTETracker(IterableSimpleNamespace(**args))

    def update(self, dets: Detections, image: np.ndarray) -> Detections:
        """The detections that belong to a track, with their ids (unconfirmed and low-score ones drop out,
        as in ultralytics' tracking mode)."""
        from ultralytics.engine.results import Boxes

        data = np.concatenate([dets.boxes, dets.scores[:, None], dets.labels[:, None].astype(np.float32)], axis=1)
        tracks = self.tracker.update(Boxes(data, image.shape[:2]), image)
        if len(tracks) == 0:
            out = dets.filter(np.zeros(len(dets), bool))
            out.track_ids = np.zeros(0, np.int64)
            return out
        out = dets.filter(tracks[:, -1].astype(np.int64))
        out.track_ids = tracks[:, 4].astype(np.int64)
        return out
