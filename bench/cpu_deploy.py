"""A run on the CPU, every way it can be deployed, side by side in one process (#48):

    python bench/cpu_deploy.py --run RUN [--data DATA] [--frames 100] [--repeats 3] [--threads N]

detft's PyTorch predictor, its ONNX export in FP32 and INT8 (ONNX Runtime), its OpenVINO IR in FP32 and INT8
(NNCF), and, for YOLO (detect or segment), ultralytics' own exports of the same best.pt (``format="onnx"``,
``format="openvino"`` and ``format="openvino", int8=True``) run through ultralytics' predictor; an R-CNN run gets
the FP32 rows only (detft does not quantize torchvision's graph). For each: milliseconds per frame on the first
``--frames`` frames of vtest.avi (768x576, decoded once beforehand; 5 warm-up frames; the median of ``--repeats``
rounds, the variants alternated within each round) and box AP (and mask AP for a segment run) on the run's val
split with detft's evaluator (conf 0.001). detft's files come from ``Model.export``, each with its own parity check;
ultralytics' INT8 calibrates on the run's data converted to YOLO (``detft convert``), as its docs ask, on the
training split as detft does (its default is the val split, the images AP is then measured on).

The GFLOPs per frame: for YOLO ultralytics' count at 640x640 scaled to the letterboxed frame (320x256 for vtest at
320); for an R-CNN torch's FLOP counter over one frame through the PyTorch model (its resize inside, its RoI heads on
that frame's proposals). The fraction of the CPU's peak assumes 32 FP32 FLOPs per cycle per core (two 256-bit FMA
pipes, Zen 4 and Skylake-SP alike) at the clock ``lscpu`` reports, or 3.0 GHz: an estimate, printed with its
assumption.

Needs ``pip install 'detft[export,openvino,yolo]'`` and Debian's opencv-doc (vtest.avi)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export import VTEST, frames  # bench/export.py: the same frames, decoded the same way

FLOPS_PER_CYCLE = 32  # FP32, per core: two 256-bit FMA pipes (8 lanes x 2 FLOPs x 2)


def ms_per_frame(predictor: Any, images: list[np.ndarray]) -> float:
    for im in images[:5]:
        predictor.predict([im])
    t = time.perf_counter()
    for im in images:
        predictor.predict([im])
    return 1000 * (time.perf_counter() - t) / len(images)


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")),
                    platform.machine())
    except (OSError, subprocess.CalledProcessError):
        return platform.machine()


def clock_ghz() -> float:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith(("CPU max MHz", "CPU MHz"))]
        return max(mhz) / 1000 if mhz else 3.0
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 3.0


def ultralytics_variants(run: Path, data_yaml: Path, imgsz: int, work: Path) -> dict[str, Path]:
    """ultralytics' own exports of the run's best.pt: ONNX, OpenVINO FP32 and OpenVINO INT8 (its NNCF recipe)."""
    from ultralytics import YOLO

    from detft.models.yolo import prepare_offline

    prepare_offline()
    out = {}
    for name, kw in (("onnx", dict(format="onnx")), ("openvino", dict(format="openvino")),
                     ("openvino int8", dict(format="openvino", int8=True, data=str(data_yaml), fraction=1.0,
                                            split="train"))):
        staged = work / name.replace(" ", "-") / "best.pt"
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes((run / "weights" / "best.pt").read_bytes())
        out[name] = Path(YOLO(str(staged)).export(imgsz=imgsz, batch=1, device="cpu", verbose=False, **kw))
    return out


def gflops_per_frame(source: Any, run: Path, image: np.ndarray, imgsz: int) -> float:
    """What one frame costs the network (see the module's docstring)."""
    if source.run.info.family != "yolo":
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            source.predictor.predict([image])
        return counter.get_total_flops() / 1e9
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    h, w = image.shape[:2]
    scale = imgsz / max(h, w)
    input_px = (-(-round(h * scale) // 32) * 32) * (-(-round(w * scale) // 32) * 32)
    return get_flops(YOLO(str(run / "weights" / "best.pt")).model, imgsz=640) * input_px / 640 ** 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, type=Path, help="a detft run (YOLO detect or segment, or an R-CNN)")
    ap.add_argument("--data", help="the data to score on (default: the run's)")
    ap.add_argument("--video", default=VTEST)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # ONNX Runtime and OpenVINO sessions take torch's count

    import detft
    from detft.api import Model
    from detft.inference.yolo_predictor import YOLOPredictor
    from detft.operations.convert import convert

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="detft-bench-cpu-"))
    source = detft.load(args.run, device="cpu", conf=0.25)
    info = source.run.info
    yolo = info.family == "yolo"
    imgsz = info.imgsz or 640
    dataset = source.dataset(args.data)
    keys = ("bbox_AP", "segm_AP") if info.task == "segment" else ("bbox_AP",)
    models: dict[str, Any] = {"detft PyTorch": source}
    aps: dict[str, dict[str, float]] = {"detft PyTorch": source.evaluate(dataset, "val").metrics}
    exports = [("detft ONNX FP32", dict(format="onnx")), ("detft ONNX INT8", dict(format="onnx", int8=True)),
               ("detft OpenVINO FP32", dict(format="openvino")),
               ("detft OpenVINO INT8", dict(format="openvino", int8=True))]
    for label, kw in exports if yolo else exports[::2]:
        suffix = ".xml" if kw["format"] == "openvino" else ".onnx"
        done = source.export(work / (label.replace(" ", "-") + suffix), data=args.data, device="cpu",
                             accept_drop=True, **kw)
        models[label] = detft.load(done.path, device="cpu", conf=0.25)
        aps[label] = done.report["export_metrics"]
    if yolo:
        yolo_data = work / "yolo-data"
        convert(Path(args.data) if args.data else Path(info.config.data), yolo_data, to="yolo",
                fmt=None if args.data else info.config.data_format)
        from ultralytics import YOLO

        for name, path in ultralytics_variants(args.run, yolo_data / "data.yaml", imgsz, work).items():
            def wrapped(conf: float) -> Model:
                return Model(source.run, YOLOPredictor(YOLO(str(path), task=info.task), info.labels, "cpu", conf, 100,
                                                       imgsz=imgsz), conf, 100)

            label = f"ultralytics {name}"
            models[label] = wrapped(0.25)
            aps[label] = wrapped(0.001).evaluate(dataset, "val").metrics
    images = frames(args.video, args.frames)
    h, w = images[0].shape[:2]
    gflops = gflops_per_frame(source, args.run, images[0], imgsz)
    timings: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.repeats):
        for label, model in models.items():
            timings[label].append(ms_per_frame(model.predictor, images))
    ghz = clock_ghz()
    peak = FLOPS_PER_CYCLE * ghz * args.threads
    print(f"\n{info.model} fine-tuned ({args.run}), {len(images)} frames of {Path(args.video).name} ({w}x{h} at imgsz "
          f"{imgsz}), {gflops:.2f} GFLOPs per frame; AP on {len(dataset.images_in('val'))} val images (detft's "
          f"evaluator); CPU {cpu_name()}, {args.threads} threads, peak estimate {peak:.0f} GFLOP/s ({FLOPS_PER_CYCLE} "
          f"FLOPs/cycle/core at {ghz:.2f} GHz); torch {torch.__version__}; whole run {time.perf_counter() - started:.0f} s")
    base = statistics.median(timings["detft ONNX FP32"])
    names = " | ".join({"bbox_AP": "box AP", "segm_AP": "mask AP"}[k] for k in keys)
    print(f"| variant | ms/frame (median) | rounds | vs detft ONNX FP32 | {names} | GFLOP/s | of peak |")
    print("|---|---:|---|---:|" + "---:|" * len(keys) + "---:|---:|")
    for label, ts in timings.items():
        med = statistics.median(ts)
        scores = " | ".join(f"{aps[label][k]:.4f}" for k in keys)
        print(f"| {label} | {med:.1f} | {', '.join(f'{t:.1f}' for t in ts)} | {base / med:.2f}x | {scores} | "
              f"{gflops / med * 1000:.0f} | {gflops / med * 1000 / peak:.0%} |")


if __name__ == "__main__":
    main()
