"""Many cameras in one process: one model, a reader thread per camera, and each inference step one batch of the
frames that are ready.

Each live camera's reader keeps only its newest frame and reconnects on its own (:class:`.sources.LiveSource`);
a video file or folder is read ahead by a thread (:class:`.sources.QueuedSource`). A step takes one frame from
every stream that has one, up to ``batch``, starting from a different stream each step so none is always last,
and never waits for a stream that has none: a slow, frozen or reconnecting camera costs the others nothing. A
stream that fails for good is reported and the rest go on; the run fails only when every stream did."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DetftError
from ..util.output import check_target
from .cameras import Camera
from .metrics import MetricsServer, StreamMetrics
from .predictor import Predictor
from .sinks import JsonlSink, VideoSink
from .sources import LiveSource, QueuedSource, is_live, open_source
from .video import VIDEO_SUFFIX, After, RunStats, check_output_file, rgb, stop_on_signals
from .zones import EventSink

MAX_BATCH = 8  # frames per step by default: beyond it a CPU gains nothing and every frame waits for the batch


@dataclass
class Stream:
    camera: Camera
    source: LiveSource | QueuedSource
    after: After
    error: str | None = None

    @property
    def name(self) -> str:
        return self.camera.name

    @property
    def state(self) -> str:
        return "failed" if self.error else self.source.state

    def ended(self, log: Callable[[str], None]) -> bool:
        """True once the stream has nothing more to give: its end, or its failure (said once, here)."""
        try:
            return self.source.finished
        except DetftError as e:
            self.error = str(e)
            log(f"{self.name}: failed: {e}; the other streams go on")
            return True

    def metrics(self) -> StreamMetrics:
        stats, source = self.after.stats, self.source.stats
        lat = stats.percentiles()
        return StreamMetrics(self.name, self.state, stats.frames, stats.recent_fps(), lat.get("p50"), lat.get("p95"),
                             source.dropped, source.reconnects, dict(self.after.detections),
                             dict(self.after.event_counts), self.error)


def check_outputs(cameras: list[Camera], out: Path | None, jsonl: Path | None, events: Path | None,
                  overwrite: bool) -> None:
    """Every output named before a camera opens or a model loads: ``out`` is a folder of one MP4 per camera."""
    if out is not None:
        check_target(out)
        if out.exists() and not out.is_dir():
            raise DetftError(f"{out} is a file: with several cameras --out names a folder (one {VIDEO_SUFFIX} per camera)")
        for camera in cameras:
            if camera.record:
                check_output_file(out / f"{camera.name}{VIDEO_SUFFIX}", overwrite, VIDEO_SUFFIX)
    check_output_file(jsonl, overwrite)
    check_output_file(events, overwrite)
    if events is not None and not any(c.regions for c in cameras):
        raise DetftError(f"--events {events}: no camera has zones or lines (give them in the --sources file)")


def run_streams(predictor: Predictor, cameras: list[Camera], *, out: Path | None = None, jsonl: Path | None = None,
                events: Path | None = None, track: bool = False, show: bool = False, fps_overlay: bool = True,
                stats_every: float = 5.0, max_frames: int | None = None, batch: int | None = None,
                timeout: float = 5.0, max_backoff: float = 10.0, max_retries: int | None = None,
                out_fps: float | None = None, overwrite: bool = False, metrics_port: int | None = None,
                stop: threading.Event | None = None, log: Callable[[str], None] | None = None) -> dict[str, RunStats]:
    """``detft video`` over several cameras (``--source`` repeated, or ``--sources cameras.yaml``): each camera's
    MP4 under the folder ``out``, one ``jsonl`` and one ``events`` file for all (their lines carry the camera's
    name), ``max_frames`` per camera, Prometheus metrics and /health on 127.0.0.1:``metrics_port``. Returns each
    camera's counters; its zone and line summary is in ``regions``."""
    if not cameras:
        raise DetftError("no cameras to run")
    check_outputs(cameras, out, jsonl, events, overwrite)
    log = log or (lambda m: print(m, flush=True))
    stop = stop or threading.Event()
    batch = batch or min(len(cameras), MAX_BATCH)
    names = predictor.labels.names_by_category()
    if any(c.regions for c in cameras) and not track:
        log("note: zones and lines follow tracks: ByteTrack runs on the cameras that have them")
    arrived = threading.Event()
    lines = JsonlSink(jsonl, names) if jsonl else None
    event_sink = EventSink(events) if events else None
    streams: list[Stream] = []
    server: MetricsServer | None = None
    lock = threading.Lock()  # the metrics thread reads what the loop writes

    def snapshot() -> list[StreamMetrics]:
        with lock:
            return [s.metrics() for s in streams]

    try:
        for camera in cameras:
            source = _open(camera, arrived, timeout, max_backoff, max_retries, log)
            sinks: list[Any] = []
            if out is not None and camera.record:
                sinks.append(VideoSink(out / f"{camera.name}{VIDEO_SUFFIX}",
                                       lambda s=source: out_fps or s.fps or 25.0))
            streams.append(Stream(camera, source, After(names, sinks, track=track, show=show, fps_overlay=fps_overlay,
                                                        stream=camera.name, regions=camera.regions or None,
                                                        lines=lines, events=event_sink)))
        if metrics_port is not None:
            server = MetricsServer(metrics_port, snapshot).start()
            log(f"metrics: http://127.0.0.1:{server.port}/metrics and /health")
        with stop_on_signals(stop, lambda: [s.source.stop() for s in streams]):
            _loop(predictor, streams, batch, arrived, stop, lock, stats_every, max_frames, log)
    finally:
        for s in streams:
            s.source.close()
            s.after.close()
        for shared in (lines, event_sink, server):
            if shared is not None:
                shared.close()
    for s in streams:
        log(f"{'stopped' if stop.is_set() else 'done'}: {s.name}: " + s.after.stats.line(s.source)
            + (f" | FAILED: {s.error}" if s.error else ""))
        if s.after.counter is not None:
            s.after.stats.regions = s.after.counter.summary()
            log(f"{s.name}: {s.after.stats.regions}")
    if all(s.error and not s.after.stats.frames for s in streams):
        raise DetftError("every camera failed: " + "; ".join(f"{s.name}: {s.error}" for s in streams))
    return {s.name: s.after.stats for s in streams}


