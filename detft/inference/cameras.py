"""The cameras of one ``detft video`` process: named from ``--source`` (repeatable) or read from ``--sources
cameras.yaml``, each with its own reconnect settings, zones and lines.

A camera's name labels its JSONL lines, events, metrics and MP4 file, so names are unique and safe as file names;
a typo in a key is an error naming the camera, never a setting silently ignored::

    cameras:
      - name: gate
        url: rtsp://10.0.0.5/stream1
        timeout: 5            # optional: open/read timeout (s), max_retries, max_backoff
        record: false         # optional: no MP4 of this one under --out
        units: normalised     # optional: coordinates as fractions of the frame (default: guessed, pixels above 1)
        zones: {door: [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]}
        lines: {entry: [[0, 0.6], [1, 0.6]]}
      - {name: yard, url: http://10.0.0.6/video.mjpg}

A mapping of name to URL (``gate: rtsp://...``) or to such settings is read too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import DetftError
from .sources import is_live
from .zones import Regions, parse_regions

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEYS = {"name", "url", "timeout", "max_retries", "max_backoff", "record", "units", "zones", "lines"}


@dataclass(frozen=True)
class Camera:
    name: str
    url: str
    regions: Regions = Regions((), (), False)
    record: bool = True  # an MP4 of it when the run writes MP4s
    timeout: float | None = None  # None: the command's setting
    max_retries: int | None = None
    max_backoff: float | None = None


def read_cameras(path: Path) -> list[Camera]:
    """The cameras of a YAML file; every error names the file and the camera."""
    from ..formats.base import load_yaml

    path = Path(path)
    if not path.is_file():
        raise DetftError(f"--sources {path}: no such file")
    raw = load_yaml(path)
    if isinstance(raw, dict) and "cameras" in raw:
        extra = set(raw) - {"cameras"}
        if extra:
            raise DetftError(f"{path}: unknown top-level key(s) {', '.join(map(str, sorted(extra)))} (only 'cameras')")
        raw = raw["cameras"]
    if isinstance(raw, dict):  # name -> URL, or name -> settings
        raw = [{"name": name, **(value if isinstance(value, dict) else {"url": value})} for name, value in raw.items()]
    if not isinstance(raw, list) or not raw:
        raise DetftError(f"{path}: expected a list of cameras (each a name and a url) under 'cameras:'")
    cameras = [_camera(entry, path, i) for i, entry in enumerate(raw)]
    _unique([c.name for c in cameras], str(path))
    return cameras


def _camera(entry: Any, path: Path, index: int) -> Camera:
    where = f"{path}, camera {index + 1}"
    if not isinstance(entry, dict):
        raise DetftError(f"{where}: expected a mapping with a name and a url, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DetftError(f"{where}: name {name!r} must be 1-64 letters, digits, '.', '_' or '-' (it names the "
                         "camera's MP4 file and labels its JSONL lines and metrics)")
    where = f"{path}, camera '{name}'"
    unknown = set(entry) - KEYS
    if unknown:
        raise DetftError(f"{where}: unknown key(s) {', '.join(map(str, sorted(unknown)))} (known: {', '.join(sorted(KEYS))})")
    url = entry.get("url")
    if isinstance(url, int) and not isinstance(url, bool):
        url = str(url)  # a webcam index
    if not isinstance(url, str) or not url.strip():
        raise DetftError(f"{where}: 'url' is missing (a stream URL, a video file, an image folder or a webcam index)")
    if not is_live(url) and not Path(url).exists():
        raise DetftError(f"{where}: url {url!r} is neither a stream URL, a webcam index nor an existing file or folder")
    record = entry.get("record", True)
    if not isinstance(record, bool):
        raise DetftError(f"{where}: 'record' is true or false, not {record!r}")
    return Camera(name, url, parse_regions(entry, where), record, _number(entry, "timeout", where, float, 0.0),
                  _number(entry, "max_retries", where, int, -1), _number(entry, "max_backoff", where, float, -1.0))


def _number(entry: dict, key: str, where: str, kind: type, above: float) -> Any:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)) \
            or value <= above:
        bound = "a positive number" if above == 0 else f"a {'whole ' if kind is int else ''}number of at least 0"
        raise DetftError(f"{where}: '{key}' must be {bound}, not {value!r}")
    return kind(value)


def cameras_from_sources(sources: list[str]) -> list[Camera]:
    """Cameras from ``--source`` values: ``name=URL`` names one, otherwise the name comes from the file's stem, the
    URL's host and path, or the webcam index (``cam0``); repeated names get -2, -3."""
    cameras, seen = [], set()
    for source in sources:
        name, url = _split_name(source)
        base = name or _derived_name(url)
        name, k = base, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen.add(name)
        cameras.append(Camera(name, url))
    return cameras


def _split_name(source: str) -> tuple[str | None, str]:
    head, sep, rest = source.partition("=")
    if sep and NAME.fullmatch(head) and rest and not Path(source).exists() and "://" not in head:
        return head, rest
    return None, source


def _derived_name(url: str) -> str:
    if url.isascii() and url.isdigit():
        return f"cam{url}"
    if is_live(url):
        parts = urlsplit(url)
        text = "-".join(p for p in [parts.hostname or "", *parts.path.split("/")] if p)
    else:
        text = Path(url).stem or Path(url).name
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:64]
    return clean or "stream"


def _unique(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DetftError(f"{where}: camera name '{name}' is used twice (names label outputs, so each is unique)")
        seen.add(name)


def select_cameras(cameras: list[Camera], names: list[str], where: str) -> list[Camera]:
    """The cameras named (``--camera``), in the file's order; an unknown name is an error listing the known ones."""
    known = {c.name for c in cameras}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DetftError(f"{where} has no camera {', '.join(map(repr, unknown))} (it has: {', '.join(sorted(known))})")
    return [c for c in cameras if c.name in names]
