"""Where frames come from: video files (every frame, in order), image folders, and live streams.

A live source (webcam index, rtsp://, http(s)://, udp://) is read by a thread that keeps only the
newest frame, so a slow model drops frames instead of falling ever further behind; latency stays
one frame plus one inference. The thread reconnects with exponential backoff when the stream is
lost, and a frame is handed out at most once and never when it is a decoder fill (one flat colour,
what some decoders emit while they resynchronise after a reconnect)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..annotations.images import IMAGE_SUFFIXES, find_images, native_path, read_bgr
from ..errors import DetftError

LIVE_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "rtmp://")


@dataclass
class Frame:
    image: np.ndarray  # BGR, as OpenCV decodes it
    index: int  # position in the source (a live source counts frames it dropped too)
    timestamp: float  # seconds: position in a file, or wall-clock capture time for a live source
    captured: float  # time.monotonic() when the frame was read, for capture -> result latency


@dataclass
class SourceStats:
    dropped: int = 0  # read but replaced by a newer frame before the model took it
    flat_skipped: int = 0  # decoder fills never handed to the model
    reconnects: int = 0
    gaps: list[float] = field(default_factory=list)  # seconds without frames, one per reconnect
    lost: int = 0  # frames of a video file that could not be decoded (a damaged file)


def is_live(source: str) -> bool:
    return (source.isascii() and source.isdigit()) or source.lower().startswith(LIVE_SCHEMES)


def is_flat(image: np.ndarray) -> bool:
    """One colour everywhere: a black or grey decoder fill, not a picture (checked on a 1-in-8 grid)."""
    sample = image[::8, ::8]
    return bool(sample.min() == sample.max())


class FileSource:
    """Every frame of a video file in order, with the container's frame rate."""

    live = False

    def __init__(self, path: str | Path):
        self.path = native_path(path)
        self.cap = cv2.VideoCapture(self.path)
        if not self.cap.isOpened():
            raise DetftError(f"cannot open video {self.path}")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.stats = SourceStats()

    def __iter__(self) -> Iterator[Frame]:
        """Frames in order; a frame that cannot be decoded is skipped and counted (``stats.lost``), and a
        file that ends before the frame count its container declares counts the missing ones too."""
        index, failures = 0, 0
        while True:
            ok, image = self.cap.read()
            if not ok:
                failures += 1
                # a damaged middle: try the next frames, up to a second's worth, before calling it the end
                if index + failures > self.frame_count or failures > max(int(self.fps), 1):
                    break
                continue
            index += failures
            self.stats.lost += failures
            failures = 0
            yield Frame(image, index, index / self.fps, time.monotonic())
            index += 1
        self.stats.lost += max(self.frame_count - index, 0)

    def close(self) -> None:
        self.cap.release()


class FolderSource:
    """Images of a folder (or one image) in name order; unreadable files are an error naming them."""

    live = False
    fps = 0.0

    def __init__(self, path: str | Path):
        root = Path(path)
        self.files = [root] if root.is_file() else find_images(root)
        if not self.files:
            raise DetftError(f"no images in {root}")
        self.frame_count = len(self.files)
        self.stats = SourceStats()

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            yield Frame(read_bgr(path), index, 0.0, time.monotonic())

    def close(self) -> None:
        pass


def open_capture(source: str, timeout_s: float) -> Any:
    """cv2.VideoCapture with open and read timeouts (FFmpeg backend) so a dead stream cannot hang a read."""
    if source.isascii() and source.isdigit():
        return cv2.VideoCapture(int(source))
    ms = int(timeout_s * 1000)
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])


FIRST_OPEN_RETRIES = 5  # a source that never opened is most likely a wrong address, not a blip


