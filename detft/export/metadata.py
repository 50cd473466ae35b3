"""What a ``.onnx`` written by ``detft export`` says about itself, so the file alone is enough to predict
and evaluate: the run's metadata (classes with their category ids, task, image size, training config) and
how to drive the graph. Both are JSON strings in the model's ``metadata_props``, which ONNX Runtime reads
without the ``onnx`` package (``session.get_modelmeta().custom_metadata_map``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DetftError
from ..runs import RunInfo
from ..util.cpu import has_vnni

RUN_KEY = "detft_run"
GRAPH_KEY = "detft_graph"
THRESHOLDS_KEY = "detft_thresholds"  # class name -> the score threshold of --conf auto, when the run had them
GRAPH_KINDS = ("rcnn", "yolo")
WEIGHTS_VNNI = "int8, for CPUs with VNNI"  # an INT8 ONNX graph's weights (``Graph.int8["weights"]``; util/cpu.py)
WEIGHTS_ANY_CPU = "uint8, right on any CPU"


@dataclass
class Graph:
    """How a predictor drives an exported graph.

    ``rcnn``: torchvision's graph, one float RGB image (3, H, W) in [0, 1] of any size; resizing, box decoding,
    NMS and mask pasting happen inside, and it returns every detection scoring above ``score_floor``, at most
    ``max_dets``. ``yolo``: ultralytics' graph, a letterboxed (1, 3, S, S) batch in (any S, multiple of ``stride``,
    when ``dynamic``), raw per-anchor predictions out; NMS and masks are computed outside (inference/yolo_graph.py)."""

    kind: str
    imgsz: int
    dynamic: bool
    half: bool = False
    opset: int | None = None
    score_floor: float = 0.0
    max_dets: int = 100
    stride: int = 32
    end2end: bool = False  # YOLO heads without NMS (yolo26, yolov10): the graph's output is already final
    int8: dict | None = None  # how it was quantized (tool, calibration images, what stayed float); None: float

    def saturates_here(self) -> bool:
        """Whether this is an INT8 graph with int8 weights, made on a CPU with VNNI, and this CPU lacks it: ONNX
        Runtime's products then saturate and the graph predicts worse than its parity check measured."""
        return bool(self.int8) and self.int8.get("weights") == WEIGHTS_VNNI and has_vnni() is False

    def describe_input(self) -> str:
        if self.kind == "rcnn":
            return f"one image of any size (resized in the graph to {self.imgsz}), batch 1"
        kind = ", INT8" if self.int8 else ""
        if self.dynamic:
            return f"any size (multiple of {self.stride}, letterboxed), batch 1{kind}"
        return f"1x3x{self.imgsz}x{self.imgsz} (letterboxed), batch 1{kind}"

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str, source: Path | str) -> Graph:
        try:
            d = json.loads(text)
            graph = cls(**d)
        except (json.JSONDecodeError, TypeError) as e:
            raise DetftError(f"{source}: damaged '{GRAPH_KEY}' metadata ({e})") from None
        if graph.kind not in GRAPH_KINDS:
            raise DetftError(f"{source}: unknown graph kind {graph.kind!r} (this detft reads {', '.join(GRAPH_KINDS)})")
        return graph


def parse(props: dict[str, str], source: Path | str) -> tuple[RunInfo, Graph]:
    """The run and graph a file's metadata describes, or a named error for files detft did not write."""
    if RUN_KEY not in props or GRAPH_KEY not in props:
        hint = " (it looks like an ultralytics export)" if "stride" in props and "names" in props else ""
        raise DetftError(f"{source} was not written by 'detft export'{hint}: it has no detft metadata (classes, "
                         "task, graph kind). Export the run with: detft export --weights RUN")
    try:
        run = json.loads(props[RUN_KEY])
    except json.JSONDecodeError as e:
        raise DetftError(f"{source}: damaged '{RUN_KEY}' metadata ({e})") from None
    return RunInfo.from_dict(run, source), Graph.from_json(props[GRAPH_KEY], source)


def read(path: Path) -> tuple[RunInfo, Graph]:
    """The metadata of an exported file, read with ``onnx`` (no inference session)."""
    onnx = require("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and friends from protobuf: name the file instead
        raise DetftError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from None
    return parse({p.key: p.value for p in model.metadata_props}, path)


def thresholds(props: dict[str, str], source: Path | str) -> dict[str, float] | None:
    """The per-class ``--conf auto`` thresholds a file carries (None when it was exported without them)."""
    if THRESHOLDS_KEY not in props:
        return None
    try:
        t = json.loads(props[THRESHOLDS_KEY])
        if not isinstance(t, dict) or not t or not all(isinstance(v, (int, float)) for v in t.values()):
            raise ValueError("expected a non-empty mapping of class name to score")
    except ValueError as e:
        raise DetftError(f"{source}: damaged '{THRESHOLDS_KEY}' metadata ({e})") from None
    return {str(k): float(v) for k, v in t.items()}


def props(info: RunInfo, graph: Graph, class_thresholds: dict[str, float] | None = None) -> dict[str, str]:
    """The metadata an exported file carries, as key -> JSON text."""
    out = {RUN_KEY: json.dumps(info.to_dict()), GRAPH_KEY: graph.to_json()}
    if class_thresholds:
        out[THRESHOLDS_KEY] = json.dumps(class_thresholds)
    return out


def write(path: Path, info: RunInfo, graph: Graph, class_thresholds: dict[str, float] | None = None) -> None:
    """Add detft's metadata to the file at ``path`` (in place; ``path`` is the export's temporary file), with
    the run's ``--conf auto`` thresholds when it has them, so a graph copied alone still predicts with them.
    The graph is validated by loading it into ONNX Runtime for the parity check, not by ``onnx.checker``, which
    rejects the node order of ultralytics' fp16 graphs that ONNX Runtime runs."""
    onnx = require("onnx")
    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in (RUN_KEY, GRAPH_KEY, THRESHOLDS_KEY)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props(info, graph, class_thresholds).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))


def require(module: str) -> Any:
    """An export dependency, or an error saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DetftError(f"ONNX export and inference need the '{module}' package: pip install 'detft[export]'") from None
