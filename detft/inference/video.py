"""The inference loop behind ``tools/infer_video.py`` and ``detft predict``: source -> Predictor ->
(tracker) -> drawing -> sinks, with live counters and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DetftError
from ..util.output import check_target
from ..util.progress import duration, progress
from .detections import Detections
from .predictor import Predictor
from .sinks import ImageSink, JsonlSink, VideoSink
from .sources import FolderSource, Frame, open_source
from .zones import EventSink, RegionCounter, Regions

VIDEO_SUFFIX = ".mp4"  # VideoSink writes mp4v


LATENCY_WINDOW = 10_000  # frames whose latency is kept: a camera runs for months, its counters may not grow
RECENT_S = 10.0  # seconds of frames the current frame rate is measured over


@dataclass
class RunStats:
    frames: int = 0
    started: float = field(default_factory=time.monotonic)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))  # capture -> result
    done_at: deque[float] = field(default_factory=lambda: deque(maxlen=1024))  # when recent frames were done
    regions: dict[str, Any] = field(default_factory=dict)  # a camera's zone and line summary at the end

    @property
    def fps(self) -> float:
        return self.frames / max(time.monotonic() - self.started, 1e-9)

    def count(self, captured: float) -> None:
        """One frame done, captured at ``captured`` (time.monotonic())."""
        now = time.monotonic()
        self.frames += 1
        self.latencies_ms.append((now - captured) * 1000)
        self.done_at.append(now)

    def recent_fps(self) -> float:
        """Frames per second over the last :data:`RECENT_S` seconds (0 when none): what a dashboard shows now."""
        now = time.monotonic()
        recent = [t for t in self.done_at if now - t <= RECENT_S]
        return len(recent) / min(RECENT_S, max(now - self.started, 1e-9)) if recent else 0.0

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


class After:
    """What follows a frame's prediction on one stream: tracking, zone and line events, counters, the drawing and
    the sinks. ``detft video`` runs one; the loop over many streams one per camera."""

    def __init__(self, names: dict[int, str], sinks: list[Any], *, track: bool = False, show: bool = False,
                 fps_overlay: bool = True, stream: str = "", regions: Regions | None = None,
                 lines: JsonlSink | None = None, events: EventSink | None = None):
        """``sinks`` are this stream's own (closed with it); ``lines`` and ``events``, files many streams share,
        are closed by whoever opened them."""
        self.names, self.sinks, self.show, self.fps_overlay = names, sinks, show, fps_overlay
        self.stream, self.regions, self.lines, self.events = stream, regions, lines, events
        self.stats = RunStats()
        self.tracker = None
        if track or regions:
            from .tracking import ByteTrack

            self.tracker = ByteTrack()
        self.counter: RegionCounter | None = None
        self.detections: Counter[str] = Counter()  # per class name
        self.event_counts: Counter[tuple[str, str]] = Counter()  # (kind, class name)
        self.draws = bool(show or regions or any(not isinstance(s, JsonlSink) for s in sinks))

    def __call__(self, frame: Frame, dets: Detections, log: Callable[[str], None]) -> bool:
        """Handle one predicted frame; True when the user closed the window (``--show``: q or Esc)."""
        if self.tracker is not None:
            dets = self.tracker.update(dets, frame.image)
        self.stats.count(frame.captured)
        self.detections.update(self.names.get(int(c), str(int(c))) for c in dets.labels)
        drawn = frame.image
        if self.regions:
            self._sized(frame, log)
            events = self.counter.update(dets, frame.index, frame.timestamp)
            self.event_counts.update((e.kind if e.direction is None else f"{e.kind}_{e.direction}", e.category)
                                     for e in events)
            if self.events is not None and events:
                self.events.write(events)
        if self.draws:
            drawn = dets.draw(frame.image, self.names, fps=self.stats.fps if self.fps_overlay else None)
            if self.counter is not None:
                drawn = self.counter.draw(drawn)
        for sink in self.sinks:
            sink.write(frame, drawn, dets)
        if self.lines is not None:
            self.lines.write(frame, drawn, dets, stream=self.stream)
        return self.show and _show(drawn, self.stream or "detft")

    def _sized(self, frame: Frame, log: Callable[[str], None]) -> None:
        """Regions in this frame's pixels; a stream that changes resolution keeps them where they were in the frame."""
        size = (frame.image.shape[1], frame.image.shape[0])
        if self.counter is None:
            self.counter = RegionCounter(self.stream, self.regions, self.names, size)
        elif size != self.counter.frame_size:
            was = self.counter.frame_size
            log(f"{self.stream}: resolution changed from {was[0]}x{was[1]} to {size[0]}x{size[1]}; "
                "zones and lines keep their place in the frame")
            self.counter.resize(size)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def run(predictor: Predictor, source: Any, sinks: list[Any], track: bool = False, show: bool = False,
        fps_overlay: bool = True, stats_every: float = 5.0, max_frames: int | None = None,
        stop: threading.Event | None = None, log: Callable[[str], None] | None = None) -> RunStats:
    """Run ``predictor`` over every frame ``source`` hands out; sinks are closed whatever happens. ``log`` takes the
    counter lines; by default stdout, flushed, so a log has each one when it is said."""
    log = log or (lambda m: print(m, flush=True))
    stop = stop or threading.Event()
    after = After(predictor.labels.names_by_category(), sinks, track=track, show=show, fps_overlay=fps_overlay)
    stats = after.stats
    last_report = time.monotonic()
    # a file or a folder: a bar on a terminal; a log has the stats line every stats_every seconds instead
    frames = source if source.live else progress(source, "frames", total=source.frame_count or None, unit="frame",
                                                 every=math.inf)
    try:
        with stop_on_signals(stop, getattr(source, "stop", lambda: None)):
            for frame in frames:
                if stop.is_set():
                    break
                if after(frame, predictor.predict([rgb(frame)])[0], log):
                    break
                if time.monotonic() - last_report >= stats_every:
                    log(stats.line(source))
                    last_report = time.monotonic()
                if max_frames is not None and stats.frames >= max_frames:
                    break
    finally:
        source.close()
        after.close()
        log(("stopped: " if stop.is_set() else "done: ") + stats.line(source))
    return stats


def rgb(frame: Frame) -> np.ndarray:
    """The frame as predictors take it: RGB, as displayed, a view of what OpenCV decoded (BGR). Every predictor makes
    its own contiguous input, so a YOLO model, which takes BGR, gets the decoded frame back without a copy (two
    flipped copies of a 768x576 frame cost 3-6 ms, 4% of a YOLOv8s step on 2 cores)."""
    return frame.image[..., ::-1]


def _show(image: np.ndarray, window: str = "detft") -> bool:
    """Display a frame; True when the user pressed q or Esc."""
    import cv2

    try:
        cv2.imshow(window, image)
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
