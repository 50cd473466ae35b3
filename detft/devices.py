"""``--device`` for torch and for ultralytics, translated in one place so both families land on the same GPU."""

from __future__ import annotations

import torch


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def ultralytics_device(device: str | torch.device = "auto") -> str | int:
    """``--device`` as ultralytics takes it: "cpu" or a GPU index (``cuda:1`` is 1, not 0), one translation
    for training, evaluation and prediction."""
    dev = device if isinstance(device, torch.device) else pick_device(device)
    if dev.type != "cuda":
        return "cpu"
    return dev.index if dev.index is not None else torch.cuda.current_device()
