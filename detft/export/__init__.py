"""``detft export``: a run's checkpoint as an ONNX graph that carries its own metadata, checked against
the model it came from before it is kept.

The family writes the graph (families/<family>.export, with the writers in this package); this package
stages it beside its destination, adds the metadata, and builds the parity report (parity.py) that
export.json holds. The whole sequence is :meth:`detft.Model.export`."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import DetftError

EXPORT_JSON = "export.json"
FORMATS = ("onnx",)
TOLERANCE = 0.005  # AP points: the default bound on |AP(source) - AP(export)| before an export warns or fails


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A temporary path in ``target``'s folder, renamed to ``target`` when the block succeeds: a failed or
    refused export (``--strict``) leaves no file, and a reader never sees half of one."""
    if target.suffix != ".onnx":
        raise DetftError(f"--out {target}: an ONNX export is a .onnx file")
    if target.is_dir():
        raise DetftError(f"--out {target} is a folder; name the .onnx file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".detft-export-", dir=target.parent))
    try:
        yield tmp / target.name
        os.replace(tmp / target.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
