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
        """The graph's input: ``image`` (H, W, 3 uint8, RGB) resized and padded, as (1, 3, H, W) ``dtype`` in [0, 1];
        for ``np.uint8``, the (1, H, W, 3) canvas itself, for a runtime that converts, reorders and scales in its
        own graph (OpenVINO: openvino_runtime.py), which skips two passes over the frame here."""
        rh, rw = self.resized
        if image.shape[:2] != (rh, rw):
            image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
        canvas = np.full((*self.shape, 3), PAD_VALUE, np.uint8)
        canvas[self.top:self.top + rh, self.left:self.left + rw] = image
        if dtype == np.uint8:
            return canvas[None]
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
                   height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, height, width) bool masks: each detection's prototype mix, scaled to the input, the letterbox border cut
    off, scaled to the image, kept inside its box (``boxes``: image pixels); and (N,) bool, which are not empty.

    Sampled only over each box's own pixels: a mask is empty outside its box, and sampling the whole image for every
    detection made the masks cost as much as the network (11.8 of 25 ms a frame for YOLO11n-seg at 320 px on 768x576
    frames with six people, bench/RESULTS.md)."""
    out = np.zeros((len(coefficients), height, width), bool)
    filled = np.zeros(len(coefficients), bool)
    if not len(coefficients):
        return out, filled
    p = torch.from_numpy(np.ascontiguousarray(protos[0])).float()
    channels, mh, mw = p.shape
    logits = (coefficients @ p.view(channels, -1)).view(-1, 1, mh, mw)
    ih, iw = box.shape
    rh, rw = box.resized
    # an image pixel's centre in grid_sample's coordinates over the prototypes (-1..1, align_corners=False): the
    # image's span in prototype pixels, sampled straight to the image size (one interpolation, no crop rounding)
    scale_x, shift_x = rw / iw, (2 * box.left + rw) / iw - 1
    scale_y, shift_y = rh / ih, (2 * box.top + rh) / ih - 1
    # the pixels c with x1 <= c < x2 (and rows alike) are ceil(x1) .. ceil(x2) - 1
    first = torch.ceil(boxes[:, :2]).long().tolist()
    last = torch.ceil(boxes[:, 2:4]).long().tolist()
    for i, ((c0, r0), (c1, r1)) in enumerate(zip(first, last)):
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, width), min(r1, height)
        if c1 <= c0 or r1 <= r0:
            continue
        gx = scale_x * ((2 * torch.arange(c0, c1, dtype=torch.float32) + 1) / width - 1) + shift_x
        gy = scale_y * ((2 * torch.arange(r0, r1, dtype=torch.float32) + 1) / height - 1) + shift_y
        grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), -1)[None]
        sampled = F.grid_sample(logits[i:i + 1], grid, mode="bilinear", padding_mode="border", align_corners=False)
        window = (sampled[0, 0] > 0).numpy()
        out[i, r0:r1, c0:c1] = window
        filled[i] = window.any()
    return out, filled
