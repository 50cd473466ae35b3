"""``detft export``: a run's checkpoint as an ONNX graph or an OpenVINO IR that carries its own metadata, in FP32
or INT8, checked against the model it came from before it is kept.

The family writes the ONNX graph (families/<family>.export, with the writers in this package); this package
stages it beside its destination, quantizes it (quantize.py), converts it (OpenVINO), adds the metadata, and
builds the parity report (parity.py) that export.json holds. The whole sequence is :meth:`detft.Model.export`."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DetftError

if TYPE_CHECKING:
    from ..annotations.dataset import ImageRecord
    from ..families.base import Family
    from ..runs import Run, RunInfo
    from .metadata import Graph

EXPORT_JSON = "export.json"
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}  # the file each format writes (an IR's weights: a .bin beside it)
FORMATS = tuple(SUFFIXES)
GRAPH_FILES = tuple(SUFFIXES.values())  # what detft.load() takes as an export
TOLERANCE = 0.005  # AP points: the default bound on |AP(source) - AP(export)| before an export fails
INT8_TOLERANCE = 0.01  # the same for an INT8 export, whose rounding costs some AP by design
CALIBRATION_IMAGES = 64  # training images an INT8 export calibrates on (the count measured: export/quantize.py)


@contextlib.contextmanager
def staged(target: Path, format: str = "onnx") -> Iterator[Path]:
    """A temporary path in ``target``'s folder, renamed to ``target`` (an IR with its .bin) when the block succeeds:
    a failed or refused export leaves no file, and a reader never sees half of one."""
    suffix = SUFFIXES[format]
    if target.suffix != suffix:
        raise DetftError(f"--out {target}: an {'OpenVINO' if format == 'openvino' else 'ONNX'} export is a "
                         f"{suffix} file")
    if target.is_dir():
        raise DetftError(f"--out {target} is a folder; name the {suffix} file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".detft-export-", dir=target.parent))
    try:
        yield tmp / target.name
        for part in [target] + ([target.with_suffix(".bin")] if suffix == ".xml" else []):
            os.replace(tmp / part.name, part)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_graph(family: Family, run: Run, tmp: Path, *, format: str, calibration: list[ImageRecord] | None,
                class_thresholds: dict[str, float] | None, **graph_options: Any) -> tuple[RunInfo, Graph]:
    """The family's graph at ``tmp`` in ``format``, INT8 when ``calibration`` images are given, with its metadata."""
    from . import metadata
    from .quantize import quantize_onnx, quantize_openvino

    onnx_file = tmp if format == "onnx" else tmp.with_name("graph.onnx")
    info, graph = family.export(run, onnx_file, **graph_options)
    quantized_ir = None
    if calibration is not None and format == "onnx":
        quantized = tmp.with_name("int8.onnx")
        graph.int8 = quantize_onnx(onnx_file, quantized, calibration, graph)
        os.replace(quantized, onnx_file)
    elif calibration is not None:
        quantized_ir, graph.int8 = quantize_openvino(onnx_file, calibration, graph)
    if format == "onnx":
        metadata.write(onnx_file, info, graph, class_thresholds)
    else:
        from ..inference.openvino_runtime import write_ir

        write_ir(onnx_file, tmp, metadata.props(info, graph, class_thresholds), quantized_ir)
    return info, graph
