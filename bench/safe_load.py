"""What safe checkpoint loading costs: YOLO checkpoints loaded by ultralytics' full unpickler (the old
default, which runs any code a file carries) and by the restricted loader detft now uses for every load.

    python bench/safe_load.py [--repeats 7]

Checkpoints: the packaged fall-detection YOLOv8s (yolo-weights extra) and a YOLOv8n-seg run detft
trains here for one epoch on the embedded data (its last.pt carries the optimizer state, as resume reads
it). Each load is timed in the same process, alternating the two loaders; the table gives the median."""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import tempfile
import time
from pathlib import Path

from detft.models.packaged import available, locate
from detft.models.yolo import _unrestricted, load_checkpoint


def trained_run(root: Path) -> Path:
    from detft import TrainConfig, train

    cfg = TrainConfig(arch="yolo", model="yolov8n-seg.yaml", weights="none", epochs=1, batch=8, imgsz=64, workers=0,
                      project=str(root), name="bench", device="cpu", augment="none")
    with contextlib.redirect_stdout(io.StringIO()):
        return train(cfg)


def time_load(path: Path, trusted: bool) -> float:
    from ultralytics import YOLO

    t0 = time.perf_counter()
    if trusted:
        with _unrestricted():
            YOLO(str(path))
    else:
        load_checkpoint(path)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = trained_run(Path(tmp))
        files = {"YOLOv8n-seg run, best.pt": run / "weights" / "best.pt",
                 "YOLOv8n-seg run, last.pt": run / "weights" / "last.pt"}
        if available("fall-detection"):
            files["fall-detection YOLOv8s (packaged)"] = locate("fall-detection")
        print(f"machine: {platform.machine()}, {platform.python_version()}; median of {args.repeats} loads each")
        print(f"{'checkpoint':<36} {'MB':>6} {'full unpickler ms':>18} {'restricted ms':>14} {'ratio':>6}")
        print("-" * 84)
        for name, path in files.items():
            time_load(path, True), time_load(path, False)  # warm caches and imports
            full, safe = [], []
            for _ in range(args.repeats):
                full.append(time_load(path, True))
                safe.append(time_load(path, False))
            f, s = statistics.median(full) * 1000, statistics.median(safe) * 1000
            print(f"{name:<36} {path.stat().st_size / 1e6:>6.1f} {f:>18.1f} {s:>14.1f} {s / f:>6.2f}")


if __name__ == "__main__":
    main()
