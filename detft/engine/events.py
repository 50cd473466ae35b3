"""Per-epoch scalars as a TensorBoard event file in the run folder, for every family.

The ``tensorboard`` package is optional (``pip install 'detft[tensorboard]'``): without it the run says so
once and trains as before; metrics.csv and results.png hold the same numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tag(key: str) -> str:
    """Training and validation losses side by side under one name each, so TensorBoard overlays them."""
    if key.startswith("val_loss"):
        return f"{key[4:]}/val"
    if key.startswith("loss"):
        return f"{key}/train"
    return f"metrics/{key}"


class EventLog:
    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch raises this when the tensorboard package is missing
            print("note: no TensorBoard event file (pip install 'detft[tensorboard]'); metrics.csv and results.png "
                  "have the same numbers")
            self.writer: Any = None
            return
        self.writer = SummaryWriter(log_dir=str(folder))

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tag(key), value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
