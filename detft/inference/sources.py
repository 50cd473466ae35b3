"""Where frames come from: video files (every frame, in order), image folders, and live streams.

A live source (webcam index, rtsp://, http(s)://, udp://) is read by a thread that keeps only the
newest frame, so a slow model drops frames instead of falling ever further behind; latency stays
one frame plus one inference. The thread reconnects with exponential backoff when the stream is
lost, and a frame is handed out at most once and never when it is a decoder fill (one flat colour,
what some decoders emit while they resynchronise after a reconnect)."""

from __future__ import annotations

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
                 max_retries: int | None = None, opener: Callable[[str, float], Any] = open_capture,
                 log: Callable[[str], None] = print):
        self.source, self.timeout_s, self.backoff, self.max_retries = source, timeout_s, backoff, max_retries
        self.opener, self.log = opener, log
        self.stats = SourceStats()
        self.fps = 0.0
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
                cap.release()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                # a frame is handed out once: wait for one newer than the last, never repeat a stale one
                while not self._ended and (self._latest is None or self._latest.index <= self._taken):
                    self._cond.wait(0.1)
                    if self._stop.is_set():
                        return
                if self._latest is None or self._latest.index <= self._taken:
                    if self.error and self._taken < 0:  # never delivered a frame: a failure, not an end
                        raise DetftError(self.error)
                    return
                frame = self._latest
                self._taken = frame.index
            yield frame

    def stop(self) -> None:
        """Ask the reader to end (safe from a signal handler: it only sets a flag)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)


def open_source(source: str, **live_kw: Any) -> FileSource | FolderSource | LiveSource:
    if is_live(source):
        return LiveSource(source, **live_kw)
    path = Path(source)
    if not path.exists():
        raise DetftError(f"source {source} is neither a file, a folder, a webcam index nor a stream URL")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return FolderSource(path)
    return FileSource(path)
