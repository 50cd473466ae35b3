"""What runs around an exported YOLO graph: the letterbox in front, the class-aware NMS and the mapping back to the
image behind, as array operations over the whole prediction (no per-image Python objects).

The arithmetic is the one the YOLO PyTorch predictor uses (the same rounding of the resized size and of the padding,
the same candidate filter, torchvision's NMS over class-offset boxes), so an ONNX graph gives the detections of the
checkpoint it came from; ``tests/test_export.py`` checks it against ultralytics' own functions where ultralytics is
installed. Nothing here imports ultralytics: a YOLO graph predicts in detft's Apache-2.0 core."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torchvision
from torch.nn import functional as F

PAD_VALUE = 114  # the grey of YOLO's letterbox border
CLASS_OFFSET = 7680.0  # boxes of different classes moved this far apart, so one NMS call keeps classes separate
MAX_CANDIDATES = 30000  # the highest-scoring candidates NMS considers


@dataclass(frozen=True)
class Letterbox:
    """Where an image sits inside the letterboxed input: its resized size and the padding before it."""

    shape: tuple[int, int]  # the input's (height, width)
    resized: tuple[int, int]  # the image's (height, width) inside it
    top: int
    left: int

    @classmethod
    def fit(cls, height: int, width: int, size: int, stride: int, tight: bool) -> Letterbox:
        """The image scaled to fit ``size`` x ``size`` (up or down), centred; ``tight`` (a dynamic graph) pads only to
        the next multiple of ``stride``."""
        scale = min(size / height, size / width)
        rh, rw = max(round(height * scale), 1), max(round(width * scale), 1)
        pad_h, pad_w = size - rh, size - rw
        if tight:
            pad_h, pad_w = pad_h % stride, pad_w % stride
        top, left = round(pad_h / 2 - 0.1), round(pad_w / 2 - 0.1)
        bottom, right = round(pad_h / 2 + 0.1), round(pad_w / 2 + 0.1)
        return cls((rh + top + bottom, rw + left + right), (rh, rw), top, left)

    def apply(self, image: np.ndarray, dtype: type) -> np.ndarray:
        """The (1, 3, H, W) input of ``dtype`` in [0, 1]: ``image`` (H, W, 3 uint8, RGB) resized and padded."""
        rh, rw = self.resized
        if image.shape[:2] != (rh, rw):
            image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
        canvas = np.full((*self.shape, 3), PAD_VALUE, np.uint8)
        canvas[self.top:self.top + rh, self.left:self.left + rw] = image
        x = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=dtype)  # planar, as the graph reads it
        x /= np.array(255, dtype)
        return x

    def boxes_to_image(self, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Input-pixel xyxy boxes in the original image's pixels, clipped to it (in place)."""
        rh, rw = self.resized
        boxes[:, [0, 2]] -= self.left
        boxes[:, [1, 3]] -= self.top
        boxes[:, [0, 2]] /= rw / width
        boxes[:, [1, 3]] /= rh / height
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, height)
        return boxes


def select(raw: np.ndarray, conf: float, iou: float, max_dets: int, classes: int, end2end: bool) -> torch.Tensor:
    """The detections of one image's raw graph output: rows of (x1, y1, x2, y2, score, class, mask coefficients...)
    in input pixels, best first. ``raw`` is (1, 4 + classes + coefficients, anchors), boxes as centre and size, or
    for an end-to-end graph (1, N, 6 + coefficients) already final."""
    pred = torch.from_numpy(np.ascontiguousarray(raw[0])).float()
    if end2end:
        return pred[pred[:, 4] > conf][:max_dets]
    scores = pred[4:4 + classes]
    best, label = scores.max(0)
    keep = torch.nonzero(best > conf).squeeze(1)
    if not len(keep):
        return pred.new_zeros((0, 2 + pred.shape[0] - classes))
    x = pred[:, keep].T
    centre, half = x[:, :2], x[:, 2:4] / 2
    rows = torch.cat((centre - half, centre + half, best[keep, None], label[keep, None].float(), x[:, 4 + classes:]), 1)
    if len(rows) > MAX_CANDIDATES:
        rows = rows[rows[:, 4].argsort(descending=True)[:MAX_CANDIDATES]]
    kept = torchvision.ops.nms(rows[:, :4] + rows[:, 5:6] * CLASS_OFFSET, rows[:, 4], iou)[:max_dets]
    return rows[kept]


def masks_in_image(protos: np.ndarray, coefficients: torch.Tensor, boxes: torch.Tensor, box: Letterbox,
                   height: int, width: int) -> np.ndarray:
    """(N, height, width) bool masks: each detection's prototype mix, scaled to the input, the letterbox border cut
    off, scaled to the image, kept inside its box (``boxes``: image pixels)."""
    if not len(coefficients):
        return np.zeros((0, height, width), bool)
    p = torch.from_numpy(np.ascontiguousarray(protos[0])).float()
    channels, mh, mw = p.shape
    logits = (coefficients @ p.view(channels, -1)).view(1, -1, mh, mw)
    ih, iw = box.shape
    sy, sx = mh / ih, mw / iw  # prototype pixels per input pixel
    rh, rw = box.resized
    # the image's span in prototype pixels, sampled straight to the image size (one interpolation, no crop rounding)
    theta = logits.new_tensor([[[rw * sx / mw, 0, (2 * box.left + rw) * sx / mw - 1],
                                [0, rh * sy / mh, (2 * box.top + rh) * sy / mh - 1]]])
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)
    masks = F.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=False)[0] > 0
    cols = torch.arange(width, dtype=boxes.dtype)
    rows = torch.arange(height, dtype=boxes.dtype)
    inside = ((cols[None, None, :] >= boxes[:, 0, None, None]) & (cols[None, None, :] < boxes[:, 2, None, None])
              & (rows[None, :, None] >= boxes[:, 1, None, None]) & (rows[None, :, None] < boxes[:, 3, None, None]))
    return (masks & inside).numpy()
