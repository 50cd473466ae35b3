"""OpenVINO behind the session interface the exported-graph predictor drives (the part of ONNX Runtime's
``InferenceSession`` it uses), so a ``.xml`` written by ``detft export --format openvino`` predicts, evaluates and
runs on video like a ``.onnx``.

OpenVINO runs here on the CPU with as many threads as torch and its latency hint (one frame at a time, as detft
predicts). On CPUs with bf16 arithmetic (AVX-512 BF16, AMX) OpenVINO computes an FP32 model in bf16 by default;
that is its documented default and the parity check of every export measures what it costs (on BCCD, nothing:
0.6002 vs ONNX Runtime's 0.6000 box AP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DetftError

RT_INFO = "detft"  # the rt_info section of the IR that holds the metadata an ONNX export keeps in metadata_props


def require_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise DetftError("OpenVINO export and inference need the 'openvino' package: pip install 'detft[openvino]'") \
            from None
    return openvino


class _Meta:
    def __init__(self, props: dict[str, str]):
        self.custom_metadata_map = props


class _Port:
    def __init__(self, name: str, type_: str):
        self.name, self.type = name, type_


class OpenVinoSession:
    """A compiled OpenVINO model with the calls :class:`.onnx_predictor.OnnxPredictor` makes of a session."""

    def __init__(self, path: Path, device: str = "auto"):
        if not path.is_file():
            raise DetftError(f"no OpenVINO model at {path}")
        if device not in ("auto", "cpu"):
            raise DetftError(f"--device {device!r}: an OpenVINO model runs on the CPU here ('cpu' or 'auto'); on a "
                             "GPU, predict with the .onnx export through onnxruntime-gpu")
        ov = require_openvino()
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DetftError(f"{path} is not a loadable OpenVINO model (its .bin missing or damaged?): {first}") from None
        self.props = {key: str(model.get_rt_info([RT_INFO, key]).astype(str)) for key in _keys(model)}
        if _takes_planar_images(model):
            model = _reads_frames(ov, model)
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": torch.get_num_threads(),
                                                          "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # f32, bf16
        print(f"{path.name}: OpenVINO on the CPU ({self.precision})")

    def get_modelmeta(self) -> _Meta:
        return _Meta(self.props)

    def get_inputs(self) -> list[_Port]:
        port = self.compiled.input(0)
        kind = {"f16": "tensor(float16)", "u8": "tensor(uint8)"}.get(port.get_element_type().get_type_name(),
                                                                     "tensor(float)")
        return [_Port(port.get_any_name(), kind)]

    def get_outputs(self) -> list[_Port]:
        return [_Port(o.get_any_name(), "tensor(float)") for o in self.compiled.outputs]

    def get_providers(self) -> list[str]:
        return [f"OpenVINO CPU ({self.precision})"]

    def run(self, outputs: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        # the input is read in place (no copy): it is the predictor's own, untouched while this call runs
        result = self.request.infer({0: next(iter(feed.values()))}, share_inputs=True)
        return [np.asarray(result[o]) for o in self.compiled.outputs]


def _takes_planar_images(model: Any) -> bool:
    """Whether the graph reads a float (N, 3, H, W) batch: a YOLO graph (an R-CNN's reads one (3, H, W) image)."""
    port = model.input(0)
    shape = port.get_partial_shape()
    return (port.get_element_type().get_type_name() == "f32" and shape.rank.is_static and shape.rank.get_length() == 4
            and shape[1].is_static and shape[1].get_length() == 3)


def _reads_frames(ov: Any, model: Any) -> Any:
    """``model`` with the conversion in front of it moved into the graph: it takes the letterboxed frame as it is,
    (N, H, W, 3) uint8, and converts, reorders and divides by 255 itself, vectorised and on its own threads, where
    numpy would make two passes over the frame on one. The same values reach the network (the parity check of
    every export measures them); the IR on disk is unchanged."""
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
    return ppp.build()


def _keys(model: Any) -> list[str]:
    """The metadata keys stored under the IR's detft section (none for an IR detft did not write)."""
    if not model.has_rt_info([RT_INFO]):
        return []
    return [str(k) for k in model.get_rt_info()[RT_INFO]]


def write_ir(onnx_path: Path, xml: Path, props: dict[str, str], model: Any = None) -> None:
    """The OpenVINO IR (``xml`` and its ``.bin``) of the ONNX graph at ``onnx_path`` (or of ``model``, an OpenVINO
    model made from it, such as its INT8 quantization), carrying ``props``, the export's metadata. Weights stay
    FP32 in the file: the runtime picks its arithmetic, and the parity check measures it."""
    ov = require_openvino()
    model = model if model is not None else ov.convert_model(str(onnx_path))
    for key, value in props.items():
        model.set_rt_info(value, [RT_INFO, key])
    ov.save_model(model, str(xml), compress_to_fp16=False)