def _open(camera: Camera, arrived: threading.Event, timeout: float, max_backoff: float, max_retries: int | None,
          log: Callable[[str], None]) -> LiveSource | QueuedSource:
    if is_live(camera.url):
        return LiveSource(camera.url, timeout_s=camera.timeout or timeout,
                          backoff=(0.5, max_backoff if camera.max_backoff is None else camera.max_backoff),
                          max_retries=max_retries if camera.max_retries is None else camera.max_retries,
                          log=lambda m: log(f"{camera.name}: {m}"), arrived=arrived)
    return QueuedSource(open_source(camera.url), arrived)


def _loop(predictor: Predictor, streams: list[Stream], batch: int, arrived: threading.Event, stop: threading.Event,
          lock: threading.Lock, stats_every: float, max_frames: int | None, log: Callable[[str], None]) -> None:
    active, turn = list(streams), 0
    last_report = time.monotonic()
    while active and not stop.is_set():
        arrived.clear()  # before looking: a frame that lands after the look wakes the wait below
        ready = []
        for s in active[turn:] + active[:turn]:
            frame = s.source.take()
            if frame is not None:
                ready.append((s, frame))
                if len(ready) == batch:
                    break
        turn = (turn + 1) % len(active)
        taken = {id(s) for s, _ in ready}
        active = [s for s in active if id(s) in taken or not s.ended(log)]
        if not ready:
            arrived.wait(0.1)
            continue
        results = predictor.predict([rgb(frame) for _, frame in ready])
        with lock:
            for (s, frame), dets in zip(ready, results):
                if s.after(frame, dets, log):
                    stop.set()
                if max_frames is not None and s.after.stats.frames >= max_frames:
                    s.source.stop()
                    active.remove(s)
        if time.monotonic() - last_report >= stats_every:
            for s in streams:
                log(f"{s.name}: {s.state} | " + s.after.stats.line(s.source))
            last_report = time.monotonic()
