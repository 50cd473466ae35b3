"""Many cameras: detft's one process against one ``detft video`` process per camera and ultralytics' multi-source
predict, on loopback streams; then one of four cameras killed mid-run.

    python bench/video_streams.py [--video /usr/share/doc/opencv-doc/examples/data/vtest.avi] [--seconds 20]

Every camera is ffmpeg serving vtest.avi (768x576, people walking) as HTTP MJPEG on 127.0.0.1 at its real 10 fps,
looped; the video is encoded to MJPEG once and served with ``-c copy``, so the servers cost the cores almost nothing.
The model is the packaged YOLOv8s person detector at 640 px, conf 0.25, on the CPU, for every row. For 1, 4 and 8
cameras, each arm runs ``--warmup`` seconds, then is measured for ``--seconds``:

- detft, one process: :func:`detft.inference.streams.run_streams`, each step one batch of the ready frames;
- detft, a process per camera: ``detft video``'s loop (:func:`detft.inference.video.run`) in N processes, each with
  torch's default threads, as N ``detft video`` commands would run;
- ultralytics: ``model.predict(source=cameras.streams, stream=True)``, one batch of one frame per camera each step.

Processed frames per second (all cameras together) and each camera's capture->result latency p95 (detft's rows;
ultralytics' predictor does not say when a frame was captured). Then four cameras in one detft process, one killed
half-way: the other three's FPS and p95 latency before and after."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video import PEOPLE, VTEST  # noqa: E402  (bench/video.py: the model and the video of every video bench)

from detft.inference.cameras import Camera  # noqa: E402
from detft.inference.streams import run_streams  # noqa: E402
from detft.inference.video import After  # noqa: E402
from detft.inference.yolo_predictor import YOLOPredictor  # noqa: E402
from detft.models.yolo import load_model  # noqa: E402

IMGSZ, CONF = 640, 0.25


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cameras:
    """N loopback MJPEG servers of one pre-encoded video; each serves one client, as a camera's stream does."""

    def __init__(self, mjpeg: Path, n: int):
        self.mjpeg, self.procs, self.urls = mjpeg, [], []
        for _ in range(n):
            url = f"http://127.0.0.1:{free_port()}/cam.mjpg"
            self.procs.append(subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop",
                                                "-1", "-i", str(mjpeg), "-c", "copy", "-f", "mpjpeg", "-listen", "1",
                                                url], stdin=subprocess.DEVNULL))
            self.urls.append(url)
        time.sleep(1.0)

    def kill(self, i: int) -> None:
        self.procs[i].kill()

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


class Recorder:
    """Every processed frame of detft's loop: (camera, when done, capture->result ms). The bench wraps After's call
    rather than the sinks so no output is written and nothing but the loop is measured."""

    def __init__(self):
        self.rows: list[tuple[str, float, float]] = []
        self.original = After.__call__
        recorder = self

        def call(after: After, frame, dets, log) -> bool:
            stop = recorder.original(after, frame, dets, log)
            now = time.monotonic()
            recorder.rows.append((after.stream, now, (now - frame.captured) * 1000))
            return stop

        After.__call__ = call

    def window(self, start: float, end: float) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for name, t, ms in self.rows:
            if start <= t < end:
                out[name].append(ms)
        return out


def summarise(latencies: dict[str, list[float]], seconds: float, names: list[str]) -> dict:
    frames = {n: len(latencies.get(n, [])) for n in names}
    p95 = [float(np.percentile(latencies[n], 95)) for n in names if latencies.get(n)]
    return {"fps": sum(frames.values()) / seconds, "per_camera_fps": [frames[n] / seconds for n in names],
            "p95_ms": max(p95) if p95 else float("nan")}


def detft_one_process(predictor, urls: list[str], warmup: float, seconds: float) -> dict:
    recorder, stop = Recorder(), threading.Event()
    names = [f"cam{i}" for i in range(len(urls))]
    thread = threading.Thread(target=run_streams, args=(predictor, [Camera(n, u) for n, u in zip(names, urls)]),
                              kwargs={"stop": stop, "log": lambda m: None, "stats_every": 1e9})
    thread.start()
    time.sleep(warmup)
    start = time.monotonic()
    time.sleep(seconds)
    stop.set()
    thread.join()
    After.__call__ = recorder.original
    return summarise(recorder.window(start, start + seconds), seconds, names)


CHILD = """
import json, sys, threading, time
sys.path.insert(0, {bench!r})
from video import PEOPLE
from detft.inference.sources import LiveSource
from detft.inference.video import After, run
from detft.inference.yolo_predictor import YOLOPredictor
from detft.models.yolo import load_model
rows, original = [], After.__call__
def call(after, frame, dets, log):
    stop = original(after, frame, dets, log)
    now = time.monotonic()
    rows.append((now, (now - frame.captured) * 1000))
    return stop
After.__call__ = call
predictor = YOLOPredictor(load_model("fall-detection"), PEOPLE, score_threshold={conf}, imgsz={imgsz})
stop = threading.Event()
print("ready", flush=True)
start = float(sys.stdin.readline())  # the parent's time.monotonic() (one clock on one machine)
threading.Timer(start + {seconds} - time.monotonic(), stop.set).start()
run(predictor, LiveSource({url!r}, log=lambda m: None), [], stop=stop, log=lambda m: None, stats_every=1e9)
print(json.dumps([r for r in rows if start <= r[0] < start + {seconds}]), flush=True)
"""


