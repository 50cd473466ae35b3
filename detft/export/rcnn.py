"""Faster/Mask R-CNN to ONNX through ``torch.onnx.export``'s TorchScript tracer, the path torchvision
documents and tests for its detection models: resizing, normalisation, box decoding, NMS and mask
pasting are traced into the graph, which takes one image of any size (batch 1: torchvision's detection
graph takes a list of images, and the tracer records one)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

DEFAULT_OPSET = 17  # every op the detection graph uses (RoiAlign, NonMaxSuppression, Resize) exists there
INPUT = "image"
SCORE_FLOOR = 0.001  # COCO evaluation's threshold: the lowest any detft command asks of a graph


def write_rcnn_onnx(model: nn.Module, path: Path, *, opset: int | None, score_floor: float, max_dets: int,
                    example_size: int) -> list[str]:
    """Trace ``model`` into ``path``; returns the output names. ``score_floor`` and ``max_dets`` become constants
    of the graph: a predictor can raise the threshold and lower the count afterwards, never the other way."""
    model = model.cpu().eval()
    model.roi_heads.score_thresh = score_floor
    model.roi_heads.detections_per_img = max_dets
    outputs = ["boxes", "labels", "scores"] + (["masks"] if model.roi_heads.has_mask() else [])
    dynamic = {INPUT: {1: "height", 2: "width"}, **{o: {0: "detections"} for o in outputs}}
    # not square, so a width/height mix-up cannot trace into a graph that passes on square test images
    example = torch.rand(3, example_size, example_size * 4 // 3)
    with warnings.catch_warnings(), torch.no_grad(), gather_merge():
        warnings.simplefilter("ignore")  # dozens of TracerWarnings on shapes that the graph keeps dynamic
        torch.onnx.export(model, ([example],), str(path), dynamo=False, opset_version=opset or DEFAULT_OPSET,
                          input_names=[INPUT], output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
    return outputs


def merge_levels(levels: torch.Tensor, unmerged_results: list[torch.Tensor]) -> torch.Tensor:
    """Put the RoIs pooled per FPN level back in proposal order with one Gather.

    torchvision's traced version (``poolers._onnx_merge_levels``) scatters every level into a zero tensor of
    all RoIs x channels x 7 x 7 elements: measured on fasterrcnn_mobilenet_v2_fpn at 320 px, that
    ScatterElements was 37% of ONNX Runtime's time per image (109 ms of 290), more than the RoIAlign itself."""
    order = torch.cat([torch.where(levels == level)[0] for level in range(len(unmerged_results))])
    return torch.cat(unmerged_results)[torch.argsort(order)]


@contextlib.contextmanager
def gather_merge() -> Iterator[None]:
    """:func:`merge_levels` in place of torchvision's merge for the duration of one export (the name is
    private to torchvision: when a version lacks it, the export keeps torchvision's slower, equal graph)."""
    from torchvision.ops import poolers

    original = getattr(poolers, "_onnx_merge_levels", None)
    if original is None:
        yield
        return
    poolers._onnx_merge_levels = merge_levels
    try:
        yield
    finally:
        poolers._onnx_merge_levels = original
