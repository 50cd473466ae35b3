"""INT8 for CPUs, calibrated on the run's own training images, with the layers that cannot take it kept in float.

A YOLO graph ends in its detection head: per scale, branches of convolutions for the boxes (``cv2``), the class
scores (``cv3``) and, for segmentation, the mask coefficients (``cv4``), each ending in a plain 1x1 convolution, then
the decoding (DFL, sigmoid) that joins boxes and scores into one output whose values run from 0-1 scores to pixel
coordinates. Quantized whole, that output shares one scale and the scores vanish (box AP 0.000 on BCCD).

What stays float is chosen per model by measurement: :data:`FLOAT_RULES` are tried in order and the export's parity
check keeps the first within its tolerance. First the branches' last convolutions and the decoding float, their inner
convolutions (most of the head's arithmetic) INT8; then the whole head float. Measured with NNCF (bench/int8_rules.py,
bench/RESULTS.md "What stays float in an INT8 YOLO graph"): on four YOLO11n fine-tunes the first rule cost at most
0.0034 box AP against FP32; on a YOLOv8s, whose head is heavier, its graph ran 20% faster than with the whole head
float (1% on YOLO11n). The decoding alone float (ultralytics' own rule) lost 0.0153 on BCCD with fast bias correction.

Two tools, one rule: ONNX Runtime's static quantization (QDQ, per-channel weights, MinMax calibration; int8
weights where the exporting CPU has VNNI, uint8 elsewhere, see :func:`quantize_onnx`) for a ``.onnx`` that ONNX
Runtime runs, and NNCF's post-training quantization for an OpenVINO IR (its MIXED preset:
symmetric weights, asymmetric activations; with its full bias correction, which on BCCD recovered 0.005 AP of the
fast one's loss for 6 s more of export), each the tool its runtime documents for INT8."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..annotations.dataset import ImageRecord
from ..annotations.images import read_rgb
from ..errors import DetftError
from ..inference.yolo_graph import Letterbox
from ..util.cpu import has_vnni
from .metadata import WEIGHTS_ANY_CPU, WEIGHTS_VNNI, Graph, require

_MODULE = re.compile(r"^/model\.(\d+)/")
# inside the head: the layers of a branch before its last convolution (cv2.0/cv2.0.1/..., cv3.2/cv3.2.0/cv3.2.0.1/...)
_INNER = re.compile(r"^cv\d+\.\d+/cv\d+\.\d+\.[01]/")
FLOAT_RULES = ("outputs", "head")  # what stays float, tried in this order (see the module's docstring)


def calibration_images(images: list[ImageRecord], count: int) -> list[ImageRecord]:
    """``count`` training images spread over the split (every k-th: the same ones on every export of a run)."""
    if not images:
        raise DetftError("--int8 calibrates on the run's training images, and the data has none")
    step = max(1, len(images) // count)
    return images[::step][:count]


def graph_inputs(images: list[ImageRecord], graph: Graph) -> Iterator[np.ndarray]:
    """Each image as the predictor feeds the graph: YOLO letterboxed at the export's size."""
    for image in images:
        rgb = read_rgb(image)
        box = Letterbox.fit(rgb.shape[0], rgb.shape[1], graph.imgsz, graph.stride, tight=graph.dynamic)
        yield box.apply(rgb, np.float32)


def head_scope(node_names: list[str]) -> str:
    """The detection head's name prefix in an ultralytics graph: its last module, ``/model.<N>/``."""
    indices = [int(m.group(1)) for n in node_names if (m := _MODULE.match(n))]
    if not indices:
        raise DetftError("--int8: the graph's layers are not named as ultralytics names them (/model.N/...): "
                         "cannot tell its detection head, which must stay float")
    return f"/model.{max(indices)}/"


