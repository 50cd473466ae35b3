"""Zones (polygons) and lines per camera, and the events tracks make with them: a zone's enter and exit (with the
dwell time), a line's crossing (with its direction), counted per class.

A track's place is its box's bottom-centre, where a person or a vehicle stands (supervision's default anchor), so a
zone drawn on the floor counts who stands in it, not whose head passes over it. Regions are read in pixels or as
fractions of the frame, and kept as fractions, so a stream that changes resolution keeps them where they were."""

from __future__ import annotations

import json
import math
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..annotations.render import colour
from ..errors import DetftError
from .detections import Detections
from .sinks import partial_path

Point = tuple[float, float]
UNITS = {"normalised": True, "normalized": True, "pixels": False}
ENTRY_KEYS = {"name", "points"}


@dataclass(frozen=True)
class Zone:
    name: str
    points: tuple[Point, ...]  # a polygon, >= 3 points; a self-intersecting one counts by the even-odd rule


@dataclass(frozen=True)
class Line:
    name: str
    a: Point
    b: Point


@dataclass(frozen=True)
class Regions:
    zones: tuple[Zone, ...]
    lines: tuple[Line, ...]
    normalised: bool  # coordinates are fractions of the frame's width and height, not pixels

    def __bool__(self) -> bool:
        return bool(self.zones or self.lines)


def parse_regions(camera: dict, where: str) -> Regions:
    """The zones and lines of one camera's mapping (``zones``/``lines``: name -> points, or a list of
    ``{name, points}``; ``units``: normalised or pixels, guessed when absent: normalised when every coordinate is
    within [0, 1]). Every error names ``where`` and the region."""
    units = camera.get("units")
    if units is not None and (not isinstance(units, str) or units not in UNITS):
        raise DetftError(f"{where}: units {units!r} must be 'normalised' (fractions of the frame) or 'pixels'")
    zones, lines = _entries(camera.get("zones"), "zone", where), _entries(camera.get("lines"), "line", where)
    seen: dict[str, str] = {}
    for label, name, _ in zones + lines:
        if name in seen:
            raise DetftError(f"{where}: {label}: the name is used twice (also {seen[name]}); a name labels its events, "
                             "so zones and lines of a camera have distinct names")
        seen[name] = label
    for label, _, points in zones:
        if len(points) < 3:
            raise DetftError(f"{where}: {label}: a zone is a polygon of at least 3 points, got {len(points)}")
        if np.linalg.matrix_rank(np.subtract(points, points[0])) < 2:
            raise DetftError(f"{where}: {label}: its points are on one line, so it has no inside")
    for label, _, points in lines:
        if len(points) != 2 or points[0] == points[1]:
            raise DetftError(f"{where}: {label}: a line is 2 distinct points [[x, y], [x, y]], got {list(points)}")
    beyond = [(label, p) for label, _, points in zones + lines for p in points if max(p) > 1]
    normalised = UNITS[units] if units is not None else not beyond
    if normalised and beyond:
        label, p = beyond[0]
        raise DetftError(f"{where}: {label}: point {list(p)} is beyond 1 but units are normalised (fractions of the "
                         "frame's width and height); use units: pixels for pixel coordinates")
    return Regions(tuple(Zone(name, points) for _, name, points in zones),
                   tuple(Line(name, *points) for _, name, points in lines), normalised)


def _entries(value: Any, kind: str, where: str) -> list[tuple[str, str, tuple[Point, ...]]]:
    """(label for errors, name, points) of a ``zones``/``lines`` value in either of its two forms."""
    if value is None:
        return []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for i, entry in enumerate(value):
            named = isinstance(entry, dict) and "name" in entry
            label = f"{kind} {entry['name']!r}" if named else f"{kind} {i + 1}"
            if not isinstance(entry, dict) or "points" not in entry or "name" not in entry:
                raise DetftError(f"{where}: {label}: expected {{name: ..., points: [[x, y], ...]}}, got {entry!r}")
            unknown = set(entry) - ENTRY_KEYS
            if unknown:
                raise DetftError(f"{where}: {label}: unknown key(s) {', '.join(map(repr, sorted(map(str, unknown))))} "
                                 f"(a {kind} is a name and its points)")
            items.append((entry["name"], entry["points"]))
    else:
        raise DetftError(f"{where}: '{kind}s' is a mapping of name to points or a list of {{name, points}}, "
                         f"not {value!r}")
    out = []
    for name, raw in items:
        if not isinstance(name, str) or not name:
            raise DetftError(f"{where}: {kind} name {name!r} must be text (quote it in YAML)")
        label = f"{kind} {name!r}"
        out.append((label, name, _points(raw, label, where)))
    return out


