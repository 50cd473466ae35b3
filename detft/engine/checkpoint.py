"""Checkpoints: written atomically (temp file + rename), read with ``weights_only=True``.

A detft checkpoint is a dict of plain types and tensors: ``model`` (state dict), ``meta`` (the run's
RunInfo as in run.yaml, so a checkpoint copied out of its run still loads), and for ``last.pt`` the optimizer,
scheduler, scaler and progress needed to resume exactly."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import DetftError

FORMAT = "detft-checkpoint-v1"


def save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or pickled-code files all end here, named
        raise DetftError(f"cannot read checkpoint {path}: {e.__class__.__name__}: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DetftError(f"{path} is not a detft checkpoint (train with detft, or pass it to --weights to fine-tune)")
    return ckpt