def detft_processes(urls: list[str], warmup: float, seconds: float) -> dict:
    bench = str(Path(__file__).resolve().parent)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD.format(bench=bench, conf=CONF, imgsz=IMGSZ, seconds=seconds,
                                                                  url=url)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for url in urls]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    start = time.monotonic() + warmup  # every process connects and warms up before the window opens
    for p in procs:
        p.stdin.write(f"{start}\n")
        p.stdin.flush()
    latencies = {}
    for i, p in enumerate(procs):
        rows = json.loads(p.stdout.readline())
        latencies[f"cam{i}"] = [ms for _, ms in rows]
        p.wait()
    return summarise(latencies, seconds, list(latencies))


def ultralytics_streams(urls: list[str], warmup: float, seconds: float) -> dict:
    model = load_model("fall-detection")
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "cameras.streams"
        listing.write_text("\n".join(urls) + "\n")
        threads = torch.get_num_threads()
        # a listing even for one camera: given a lone URL, ultralytics probes it first, and a one-client stream is gone
        stream = model.predict(source=str(listing), stream=True, conf=CONF, imgsz=IMGSZ, device="cpu", verbose=False)
        first = next(stream)
        torch.set_num_threads(threads)  # its select_device set cpu_count - 1 threads: compare at the same count
        del first
        begin = time.monotonic()
        counts: dict[str, int] = defaultdict(int)
        start = None
        for result in stream:
            now = time.monotonic()
            if start is None and now - begin >= warmup:
                start = now
            if start is not None:
                if now - start >= seconds:
                    break
                counts[result.path] += 1
        stream.close()
    # its results name a camera by the URL with its special characters replaced: count them in order of appearance
    return {"fps": sum(counts.values()) / seconds, "per_camera_fps": [c / seconds for c in counts.values()],
            "p95_ms": float("nan")}


def killed_one(predictor, mjpeg: Path, warmup: float, seconds: float) -> dict:
    cams = Cameras(mjpeg, 4)
    recorder, stop = Recorder(), threading.Event()
    names = [f"cam{i}" for i in range(4)]
    thread = threading.Thread(target=run_streams, args=(predictor, [Camera(n, u) for n, u in zip(names, cams.urls)]),
                              kwargs={"stop": stop, "log": lambda m: None, "stats_every": 1e9})
    thread.start()
    time.sleep(warmup)
    start = time.monotonic()
    time.sleep(seconds)
    cams.kill(3)
    killed = time.monotonic()
    time.sleep(seconds)
    stop.set()
    thread.join()
    After.__call__ = recorder.original
    cams.close()
    others = names[:3]
    before = summarise(recorder.window(start, killed), killed - start, others)
    after = summarise(recorder.window(killed, killed + seconds), seconds, others)
    done = sorted(t for n, t, _ in recorder.rows if n in others and t >= start)
    return {"before": before, "after": after, "longest_gap_s": float(max(np.diff(done))) if len(done) > 1 else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=VTEST)
    ap.add_argument("--cameras", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    predictor = YOLOPredictor(load_model("fall-detection"), PEOPLE, score_threshold=CONF, imgsz=IMGSZ)
    with tempfile.TemporaryDirectory() as tmp:
        mjpeg = Path(tmp) / "vtest.mjpeg.avi"
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", args.video, "-c:v", "mjpeg", "-q:v", "3",
                        "-an", str(mjpeg)], check=True)
        rows = []
        for n in args.cameras:
            for label, measure in (("detft, one process", lambda u: detft_one_process(predictor, u, args.warmup,
                                                                                       args.seconds)),
                                   (f"detft, {n} process{'es' if n > 1 else ''}",
                                    lambda u: detft_processes(u, args.warmup, args.seconds)),
                                   ("ultralytics multi-source predict",
                                    lambda u: ultralytics_streams(u, args.warmup, args.seconds))):
                cams = Cameras(mjpeg, n)
                try:
                    rows.append((n, label, measure(cams.urls)))
                finally:
                    cams.close()
        kill = killed_one(predictor, mjpeg, args.warmup, args.seconds)
    print(f"\n{Path(args.video).name} as {'/'.join(map(str, args.cameras))} loopback MJPEG cameras at 10 fps, YOLOv8s "
          f"{IMGSZ} px, conf {CONF}, CPU ({platform.machine()}, {os.cpu_count()} cores, {threads} torch threads per "
          f"process), {args.seconds:g} s measured after {args.warmup:g} s")
    print("| cameras | pipeline | processed FPS (all) | per camera FPS | worst camera p95 latency |")
    print("|---|---|---|---|---|")
    for n, label, r in rows:
        per = ", ".join(f"{v:.2f}" for v in r["per_camera_fps"])
        p95 = "n/a" if np.isnan(r["p95_ms"]) else f"{r['p95_ms']:.0f} ms"
        print(f"| {n} | {label} | {r['fps']:.2f} | {per} | {p95} |")
    b, a = kill["before"], kill["after"]
    print(f"\n4 cameras in one detft process, cam3 killed after {args.seconds:g} s: the other three "
          f"{b['fps']:.2f} FPS (p95 {b['p95_ms']:.0f} ms) before, {a['fps']:.2f} FPS (p95 {a['p95_ms']:.0f} ms) after; "
          f"longest wait between their frames {kill['longest_gap_s']:.2f} s")


if __name__ == "__main__":
    main()
