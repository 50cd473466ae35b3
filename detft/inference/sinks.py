"""Where results go: an MP4, a JSONL file (one line per frame), annotated images.

Every sink writes to a hidden partial file and renames it into place on close, so an interrupted run
(Ctrl-C, SIGTERM) still closes a playable MP4 and a JSONL whose every line is whole, and a crash
never leaves a truncated file under the name the user asked for."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..util.output import atomic_write_bytes, inside, safe_relpath
from .detections import Detections
from .sources import Frame


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class VideoSink:
    """An MP4 at the source's frame rate, opened on the first frame: its size fixes the video's, and a live
    source knows its rate only once connected, so ``fps`` may be a function asked then."""

    def __init__(self, path: Path, fps: float | Callable[[], float]):
        self.path, self.fps = Path(path), fps
        self.tmp = partial_path(self.path)
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None

    def write(self, frame: Frame, drawn: np.ndarray, dets: Detections) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (drawn.shape[1], drawn.shape[0])
            fps = self.fps() if callable(self.fps) else self.fps
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.path} (OpenCV has no MP4 encoder here?)")
        if (drawn.shape[1], drawn.shape[0]) != self.size:  # an image folder of mixed sizes
            drawn = cv2.resize(drawn, self.size)
        self.writer.write(drawn)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            os.replace(self.tmp, self.path)


class JsonlSink:
    """One whole JSON line per frame, flushed as written."""

    def __init__(self, path: Path, names: dict[int, str], files: list[Path] | None = None):
        self.path, self.names, self.files = Path(path), names, files
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_path(self.path)
        self.fh = open(self.tmp, "w", encoding="utf-8")

    def write(self, frame: Frame, drawn: np.ndarray, dets: Detections, stream: str | None = None) -> None:
        """``stream``: the camera's name, when one file holds the lines of many."""
        line: dict[str, Any] = {"stream": stream} if stream else {}
        line.update(frame=frame.index, timestamp=round(frame.timestamp, 6))
        if self.files is not None:
            line["file"] = str(self.files[frame.index])
        line["detections"] = dets.to_jsonl(self.names)
        self.fh.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)


class ImageSink:
    """Annotated images under ``out``, at the input's path relative to ``root`` (never outside ``out``)."""

    def __init__(self, out: Path, root: Path, files: list[Path]):
        self.out, self.root, self.files = Path(out), Path(root), files

    def write(self, frame: Frame, drawn: np.ndarray, dets: Detections) -> None:
        src = self.files[frame.index]
        rel = src.name if self.root.is_file() else src.relative_to(self.root).as_posix()
        target = inside(self.out, safe_relpath(rel))
        if target.suffix.lower() not in (".jpg", ".jpeg", ".png"):  # x.bmp -> x.bmp.png: never onto x.png's output
            target = target.with_name(target.name + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(target.suffix, drawn)
        if not ok:
            raise OSError(f"cannot encode {target}")
        atomic_write_bytes(target, data.tobytes())

    def close(self) -> None:
        pass
