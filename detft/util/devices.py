"""``--device`` for torch and for ultralytics, translated in one place so both families land on the same GPU.

``--device`` takes ``auto``, ``cpu``, ``cuda``, ``cuda:N``, a bare GPU index ``N`` (ultralytics' spelling), or a
list ``0,1`` for one job on several GPUs: ultralytics runs its own DDP for that, the R-CNN family runs one process
per GPU under torchrun (see :func:`several`)."""

from __future__ import annotations

import torch

from ..errors import DetftError


def several(device: str | torch.device) -> list[int] | None:
    """The GPU indices of a ``0,1`` list, or None when ``device`` names one device."""
    if isinstance(device, torch.device) or "," not in device:
        return None
    try:
        indices = [int(part) for part in device.split(",") if part.strip()]
    except ValueError:
        raise DetftError(f"--device {device!r}: a list of GPU indices looks like 0,1") from None
    if len(set(indices)) != len(indices) or min(indices, default=-1) < 0:
        raise DetftError(f"--device {device!r}: a list of distinct GPU indices, like 0,1")
    return indices


def primary(device: str) -> str:
    """The one device that evaluates and predicts for a job trained on a list of GPUs (the first), else ``device``."""
    indices = several(device)
    return f"cuda:{indices[0]}" if indices else device


def pick_device(device: str = "auto") -> torch.device:
    """One torch device. A list of GPUs is not one device: the R-CNN family's error says how to use them."""
    gpus = several(device)
    if gpus:
        raise DetftError(f"--device {device}: this trains in one process; an R-CNN uses several GPUs with one "
                         f"process per GPU: torchrun --nproc-per-node {len(gpus)} -m detft train ... "
                         "(each process takes its own GPU), or a YOLO model trains on them with --device as given")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.strip().isascii() and device.strip().isdigit():
        return torch.device("cuda", int(device))
    try:
        return torch.device(device)
    except RuntimeError:
        raise DetftError(f"--device {device!r}: use cpu, cuda, cuda:N, N, or a list of GPUs like 0,1") from None


def ultralytics_device(device: str | torch.device = "auto") -> str | int:
    """``--device`` as ultralytics takes it: "cpu", a GPU index (``cuda:1`` is 1, not 0), or ``"0,1"`` for its
    own multi-GPU training; one translation for training, evaluation and prediction."""
    indices = several(device)
    if indices:
        return ",".join(map(str, indices))
    dev = device if isinstance(device, torch.device) else pick_device(device)
    if dev.type != "cuda":
        return "cpu"
    return dev.index if dev.index is not None else torch.cuda.current_device()