def float_nodes(node_names: list[str], rule: str) -> tuple[list[str], str]:
    """The nodes ``rule`` (one of :data:`FLOAT_RULES`) keeps float, and how the file's metadata says it."""
    scope = head_scope(node_names)
    head = [n for n in node_names if n.startswith(scope)]
    if rule == "head":
        return head, f"the detection head {scope} ({len(head)} nodes)"
    if rule != "outputs":
        raise ValueError(f"unknown float rule {rule!r}")
    kept = [n for n in head if not _INNER.match(n[len(scope):])]
    return kept, (f"the detection head's last convolutions and decoding ({len(kept)} of the {len(head)} nodes of "
                  f"{scope}; its inner convolutions INT8)")


def check_int8(offered: bool, half: bool) -> None:
    """Refuse ``--int8`` before anything is exported where detft does not offer it (``offered``: the family's)."""
    if not offered:
        raise DetftError("--int8 is offered for YOLO graphs, where its accuracy was measured; torchvision's R-CNN "
                         "graph (resizing, RoIAlign and NMS inside it) is not quantized by detft: export it in FP32")
    if half:
        raise DetftError("--int8 and --half: choose one (INT8 quantizes the FP32 graph)")


def quantize_onnx(fp32: Path, out: Path, images: list[ImageRecord], graph: Graph, rule: str) -> dict[str, Any]:
    """``fp32`` as a QDQ INT8 graph at ``out`` (ONNX Runtime), ``rule`` saying what stays float; returns what the
    file's metadata records."""
    onnx = require("onnx")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    model = onnx.load(str(fp32), load_external_data=False)
    kept, described = float_nodes([n.name for n in model.graph.node], rule)
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = ({name: x} for x in graph_inputs(images, graph))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    # int8 weights are ONNX Runtime's fast path on CPUs with VNNI; without it their products saturate (util/cpu.py):
    # YOLO11n on BCCD lost 0.066-0.070 box AP on an AMD Zen 3 (AVX2) with int8 weights, 0.004 with uint8 ones, which
    # run there as fast (bench/RESULTS.md). The weights suit the CPU that exports and checks the file; the metadata
    # says which, and the predictor warns where a file made for VNNI runs on a CPU without it.
    vnni = bool(has_vnni())
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8 if vnni else QuantType.QUInt8,
                    nodes_to_exclude=kept, calibrate_method=CalibrationMethod.MinMax)
    return {"tool": "onnxruntime quantize_static (QDQ, per-channel, MinMax)", "images": len(images),
            "float": described, "rule": rule, "weights": WEIGHTS_VNNI if vnni else WEIGHTS_ANY_CPU}


def quantize_openvino(fp32: Path, images: list[ImageRecord], graph: Graph, rule: str,
                      fast_bias_correction: bool = False) -> tuple[Any, dict[str, Any]]:
    """``fp32`` (an ONNX graph) as an INT8 OpenVINO model (NNCF), ``rule`` saying what stays float, and what the
    file's metadata records. NNCF's fast bias correction is there for bench/int8_rules.py to measure against."""
    from ..inference.openvino_runtime import require_openvino

    ov = require_openvino()
    try:
        import nncf
    except ImportError:
        raise DetftError("--format openvino --int8 quantizes with NNCF: pip install 'detft[openvino]'") from None
    model = ov.convert_model(str(fp32))
    kept, described = float_nodes([op.get_friendly_name() for op in model.get_ops()], rule)
    items = list(graph_inputs(images, graph))
    quantized = nncf.quantize(model, nncf.Dataset(items), preset=nncf.QuantizationPreset.MIXED,
                              subset_size=len(items), fast_bias_correction=fast_bias_correction,
                              ignored_scope=nncf.IgnoredScope(names=kept, validate=False))
    correction = "fast bias correction" if fast_bias_correction else "bias correction"
    return quantized, {"tool": f"NNCF {nncf.__version__} post-training quantization (MIXED, {correction})",
                       "images": len(items), "float": described, "rule": rule}
