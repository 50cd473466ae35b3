"""Video inference speed: detft's loop vs ultralytics' own predict, and live-stream latency.

    python bench/video.py [--video /usr/share/doc/opencv-doc/examples/data/vtest.avi] [--frames 200]

In one run, on the same video (Debian opencv-doc's vtest.avi, 768x576, people walking) and frames:

- ultralytics ``model.predict(source=video, stream=True)`` with the packaged YOLOv8s person detector;
- detft's loop (tools/infer_video.py's code) with the same model, conf, imgsz, without and with
  drawing + MP4 + JSONL output;
- detft's loop with fasterrcnn_mobilenet_v3_large_320_fpn (random init: speed does not depend on
  the weights beyond the score threshold);
- live: ffmpeg serves the video as HTTP MJPEG on 127.0.0.1 at its real 10 fps; detft's live reader +
  YOLO for ``--live-seconds``; capture -> result latency percentiles, processed FPS, dropped frames.

Needs ``pip install 'detft[yolo-weights]'`` (the YOLO checkpoint) and Debian's ffmpeg and opencv-doc."""

from __future__ import annotations

import argparse
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch

from detft.inference.predictor import RCNNPredictor
from detft.inference.sinks import JsonlSink, VideoSink
from detft.inference.sources import FileSource, LiveSource
from detft.inference.video import run
from detft.inference.yolo_predictor import YOLOPredictor
from detft.models.labels import LabelMap
from detft.models.registry import resolve
from detft.models.yolo import load_model

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
PEOPLE = LabelMap((0, 1), ("Normal", "Fall"), background=False)


def ultralytics_predict(video: str, frames: int, conf: float, imgsz: int) -> float:
    model = load_model("fall-detection")
    stream = model.predict(source=video, stream=True, conf=conf, imgsz=imgsz, device="cpu", verbose=False)
    threads = torch.get_num_threads()
    next(stream)  # warm-up frame, as for detft
    # its select_device just set torch to cpu_count - 1 threads; compare at the same thread count as detft
    torch.set_num_threads(threads)
    t, n = time.perf_counter(), 0
    for _ in stream:
        n += 1
        if n == frames:
            break
    return n / (time.perf_counter() - t)


def detft_loop(predictor, video: str, frames: int, outputs: bool) -> float:
    predictor.predict([FileSource(video).cap.read()[1][..., ::-1].copy()])  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        sinks = [VideoSink(Path(tmp) / "o.mp4", 10.0), JsonlSink(Path(tmp) / "o.jsonl", predictor.labels.names_by_category())] \
            if outputs else []
        stats = run(predictor, FileSource(video), sinks, max_frames=frames, log=lambda m: None)
    return stats.fps


def live_latency(predictor, video: str, seconds: float) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/live.mjpg"
    server = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", video,
                               "-q:v", "3", "-f", "mpjpeg", "-listen", "1", url], stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        source = LiveSource(url, timeout_s=5, log=lambda m: None)
        stop = threading.Event()
        threading.Timer(seconds, stop.set).start()
        stats = run(predictor, source, [], stop=stop, log=lambda m: None)
        return {"fps": stats.fps, **stats.percentiles(), "dropped": source.stats.dropped, "frames": stats.frames}
    finally:
        server.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=VTEST)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--live-seconds", type=float, default=30)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    yolo = YOLOPredictor(load_model("fall-detection"), PEOPLE, score_threshold=args.conf, imgsz=args.imgsz)
    rcnn_model = resolve("fasterrcnn", "fasterrcnn_mobilenet_v3_large_320_fpn").build(num_classes=3, weights="none")
    rcnn = RCNNPredictor(rcnn_model, LabelMap((0, 1), ("Normal", "Fall")), score_threshold=args.conf)
    rows = [
        ("YOLOv8s, ultralytics model.predict(stream=True)", ultralytics_predict(args.video, args.frames, args.conf, args.imgsz)),
        ("YOLOv8s, detft loop (no outputs)", detft_loop(yolo, args.video, args.frames, False)),
        ("YOLOv8s, detft loop + drawing, MP4, JSONL", detft_loop(yolo, args.video, args.frames, True)),
        ("Faster R-CNN MobileNetV3-320, detft loop (no outputs)", detft_loop(rcnn, args.video, args.frames, False)),
        ("Faster R-CNN MobileNetV3-320, detft loop + outputs", detft_loop(rcnn, args.video, args.frames, True)),
    ]
    print(f"\n{Path(args.video).name}, first {args.frames} frames, imgsz {args.imgsz}, conf {args.conf}, CPU "
          f"({platform.machine()}, {threads} torch threads for every row)")
    print(f"| {'pipeline':<55} | {'FPS':>6} |")
    print(f"|{'-' * 57}|{'-' * 8}|")
    for label, fps in rows:
        print(f"| {label:<55} | {fps:6.2f} |")
    if shutil.which("ffmpeg"):
        live = live_latency(yolo, args.video, args.live_seconds)
        print(f"\nlive: ffmpeg HTTP MJPEG on 127.0.0.1 at 10 fps, YOLOv8s, {args.live_seconds:.0f} s: "
              f"{live['frames']} frames processed ({live['fps']:.2f} FPS), {live['dropped']} dropped by the "
              f"latest-frame reader; capture->result latency p50 {live['p50']:.0f} ms, p95 {live['p95']:.0f} ms, "
              f"p99 {live['p99']:.0f} ms")


if __name__ == "__main__":
    main()
