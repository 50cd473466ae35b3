"""YOLO (detect and segment) to ONNX through ultralytics' own exporter, so the graph is the one its
runtime and its users know: a letterboxed batch in, raw per-anchor predictions out (NMS stays outside the
graph, where detft runs ultralytics' own NMS with the thresholds asked at prediction time)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import DetftError
from ..models.yolo import load_checkpoint
from ..util.threads import torch_threads_kept
from .metadata import require


def write_yolo_onnx(checkpoint: Path, path: Path, *, imgsz: int, dynamic: bool, half: bool, opset: int | None,
                    trust: bool) -> dict[str, Any]:
    """Export ``checkpoint`` to ``path``; returns what the predictor needs beyond the run's metadata.

    The checkpoint is copied beside ``path`` first: ultralytics writes its output next to the ``.pt`` it loaded,
    and the run folder is not the export's to write in."""
    staged = path.with_suffix(".pt")
    shutil.copyfile(checkpoint, staged)
    model = load_checkpoint(staged, trust)  # the restricted loader, as for every YOLO checkpoint
    net = model.model
    stride = int(max(net.stride)) if hasattr(net, "stride") else 32
    if imgsz % stride:
        raise DetftError(f"--imgsz {imgsz} is not a multiple of the model's stride {stride}")
    try:
        with torch_threads_kept():
            written = model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, quantize=16 if half else None,
                                   opset=opset, simplify=True, nms=False, batch=1, device="cpu", verbose=False)
    except (AssertionError, ValueError, RuntimeError, ImportError) as e:
        raise DetftError(f"ultralytics could not export {checkpoint}: {type(e).__name__}: {e}") from None
    finally:
        staged.unlink(missing_ok=True)
    Path(written).replace(path)
    onnx = require("onnx")
    used = next(o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": int(used), "stride": stride, "end2end": bool(getattr(net, "end2end", False))}
