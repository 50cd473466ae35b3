"""detft's YOLO path vs the same ultralytics call made directly, and frozen vs unfrozen step time.

    python bench/train_yolo.py [--data ../shared/datasets/bccd/BCCD] [--epochs 2] [--imgsz 320]

Both runs train the same model yaml on the same converted YOLO dataset with the same arguments; the
detft number is the wall time of `detft train --arch yolo` minus nothing (conversion is cached and
reused, as it is for users on a second run), the direct number is `YOLO(...).train(...)`. Time per
epoch is total training time / epochs; evaluation by detft's evaluator after training is reported
separately. Goal: overhead <= 3%."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--model", default="yolov8n.yaml")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=16)
    a = p.parse_args()

    import detft
    from detft.config import TrainConfig
    from detft.data.loading import load_data
    from detft.families import yolo as yolo_trainer
    from detft.models.yolo import load_model, prepare_offline

    prepare_offline()
    work = Path(tempfile.mkdtemp(prefix="detft-bench-yolo-"))
    rows = {}
    try:
        def cfg(name: str, freeze: str = "none") -> TrainConfig:
            return TrainConfig(data=a.data, arch="yolo", model=a.model, epochs=a.epochs, batch=a.batch, imgsz=a.imgsz,
                               workers=2, device="cpu", project=str(work), name=name, freeze=freeze, schedule="constant")

        ds = load_data(cfg("x")).dataset
        data_dir = yolo_trainer.yolo_dataset(ds, Path(a.data), "detect", cfg("x"))  # warm the cache once
        timings: dict[str, float] = {}
        real_finish = yolo_trainer.finish

        def timed_finish(model, *args):
            timings["train_end"] = time.perf_counter()
            t = time.perf_counter()
            out = real_finish(model, *args)
            timings["finish"] = time.perf_counter() - t
            return out

        def direct(name: str, epochs: int) -> float:
            t0 = time.perf_counter()
            model = load_model(a.model)
            model.train(data=str(data_dir / "data.yaml"), epochs=epochs, batch=a.batch, imgsz=a.imgsz, lr0=0.01,
                        optimizer="SGD", momentum=0.9, weight_decay=5e-4, cos_lr=False, warmup_epochs=3.0,
                        device="cpu", workers=2, seed=0, deterministic=True, project=str(work), name=name,
                        exist_ok=True, amp=False, patience=100, plots=True, val=True, verbose=False,
                        **yolo_trainer.augment_args(None))
            return time.perf_counter() - t0

        direct("warmup", 1)  # untimed: ultralytics' label cache, page cache, lazy imports
        yolo_trainer.finish = timed_finish
        for label, freeze in (("detft train --arch yolo (full)", "none"), ("detft train --arch yolo (frozen backbone)", "backbone")):
            t0 = time.perf_counter()
            detft.train(cfg(label.split("(")[1][:-1].replace(" ", "-"), freeze))
            rows[label] = ((timings["train_end"] - t0) / a.epochs, timings["finish"])
        yolo_trainer.finish = real_finish

        rows["ultralytics YOLO.train (direct, full)"] = (direct("direct", a.epochs) / a.epochs, 0.0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmodel {a.model}, imgsz {a.imgsz}, batch {a.batch}, {a.epochs} epochs, data {a.data}")
    print(f"machine: {platform.machine()}, cpu ({os.cpu_count()} cores)")
    print(f"{'run':<44}{'s/epoch':>9}{'detft eval after (s)':>22}")
    print("-" * 75)
    for label, (per_epoch, fin) in rows.items():
        print(f"{label:<44}{per_epoch:>9.2f}{fin:>22.2f}")
    base = rows["ultralytics YOLO.train (direct, full)"][0]
    full = rows["detft train --arch yolo (full)"][0]
    print(f"overhead of detft (full vs direct): {100 * (full / base - 1):+.1f}%")


if __name__ == "__main__":
    main()