class LiveSource:
    """The newest frame of a camera or stream. Once it has delivered a frame it reconnects forever (or
    ``max_retries`` times in a row); one that never opens gives up after ``max_retries`` (default
    :data:`FIRST_OPEN_RETRIES`) with a named error, instead of retrying a wrong address for ever."""

    live = True
    frame_count = 0

    def __init__(self, source: str, timeout_s: float = 5.0, backoff: tuple[float, float] = (0.5, 10.0),
                 max_retries: int | None = None, opener: Callable[[str, float], Any] | None = None,
                 log: Callable[[str], None] = print, arrived: threading.Event | None = None):
        self.source, self.timeout_s, self.backoff, self.max_retries = source, timeout_s, backoff, max_retries
        self.opener, self.log = opener or open_capture, log
        self.arrived = arrived  # set on every new frame: a loop over many streams sleeps until one has a frame
        self.stats = SourceStats()
        self.fps = 0.0
        self.state = "connecting"  # then live, reconnecting, and at the end ended or failed
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken = -1  # index of the last frame handed out
        self._ended = False
        self._connected_once = False
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_forever, name=f"detft-reader {source}", daemon=True)
        self._thread.start()

    def _connect(self) -> Any | None:
        """An opened capture, retrying with exponential backoff; None once stopped or out of retries."""
        delay, attempts = self.backoff[0], 0
        limit = self.max_retries if self.max_retries is not None or self._connected_once else FIRST_OPEN_RETRIES
        while not self._stop.is_set():
            cap = self.opener(self.source, self.timeout_s)
            if cap.isOpened():
                self.fps = self.fps or cap.get(cv2.CAP_PROP_FPS) or 0.0
                self._connected_once = True
                self.state = "live"
                return cap
            cap.release()
            attempts += 1
            if limit is not None and attempts > limit:
                self.error = (f"{self.source}: {'could not be opened' if not self._connected_once else 'lost'} "
                              f"after {attempts} attempts ({self.timeout_s:g} s timeout each; --max-retries, --timeout)")
                if self._connected_once:  # it delivered frames: the run ends normally; else the error is raised
                    self.log(self.error)
                return None
            self.log(f"{self.source}: cannot open, retrying in {delay:.1f} s")
            self._stop.wait(delay)
            delay = min(delay * 2, self.backoff[1])
        return None

    def _read_forever(self) -> None:
        index, lost_at = 0, None
        try:
            while not self._stop.is_set():
                cap = self._connect()
                if cap is None:
                    break
                if lost_at is not None:
                    gap = time.monotonic() - lost_at
                    self.stats.reconnects += 1
                    self.stats.gaps.append(gap)
                    self.log(f"{self.source}: reconnected after a {gap:.1f} s gap")
                while not self._stop.is_set():
                    ok, image = cap.read()
                    if not ok or image is None:
                        lost_at = time.monotonic()
                        self.state = "reconnecting"
                        self.log(f"{self.source}: stream lost, reconnecting")
                        break
                    if is_flat(image):
                        self.stats.flat_skipped += 1
                        continue
                    frame = Frame(image, index, time.time(), time.monotonic())
                    index += 1
                    with self._cond:
                        if self._latest is not None and self._latest.index > self._taken:
                            self.stats.dropped += 1
                        self._latest = frame
                        self._cond.notify_all()
                    if self.arrived is not None:
                        self.arrived.set()
                cap.release()
        finally:
            with self._cond:
                self._ended = True
                self.state = "failed" if self.error else "ended"
                self._cond.notify_all()
            if self.arrived is not None:
                self.arrived.set()

    def _fresh(self) -> bool:
        return self._latest is not None and self._latest.index > self._taken

    def take(self) -> Frame | None:
        """The newest frame not handed out yet, or None: a frame is handed out once, never a stale one again."""
        with self._cond:
            if not self._fresh():
                return None
            self._taken = self._latest.index
            return self._latest

    @property
    def finished(self) -> bool:
        """The reader has ended and its last frame was taken. Raises when it never delivered a frame: that is a
        failure (a wrong address), not an end."""
        with self._cond:
            if not self._ended or self._fresh():
                return False
        if self.error and self._taken < 0:
            raise DetftError(self.error)
        return True

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._ended and not self._fresh():
                    self._cond.wait(0.1)
                    if self._stop.is_set():
                        return
            frame = self.take()
            if frame is None:
                if self.finished:
                    return
                continue
            yield frame

    def stop(self) -> None:
        """Ask the reader to end (safe from a signal handler: it only sets a flag)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)


class QueuedSource:
    """A video file or image folder read ahead by a thread, for the loop over many streams: the loop never waits on
    its decoding. Every frame in order (a file is no camera: nothing is dropped), at most ``depth`` decoded ahead."""

    live = False
    _END = object()

    def __init__(self, inner: FileSource | FolderSource, arrived: threading.Event, depth: int = 2):
        self.inner, self.arrived = inner, arrived
        self.fps, self.frame_count, self.stats = inner.fps, inner.frame_count, inner.stats
        self.state = "live"
        self.error: str | None = None
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._read, name="detft-reader", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                self.arrived.set()
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for frame in self.inner:
                if not self._put(frame):
                    return
        except (DetftError, OSError, cv2.error) as e:  # a folder's unreadable image: this stream fails, not the run
            self.error = str(e)
        finally:
            self._put(self._END)

    def take(self) -> Frame | None:
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is self._END:
            self._done = True
            self.state = "failed" if self.error else "ended"
            return None
        return item

    @property
    def finished(self) -> bool:
        if self._done and self.error:
            raise DetftError(self.error)
        return self._done

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.inner.close()


def open_source(source: str, **live_kw: Any) -> FileSource | FolderSource | LiveSource:
    if is_live(source):
        return LiveSource(source, **live_kw)
    path = Path(source)
    if not path.exists():
        raise DetftError(f"source {source} is neither a file, a folder, a webcam index nor a stream URL")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return FolderSource(path)
    return FileSource(path)