def _points(raw: Any, label: str, where: str) -> tuple[Point, ...]:
    if not isinstance(raw, (list, tuple)):
        raise DetftError(f"{where}: {label}: expected a list of [x, y] points, got {raw!r}")
    points = []
    for p in raw:
        if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(_number(v) for v in p):
            raise DetftError(f"{where}: {label}: point {p!r} is not a pair of numbers [x, y]")
        if min(p) < 0:
            raise DetftError(f"{where}: {label}: point {list(p)} is negative (the frame starts at 0, 0)")
        points.append((float(p[0]), float(p[1])))
    return tuple(points)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Event:
    stream: str
    kind: str  # "enter" | "exit" | "cross"
    region: str
    track_id: int
    category: str
    time: float  # the timestamp (s) of the frame it happened on
    frame: int
    direction: str | None = None  # cross: "in" / "out" (see RegionCounter)
    dwell: float | None = None  # exit: seconds the track spent inside

    def to_json(self) -> dict[str, Any]:
        """The non-None fields, times rounded to the microsecond as in the detections' JSONL."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if value is not None:
                out[key] = round(value, 6) if isinstance(value, float) else value
        return out


@dataclass
class _Track:
    seen: float  # timestamp of the last frame it was in
    frame: int
    zones: dict[int, tuple[float, str]] = field(default_factory=dict)  # zone -> (enter time, class at entry)
    sides: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # line -> last nonzero side, its anchor


class RegionCounter:
    """Events and per-class counts of one stream's zones and lines, from tracked detections frame by frame.

    A line a -> b has two sides: ``cross(b - a, p - a) < 0`` is its left as the image is displayed (x right, y
    down): standing at a looking towards b on screen. A crossing is ``in`` when the anchor moves to that side, ``out``
    when it moves to the other, e.g. ``in`` is upwards across a line drawn left to right, rightwards across a line
    drawn top to bottom. It counts only when the move meets the segment itself, not its extension; a track that
    goes round an end just changes side. An anchor exactly on the line keeps its last side, so standing on it never
    counts.

    A track missing for more than ``lost_after`` seconds is forgotten (memory stays bounded on a camera that runs
    for months); if it was inside a zone, that is an exit at its last-seen frame, so no dwell is endless."""

    def __init__(self, stream: str, regions: Regions, names: dict[int, str], frame_size: tuple[int, int],
                 lost_after: float = 1.0):
        self.stream, self.regions, self.names, self.lost_after = stream, regions, names, lost_after
        width, height = frame_size
        scale = (1.0, 1.0) if regions.normalised else (width, height)
        for kind, name, points in [("zone", z.name, z.points) for z in regions.zones] + \
                                  [("line", ln.name, (ln.a, ln.b)) for ln in regions.lines]:
            outside = [p for p in points if p[0] > scale[0] or p[1] > scale[1]]
            if outside:
                raise DetftError(f"stream {stream!r}: {kind} {name!r} has point {list(outside[0])} outside the "
                                 f"{width}x{height} frame: a {kind} outside the frame never counts (pixel coordinates "
                                 "are this stream's; units: normalised gives fractions of the frame)")
        self._rel_zones = [np.array(z.points) / scale for z in regions.zones]
        self._rel_lines = [np.array([ln.a, ln.b]) / scale for ln in regions.lines]
        self._tracks: dict[int, _Track] = {}
        self._entered = [Counter[str]() for _ in regions.zones]
        self._exited = [Counter[str]() for _ in regions.zones]
        self._dwell = [Counter[str]() for _ in regions.zones]  # summed seconds per class, for the mean
        self._in = [Counter[str]() for _ in regions.lines]
        self._out = [Counter[str]() for _ in regions.lines]
        self.frame_size = (0, 0)
        self._place(frame_size)

    def _place(self, frame_size: tuple[int, int]) -> None:
        self.frame_size = frame_size
        size = np.array(frame_size, np.float64)
        self._zones = [rel * size for rel in self._rel_zones]
        self._lines = [rel * size for rel in self._rel_lines]

    def resize(self, frame_size: tuple[int, int]) -> None:
        """The stream's frames are now ``frame_size`` (width, height): regions keep their place relative to the frame,
        and so do the tracks' remembered anchors, so a track standing still never crosses a line by the rescale."""
        fx, fy = frame_size[0] / self.frame_size[0], frame_size[1] / self.frame_size[1]
        for track in self._tracks.values():
            track.sides = {k: (s, x * fx, y * fy) for k, (s, x, y) in track.sides.items()}
        self._place(frame_size)

    def update(self, dets: Detections, frame: int, timestamp: float) -> list[Event]:
        """The events of one frame: exits of tracks lost since (at their last-seen frame), then this frame's."""
        if dets.track_ids is None:
            raise DetftError(f"stream {self.stream!r}: zones and lines count tracks, and these detections have no "
                             "track ids: run with --track")
        events = self._forget(timestamp)
        if not len(dets):
            return events
        boxes = dets.boxes.astype(np.float64)
        anchors = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)
        inside = [_inside(anchors, poly) for poly in self._zones]
        sides = [np.sign(_cross(b - a, anchors - a)) for a, b in self._lines]
        for i, (tid, label) in enumerate(zip(dets.track_ids.tolist(), dets.labels.tolist())):
            category = self.names.get(label, str(label))
            track = self._tracks.setdefault(tid, _Track(timestamp, frame))
            track.seen, track.frame = timestamp, frame
            for k, zone in enumerate(self.regions.zones):
                if inside[k][i] and k not in track.zones:
                    track.zones[k] = (timestamp, category)
                    self._entered[k][category] += 1
                    events.append(Event(self.stream, "enter", zone.name, tid, category, timestamp, frame))
                elif not inside[k][i] and k in track.zones:
                    events.append(self._exit(k, tid, track, timestamp, frame))
            x, y = anchors[i].tolist()
            for k, line in enumerate(self.regions.lines):
                side = int(sides[k][i])
                if side == 0:
                    continue
                last = track.sides.get(k)
                track.sides[k] = (side, x, y)
                if last is not None and last[0] != side and _meets(last[1:], (x, y), *self._lines[k]):
                    direction = "in" if side < 0 else "out"
                    (self._in if side < 0 else self._out)[k][category] += 1
                    events.append(Event(self.stream, "cross", line.name, tid, category, timestamp, frame, direction))
        return events

    def _exit(self, k: int, tid: int, track: _Track, timestamp: float, frame: int) -> Event:
        entered, category = track.zones.pop(k)
        dwell = timestamp - entered
        self._exited[k][category] += 1
        self._dwell[k][category] += dwell
        return Event(self.stream, "exit", self.regions.zones[k].name, tid, category, timestamp, frame, dwell=dwell)

    def _forget(self, now: float) -> list[Event]:
        events = []
        for tid in [t for t, track in self._tracks.items() if now - track.seen > self.lost_after]:
            track = self._tracks.pop(tid)  # its last side of each line goes too: a track back later starts afresh
            events += [self._exit(k, tid, track, track.seen, track.frame) for k in list(track.zones)]
        return events

    def summary(self) -> dict[str, Any]:
        """Counts per region and class: zones' entered, exited, inside now and mean dwell (of the exits); lines' in
        and out."""
        zones = {}
        for k, zone in enumerate(self.regions.zones):
            entered, exited = self._entered[k], self._exited[k]
            zones[zone.name] = {"entered": dict(entered), "exited": dict(exited),
                                "inside": {c: entered[c] - exited[c] for c in entered},
                                "dwell_mean_s": {c: round(self._dwell[k][c] / n, 6) for c, n in exited.items()}}
        lines = {line.name: {"in": dict(self._in[k]), "out": dict(self._out[k])}
                 for k, line in enumerate(self.regions.lines)}
        return {"zones": zones, "lines": lines}

    def draw(self, image: np.ndarray) -> np.ndarray:
        """A copy of the BGR ``image`` with the zones (name, inside now, entered), the lines (ends a and b, an arrow
        to the ``in`` side, in and out counts), placed relative to the image's own size."""
        out = image.copy()
        size = np.array([out.shape[1], out.shape[0]], np.float64)
        thickness = max(1, round(min(out.shape[:2]) / 300))
        scale = max(0.4, min(out.shape[:2]) / 900)
        for k, (zone, rel) in enumerate(zip(self.regions.zones, self._rel_zones)):
            c = colour(k)[::-1]
            pts = np.round(rel * size).astype(np.int32)
            cv2.polylines(out, [pts], True, c, thickness, cv2.LINE_AA)
            inside = sum(self._entered[k].values()) - sum(self._exited[k].values())
            _text(out, f"{zone.name}: {inside} inside, {sum(self._entered[k].values())} entered",
                  (int(pts[:, 0].min()), int(pts[:, 1].min())), c, scale)
        for k, (line, rel) in enumerate(zip(self.regions.lines, self._rel_lines)):
            c = colour(len(self.regions.zones) + k)[::-1]
            a, b = rel * size
            pa, pb = tuple(np.round(a).astype(int).tolist()), tuple(np.round(b).astype(int).tolist())
            cv2.line(out, pa, pb, c, thickness, cv2.LINE_AA)
            for p, end in ((pa, "a"), (pb, "b")):
                cv2.circle(out, p, 2 * thickness + 1, c, -1, cv2.LINE_AA)
                _text(out, end, p, c, scale)
            d = b - a
            normal = np.array([d[1], -d[0]]) / np.hypot(*d)  # towards the left of a -> b on screen: the "in" side
            mid = (a + b) / 2
            tip = mid + normal * max(10.0, min(out.shape[:2]) / 15)
            cv2.arrowedLine(out, tuple(np.round(mid).astype(int).tolist()), tuple(np.round(tip).astype(int).tolist()),
                            c, thickness, cv2.LINE_AA, tipLength=0.3)
            _text(out, f"{line.name}: in {sum(self._in[k].values())}, out {sum(self._out[k].values())}",
                  tuple(np.round(mid).astype(int).tolist()), c, scale)
        return out


