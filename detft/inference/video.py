"""The inference loop behind ``tools/infer_video.py`` and ``detft predict``: source -> Predictor ->
(tracker) -> drawing -> sinks, with live counters and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DetftError
from ..util.output import check_target
from ..util.progress import duration, progress
from .predictor import Predictor
from .sinks import ImageSink, JsonlSink, VideoSink
from .sources import FolderSource, open_source

VIDEO_SUFFIX = ".mp4"  # VideoSink writes mp4v


@dataclass
class RunStats:
    frames: int = 0
    started: float = field(default_factory=time.monotonic)
    latencies_ms: list[float] = field(default_factory=list)  # capture -> result, per frame

    @property
    def fps(self) -> float:
        return self.frames / max(time.monotonic() - self.started, 1e-9)

    def percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        p50, p95, p99 = np.percentile(self.latencies_ms, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}

    def line(self, source: Any) -> str:
        lat = self.percentiles()
        s = source.stats
        total = 0 if source.live else source.frame_count  # a file or a folder: how far, and when it ends
        text = f"{self.frames}/{total} frames" if total else f"{self.frames} frames"
        text += f" | {self.fps:.1f} FPS"
        if total and self.frames and self.frames < total:
            text += f" | ETA {duration((total - self.frames) / self.fps)}"
        if lat:
            text += f" | latency p50 {lat['p50']:.0f} ms p95 {lat['p95']:.0f} ms"
        if source.live:
            text += f" | dropped {s.dropped} | reconnects {s.reconnects}"
            if s.gaps:
                text += f" (gaps {', '.join(f'{g:.1f}s' for g in s.gaps)})"
            if s.flat_skipped:
                text += f" | decoder fills skipped {s.flat_skipped}"
        if s.lost:
            text += f" | WARNING: {s.lost} frame(s) of the file could not be decoded (damaged video)"
        return text


@contextmanager
def stop_on_signals(stop: threading.Event, on_stop: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the loop between frames instead of killing it mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        stop.set()
        on_stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(predictor: Predictor, source: Any, sinks: list[Any], track: bool = False, show: bool = False,
        fps_overlay: bool = True, stats_every: float = 5.0, max_frames: int | None = None,
        stop: threading.Event | None = None, log: Callable[[str], None] | None = None) -> RunStats:
    """Run ``predictor`` over every frame ``source`` hands out; sinks are closed whatever happens. ``log`` takes the
    counter lines; by default stdout, flushed, so a log has each one when it is said."""
    log = log or (lambda m: print(m, flush=True))
    stop = stop or threading.Event()
    names = predictor.labels.names_by_category()
    tracker = None
    if track:
        from .tracking import ByteTrack

        tracker = ByteTrack()
    stats = RunStats()
    last_report = time.monotonic()
    # a file or a folder: a bar on a terminal; a log has the stats line every stats_every seconds instead
    frames = source if source.live else progress(source, "frames", total=source.frame_count or None, unit="frame",
                                                 every=math.inf)
    try:
        with stop_on_signals(stop, getattr(source, "stop", lambda: None)):
            for frame in frames:
                if stop.is_set():
                    break
                dets = predictor.predict([np.ascontiguousarray(frame.image[..., ::-1])])[0]
                if tracker is not None:
                    dets = tracker.update(dets, frame.image)
                stats.latencies_ms.append((time.monotonic() - frame.captured) * 1000)
                stats.frames += 1
                drawn = dets.draw(frame.image, names, fps=stats.fps if fps_overlay else None) \
                    if show or any(not isinstance(s, JsonlSink) for s in sinks) else frame.image
                for sink in sinks:
                    sink.write(frame, drawn, dets)
                if show and _show(drawn):
                    break
                if time.monotonic() - last_report >= stats_every:
                    log(stats.line(source))
                    last_report = time.monotonic()
                if max_frames is not None and stats.frames >= max_frames:
                    break
    finally:
        source.close()
        for sink in sinks:
            sink.close()
        log(("stopped: " if stop.is_set() else "done: ") + stats.line(source))
    return stats


def _show(image: np.ndarray) -> bool:
    """Display a frame; True when the user pressed q or Esc."""
    import cv2

    try:
        cv2.imshow("detft", image)
        return cv2.waitKey(1) & 0xFF in (ord("q"), 27)
    except cv2.error as e:
        raise SystemExit(f"--show needs a display and an OpenCV with GUI support ({e.msg.strip()})") from None


def infer_video(predictor: Predictor, source: str, *, out: Path | None = None, jsonl: Path | None = None,
                track: bool = False, show: bool = False, fps_overlay: bool = True, stats_every: float = 5.0,
                max_frames: int | None = None, timeout: float = 5.0, max_backoff: float = 10.0,
                max_retries: int | None = None, out_fps: float | None = None, overwrite: bool = False,
                log: Callable[[str], None] | None = None) -> RunStats:
    """``detft video`` / ``tools/infer_video.py``: a model on a video file, an image folder, a webcam index or
    a stream, into an MP4 and/or JSONL (callers check the outputs with :func:`check_output_file` before
    loading a model, so a wrong path fails fast)."""
    check_output_file(out, overwrite, VIDEO_SUFFIX)
    check_output_file(jsonl, overwrite)
    log = log or (lambda m: print(m, file=sys.stderr))
    src = open_source(source, timeout_s=timeout, backoff=(0.5, max_backoff), max_retries=max_retries)
    sinks: list[Any] = []
    if out:  # a file keeps its own rate; a live stream's is known once connected
        sinks.append(VideoSink(out, lambda: out_fps or src.fps or 25.0))
    if jsonl:
        sinks.append(JsonlSink(jsonl, predictor.labels.names_by_category(),
                               src.files if isinstance(src, FolderSource) else None))
    return run(predictor, src, sinks, track=track, show=show, fps_overlay=fps_overlay, stats_every=stats_every,
               max_frames=max_frames, log=log)


def check_output_file(path: Path | None, overwrite: bool, suffix: str | None = None) -> None:
    """An output file the user named: never a folder, an existing file only with ``--overwrite``, and the kind
    of file it will hold (``suffix``: OpenCV picks the container from it, and writes nothing for a .txt)."""
    if path is None:
        return
    check_target(path)
    if path.is_dir():
        raise DetftError(f"{path} is a folder: name the file to write (e.g. {path / ('out' + (suffix or '.mp4'))})")
    if suffix and path.suffix.lower() != suffix:
        raise DetftError(f"{path}: the annotated video is an MP4; name it {path.with_suffix(suffix).name}")
    if path.exists() and not overwrite:
        raise DetftError(f"{path} already exists (use --overwrite to replace it)")


def predict_images(predictor: Predictor, source: Path, out: Path) -> Path:
    """``detft predict``: annotated copies of an image or folder under ``out``, plus predictions.jsonl."""
    check_target(out)
    if out.exists() and not out.is_dir():
        raise DetftError(f"{out} is a file: predict writes a folder (annotated images and predictions.jsonl)")
    images = FolderSource(source)
    root = Path(source)
    sinks = [ImageSink(out, root, images.files),
             JsonlSink(out / "predictions.jsonl", predictor.labels.names_by_category(),
                       [p.relative_to(root) if root.is_dir() else Path(p.name) for p in images.files])]
    run(predictor, images, sinks, fps_overlay=False)
    return out
