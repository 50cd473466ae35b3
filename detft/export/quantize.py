"""INT8 for CPUs, calibrated on the run's own training images, with the layers that cannot take it kept in float.

A YOLO graph ends in its detection head: box regression and class scores decoded (DFL, sigmoid) and joined into one
output tensor whose values run from 0-1 scores to pixel coordinates. Quantized, that tensor shares one scale and the
scores vanish (box AP 0.000 on BCCD); the whole head (``/model.<last>/``: its convolutions too) stays float. Chosen
by measurement on a YOLO11n fine-tuned on BCCD (320 px, 64 calibration images, box AP of FP32 0.6000; bench/RESULTS.md
"INT8"): nothing float 0.000; the head's decoding float 0.5945 (ONNX Runtime), 0.5847 (OpenVINO/NNCF, ultralytics'
own rule); the whole head float 0.5962 (ONNX Runtime), 0.5986 (OpenVINO/NNCF).

Two tools, one rule: ONNX Runtime's static quantization (QDQ, per-channel weights, MinMax calibration) for a
``.onnx`` that ONNX Runtime runs, and NNCF's post-training quantization (its MIXED preset: symmetric weights,
asymmetric activations) for an OpenVINO IR, each the tool its runtime documents for INT8."""

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
from .metadata import Graph, require

_MODULE = re.compile(r"^/model\.(\d+)/")


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


def check_int8(offered: bool, half: bool) -> None:
    """Refuse ``--int8`` before anything is exported where detft does not offer it (``offered``: the family's)."""
    if not offered:
        raise DetftError("--int8 is offered for YOLO graphs, where its accuracy was measured; torchvision's R-CNN "
                         "graph (resizing, RoIAlign and NMS inside it) is not quantized by detft: export it in FP32")
    if half:
        raise DetftError("--int8 and --half: choose one (INT8 quantizes the FP32 graph)")


def quantize_onnx(fp32: Path, out: Path, images: list[ImageRecord], graph: Graph) -> dict[str, Any]:
    """``fp32`` as a QDQ INT8 graph at ``out`` (ONNX Runtime); returns what the file's metadata records."""
    onnx = require("onnx")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    model = onnx.load(str(fp32), load_external_data=False)
    scope = head_scope([n.name for n in model.graph.node])
    kept = [n.name for n in model.graph.node if n.name.startswith(scope)]
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = ({name: x} for x in graph_inputs(images, graph))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=kept,
                    calibrate_method=CalibrationMethod.MinMax)
    return {"tool": "onnxruntime quantize_static (QDQ, per-channel, MinMax)", "images": len(images),
            "float": f"the detection head {scope} ({len(kept)} nodes)"}


def quantize_openvino(fp32: Path, images: list[ImageRecord], graph: Graph) -> tuple[Any, dict[str, Any]]:
    """``fp32`` (an ONNX graph) as an INT8 OpenVINO model (NNCF) and what the file's metadata records."""
    from ..inference.openvino_runtime import require_openvino

    ov = require_openvino()
    try:
        import nncf
    except ImportError:
        raise DetftError("--format openvino --int8 quantizes with NNCF: pip install 'detft[openvino]'") from None
    model = ov.convert_model(str(fp32))
    scope = head_scope([op.get_friendly_name() for op in model.get_ops()])
    items = list(graph_inputs(images, graph))
    quantized = nncf.quantize(model, nncf.Dataset(items), preset=nncf.QuantizationPreset.MIXED,
                              subset_size=len(items),
                              ignored_scope=nncf.IgnoredScope(patterns=[re.escape(scope) + ".*"], validate=False))
    return quantized, {"tool": f"NNCF {nncf.__version__} post-training quantization (MIXED)", "images": len(items),
                       "float": f"the detection head {scope}"}
