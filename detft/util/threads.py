"""Torch's process-wide thread count, kept or narrowed for a block: third-party calls (ultralytics) change it for
the whole process, and work beside another runtime's workers (ONNX Runtime, OpenVINO) runs best on fewer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Undo what ultralytics' ``select_device`` does on every train, predict and export call: set torch to
    cpu_count - 1 threads for the whole process (one of two on a 2-core machine), slowing every model that
    runs after it, ONNX Runtime sessions sized from torch's count included."""
    import torch  # here, not at the top: modules that only hand this on (models/yolo.py) import without torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch ops on the calling thread alone for the block (the NMS and masks behind an exported graph). Torch's
    OpenMP workers spin after each parallel op, and the next frame's ONNX Runtime or OpenVINO workers then share the
    cores with them: measured on 2 cores, YOLO11n INT8 in OpenVINO took 10.9 ms a frame end to end with torch on two
    threads and 8.8-9.3 with one (its graph alone 6.0-6.5)."""
    import torch

    with torch_threads_kept():
        torch.set_num_threads(1)
        yield
