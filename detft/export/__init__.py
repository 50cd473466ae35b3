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


def write_fp32(family: Family, run: Run, tmp: Path, **graph_options: Any) -> tuple[RunInfo, Graph, Path]:
    """The family's FP32 ONNX graph for an export to ``tmp``, written beside it (a name no export target can take):
    :func:`finish_graph` makes the export from it, and may make it again (INT8 under another float rule)."""
    fp32 = tmp.with_name(tmp.stem + ".fp32.onnx")
    info, graph = family.export(run, fp32, **graph_options)
    return info, graph, fp32


def finish_graph(fp32: Path, tmp: Path, info: RunInfo, graph: Graph, *, format: str,
                 calibration: list[ImageRecord] | None, float_rule: str,
                 class_thresholds: dict[str, float] | None) -> None:
    """The export at ``tmp`` in ``format`` from the FP32 graph ``fp32`` (left as it was), quantized when
    ``calibration`` images are given with ``float_rule`` saying what stays float (export/quantize.py), with its
    metadata."""
    from . import metadata
    from .quantize import quantize_onnx, quantize_openvino

    graph.int8 = None
    quantized_ir = None
    if format == "onnx" and calibration is not None:
        graph.int8 = quantize_onnx(fp32, tmp, calibration, graph, float_rule)
    elif format == "onnx":
        shutil.copyfile(fp32, tmp)
    elif calibration is not None:
        quantized_ir, graph.int8 = quantize_openvino(fp32, calibration, graph, float_rule)
    if format == "onnx":
        metadata.write(tmp, info, graph, class_thresholds)
    else:
        from ..inference.openvino_runtime import write_ir

        write_ir(fp32, tmp, metadata.props(info, graph, class_thresholds), quantized_ir)