def _cross(d: np.ndarray, v: np.ndarray) -> np.ndarray:
    return d[0] * v[..., 1] - d[1] * v[..., 0]


def _inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd ray test of (N, 2) points against a polygon, vectorised over points and edges."""
    x, y = points[:, :1], points[:, 1:]
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):  # horizontal edges never straddle: their x is unused
        at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (straddles & (x < at)).sum(axis=1) % 2 == 1


def _meets(p0: tuple[float, float], p1: tuple[float, float], a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the move p0 -> p1, whose ends are strictly on either side of the line through a and b, meets the
    segment a-b (not its extension)."""
    (ax, ay), (dx, dy) = a.tolist(), (b - a).tolist()
    s0 = dx * (p0[1] - ay) - dy * (p0[0] - ax)
    s1 = dx * (p1[1] - ay) - dy * (p1[0] - ax)
    f = s0 / (s0 - s1)
    x, y = p0[0] + (p1[0] - p0[0]) * f, p0[1] + (p1[1] - p0[1]) * f
    t = ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)
    return 0.0 <= t <= 1.0


def _text(image: np.ndarray, text: str, org: tuple[int, int], c: tuple[int, int, int], scale: float) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = min(max(org[0], 0), max(image.shape[1] - tw, 0))
    y = min(max(org[1], th + base), image.shape[0] - base)
    cv2.rectangle(image, (x, y - th - base), (x + tw, y + base), c, -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


class EventSink:
    """The events of every stream in one JSONL file, one event per line with its ``stream``. Streams run in threads,
    so writes take a lock; each line is flushed as written, and the file is renamed into place on close, as the
    other sinks do (a crash never leaves a cut line under the name the user asked for)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = partial_path(self.path)
        self.lock = threading.Lock()
        self.fh = open(self.tmp, "w", encoding="utf-8")

    def write(self, events: list[Event]) -> None:
        with self.lock:
            for event in events:
                self.fh.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
                self.fh.flush()

    def close(self) -> None:
        with self.lock:
            if not self.fh.closed:  # every stream's loop may close it on its way out
                self.fh.close()
                os.replace(self.tmp, self.path)
