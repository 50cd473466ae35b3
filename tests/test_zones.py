"""Zones and lines per stream: parsing a camera's regions, the events synthetic and real tracks make with them, the
counts, resizing, drawing and the events file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detft.errors import DetftError
from detft.inference.detections import Detections
from detft.inference.tracking import ByteTrack
from detft.inference.zones import Event, EventSink, Line, RegionCounter, Regions, Zone, parse_regions

WHERE = "cameras.yaml, camera 'gate'"
NAMES = {0: "person", 1: "car"}


def tracked(*people: tuple[int, int, float, float]) -> Detections:
    """Detections whose box stands on each (track id, label, x, y): the bottom-centre anchor is (x, y)."""
    boxes = np.array([[x - 10, y - 40, x + 10, y] for _, _, x, y in people], np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(len(people), 0.9, np.float32), np.array([p[1] for p in people], np.int64),
                      track_ids=np.array([p[0] for p in people], np.int64))


def pixels(zones: dict | None = None, lines: dict | None = None) -> Regions:
    return parse_regions({"units": "pixels", "zones": zones or {}, "lines": lines or {}}, WHERE)


def brief(events: list[Event]) -> list[tuple]:
    return [(e.kind, e.region, e.track_id, e.category, e.frame, e.direction, e.dwell) for e in events]


DOOR = [[50, 20], [100, 20], [100, 80], [50, 80]]
GATE = [[150, 10], [150, 90]]  # drawn top to bottom: its left on screen, the "in" side, is the right


def test_tracks_through_a_zone_and_across_a_line_make_exact_events_and_counts():
    counter = RegionCounter("gate", pixels({"door": DOOR}, {"gate": GATE}), NAMES, (200, 100), lost_after=0.5)
    frames = {f: [] for f in range(8)}
    for f in range(8):
        frames[f].append((1, 0, 10 + 25 * f, 50))  # a person walking right: through the door, then across the gate
        frames[f].append((2, 1, 185 - 25 * f, 60))  # a car driving left: across the gate, then through the door
    for f in range(3, 8):
        frames[f].append((3, 0, 75, 40))  # a person who appears inside the door and stays
    for f in range(2):
        frames[f].append((4, 1, 60, 70))  # a car inside the door that vanishes after frame 1 (t = 0.25)
    events = []
    for f, people in frames.items():
        events += counter.update(tracked(*sorted(people)), f, f * 0.25)
    assert brief(events) == [
        ("enter", "door", 4, "car", 0, None, None),
        ("enter", "door", 1, "person", 2, None, None),
        ("cross", "gate", 2, "car", 2, "out", None),
        ("enter", "door", 3, "person", 3, None, None),
        ("exit", "door", 4, "car", 1, None, 0.25),  # lost: t 1.0 is more than 0.5 s after it was last seen at 0.25
        ("exit", "door", 1, "person", 4, None, 0.5),
        ("enter", "door", 2, "car", 4, None, None),
        ("cross", "gate", 1, "person", 6, "in", None),
        ("exit", "door", 2, "car", 6, None, 0.5),
    ]
    lost = events[4]
    assert lost.time == 0.25 and lost.stream == "gate"
    assert counter.summary() == {
        "zones": {"door": {"entered": {"car": 2, "person": 2}, "exited": {"car": 2, "person": 1},
                           "inside": {"car": 0, "person": 1}, "dwell_mean_s": {"car": 0.375, "person": 0.5}}},
        "lines": {"gate": {"in": {"person": 1}, "out": {"car": 1}}},
    }


def test_a_track_lost_inside_exits_at_its_last_seen_frame_even_when_nothing_else_is_in_view():
    counter = RegionCounter("gate", pixels({"door": DOOR}), NAMES, (200, 100), lost_after=1.0)
    empty = tracked()
    assert [e.kind for e in counter.update(tracked((7, 0, 60, 50)), 10, 5.0)] == ["enter"]
    assert counter.update(empty, 11, 5.5) == [] and counter.update(empty, 12, 6.0) == []  # 1.0 s: not yet lost
    assert brief(counter.update(empty, 13, 6.5)) == [("exit", "door", 7, "person", 10, None, 0.0)]
    assert counter.summary()["zones"]["door"]["inside"] == {"person": 0}


def test_event_json_holds_only_the_fields_that_apply():
    enter = Event("gate", "enter", "door", 3, "person", 1 / 3, 7)
    assert enter.to_json() == {"stream": "gate", "kind": "enter", "region": "door", "track_id": 3,
                               "category": "person", "time": 0.333333, "frame": 7}
    assert Event("gate", "exit", "door", 3, "person", 2.0, 9, dwell=1.5).to_json()["dwell"] == 1.5
    assert Event("gate", "cross", "gate", 3, "car", 2.0, 9, "in").to_json()["direction"] == "in"


def cross_directions(line: list[list[float]], path: list[tuple[float, float]], size: int = 200) -> list[str | None]:
    counter = RegionCounter("s", pixels(lines={"l": line}), NAMES, (size, size))
    events = []
    for f, (x, y) in enumerate(path):
        events += counter.update(tracked((1, 0, x, y)), f, f / 10)
    return [e.direction for e in events]


def test_direction_is_in_towards_the_left_of_a_to_b_as_displayed():
    left_to_right = [[20, 100], [180, 100]]
    assert cross_directions(left_to_right, [(100, 120), (100, 80)]) == ["in"]  # upwards on screen
    assert cross_directions(left_to_right, [(100, 80), (100, 120)]) == ["out"]
    assert cross_directions(left_to_right[::-1], [(100, 120), (100, 80)]) == ["out"]
    assert cross_directions([[100, 20], [100, 180]], [(80, 100), (120, 100)]) == ["in"]  # top to bottom: rightwards


def test_standing_on_the_line_never_flickers_a_count():
    path = [(140, 50), (150, 50), (140, 50), (150, 50), (150, 50), (160, 50), (150, 50), (160, 50), (150, 50)]
    assert cross_directions(GATE, path) == ["in"]


def test_only_the_segment_counts_not_its_extension():
    short = [[150, 10], [150, 50]]
    # past the segment's end (y 80 is beyond b): a change of side that does not count; back through it counts
    assert cross_directions(short, [(100, 80), (190, 80), (190, 30), (100, 30)]) == ["out"]


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 6.2), st.floats(50, 400), st.floats(0.05, 0.95), st.floats(0.3, 2.8), st.floats(5, 300),
       st.floats(5, 300), st.integers(1, 40), st.booleans())
def test_a_straight_walk_through_the_segment_crosses_once_whatever_the_steps(angle, length, t, turn, before, after,
                                                                             steps, on_segment):
    a = np.array([500.0, 500.0])
    b = a + length * np.array([np.cos(angle), np.sin(angle)])
    # the walk meets the line at t along a -> b (outside the segment when not on_segment), at an angle to it
    hit = a + (t if on_segment else t + 1.2) * (b - a)
    heading = np.array([np.cos(angle + turn), np.sin(angle + turn)])
    start, end = hit - before * heading, hit + after * heading
    path = [tuple(start + (end - start) * k / steps) for k in range(steps + 1)]
    (dx, dy), (ex, ey) = b - a, end - a
    expected = ["in" if dx * ey - dy * ex < 0 else "out"] if on_segment else []
    assert cross_directions([a.tolist(), b.tolist()], path, size=1000) == expected


def test_normalised_and_pixel_regions_are_told_apart():
    door = [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]
    guessed = parse_regions({"name": "gate", "zones": {"door": door}, "lines": {"entry": [[0, 0.6], [1, 0.6]]}}, WHERE)
    assert guessed.normalised and guessed.zones == (Zone("door", tuple(map(tuple, door))),)
    assert guessed.lines == (Line("entry", (0.0, 0.6), (1.0, 0.6)),)
    listed = parse_regions({"zones": [{"name": "door", "points": door}],
                            "lines": [{"name": "entry", "points": [[0, 0.6], [1, 0.6]]}]}, WHERE)
    assert listed == guessed
    assert not parse_regions({"zones": {"door": [[10, 50], [40, 50], [40, 90]]}}, WHERE).normalised
    assert not parse_regions({"units": "pixels", "zones": {"door": door}}, WHERE).normalised
    assert not parse_regions({"name": "gate", "url": "x"}, WHERE)  # no regions: falsy
    bowtie = parse_regions({"zones": {"bow": [[0, 0], [1, 1], [1, 0], [0, 1]]}}, WHERE)  # self-intersecting: fine
    assert len(bowtie.zones[0].points) == 4

    # the same place in normalised and pixel units counts the same
    for regions, size in [(guessed, (200, 100)), (parse_regions({"zones": {"door": [[20, 50], [80, 50], [80, 90],
                                                                                    [20, 90]]}}, WHERE), (200, 100))]:
        counter = RegionCounter("gate", regions, NAMES, size)
        assert [e.kind for e in counter.update(tracked((1, 0, 50, 70)), 0, 0.0)] == ["enter"]


SQUARE = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]


@pytest.mark.parametrize("camera, words", [
    ({"zones": {"door": [[0.1, 0.1], [0.5, 0.1]]}}, ["zone 'door'", "at least 3 points"]),
    ({"zones": {"door": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}}, ["zone 'door'", "on one line"]),
    ({"lines": {"entry": [[0, 0.6], [1, 0.6], [1, 0.7]]}}, ["line 'entry'", "2 distinct points"]),
    ({"lines": {"entry": [[0.5, 0.6], [0.5, 0.6]]}}, ["line 'entry'", "2 distinct points"]),
    ({"zones": {"door": [["a", 0.1], [0.5, 0.1], [0.5, 0.5]]}}, ["zone 'door'", "pair of numbers"]),
    ({"zones": {"door": [[True, 0.1], [0.5, 0.1], [0.5, 0.5]]}}, ["zone 'door'", "pair of numbers"]),
    ({"zones": {"door": [[float("nan"), 0.1], [0.5, 0.1], [0.5, 0.5]]}}, ["zone 'door'", "pair of numbers"]),
    ({"zones": {"door": [[0.1, 0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}}, ["zone 'door'", "pair of numbers"]),
    ({"zones": {"door": "everywhere"}}, ["zone 'door'", "list of [x, y] points"]),
    ({"lines": {"entry": [[-5, 10], [100, 10]]}}, ["line 'entry'", "negative"]),
    ({"units": "normalised", "zones": {"door": [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]]}},
     ["zone 'door'", "[1.5, 0.1]", "beyond 1", "units: pixels"]),
    ({"zones": {"door": SQUARE}, "lines": {"door": [[0, 0.6], [1, 0.6]]}}, ["line 'door'", "used twice", "zone 'door'"]),
    ({"zones": [{"name": "door", "points": SQUARE}, {"name": "door", "points": SQUARE}]}, ["zone 'door'", "used twice"]),
    ({"zones": [{"name": "door", "pts": SQUARE, "points": SQUARE}]}, ["zone 'door'", "unknown key", "'pts'"]),
    ({"lines": [{"name": "entry"}]}, ["line 'entry'", "points"]),
    ({"lines": [[[0, 0.6], [1, 0.6]]]}, ["line 1", "name"]),
    ({"zones": {5: SQUARE}}, ["zone name 5", "text"]),
    ({"zones": "door"}, ["'zones'", "mapping of name to points"]),
    ({"units": "percent", "zones": {"door": SQUARE}}, ["units 'percent'", "normalised", "pixels"]),
    ({"units": ["pixels"], "zones": {"door": SQUARE}}, ["units ['pixels']", "normalised", "pixels"]),
])
def test_every_bad_region_is_an_error_naming_the_file_camera_and_region(camera, words):
    with pytest.raises(DetftError) as e:
        parse_regions(camera, WHERE)
    message = str(e.value)
    assert message.startswith(WHERE + ": ")
    for word in words:
        assert word in message, message


def test_a_region_outside_the_frame_is_an_error_naming_stream_region_and_size():
    with pytest.raises(DetftError, match=r"stream 'gate': zone 'door' has point \[150.0, 20.0\] outside the 100x100 "
                                         "frame: a zone outside the frame"):
        RegionCounter("gate", pixels({"door": [[10, 20], [150, 20], [50, 80]]}), NAMES, (100, 100))
    with pytest.raises(DetftError, match="stream 'gate': line 'entry'.*outside the 100x50 frame"):
        RegionCounter("gate", pixels(lines={"entry": [[0, 60], [100, 60]]}), NAMES, (100, 50))
    RegionCounter("gate", pixels({"door": [[0, 0], [100, 0], [100, 100]]}), NAMES, (100, 100))  # the edge is in


def test_detections_without_track_ids_ask_for_track():
    counter = RegionCounter("gate", pixels({"door": DOOR}), NAMES, (200, 100))
    with pytest.raises(DetftError, match="stream 'gate'.*no track ids: run with --track"):
        counter.update(Detections.empty(), 0, 0.0)


def test_resize_keeps_regions_and_tracks_in_their_place_relative_to_the_frame():
    counter = RegionCounter("gate", pixels({"door": DOOR}, {"gate": GATE}), NAMES, (200, 100))
    assert brief(counter.update(tracked((1, 0, 140, 50)), 0, 0.0)) == []
    counter.resize((400, 200))
    assert brief(counter.update(tracked((1, 0, 280, 100)), 1, 0.1)) == []  # where it stood: no crossing by the rescale
    assert brief(counter.update(tracked((1, 0, 320, 100)), 2, 0.2)) == [("cross", "gate", 1, "person", 2, "in", None)]
    # the door is now (100, 40)-(200, 160): (150, 100) is in it, (75, 50) (inside before the resize) is not
    assert [e.kind for e in counter.update(tracked((2, 0, 150, 100), (3, 0, 75, 50)), 3, 0.3)] == ["enter"]


def test_track_state_is_forgotten_so_memory_stays_bounded():
    counter = RegionCounter("gate", pixels({"door": DOOR}, {"gate": GATE}), NAMES, (200, 100), lost_after=1.0)
    for f in range(2000):  # a new track every frame, each seen once, at 10 FPS
        counter.update(tracked((f, f % 2, 60 + f % 30, 50)), f, f / 10)
    assert len(counter._tracks) <= 11
    zone = counter.summary()["zones"]["door"]
    assert sum(zone["entered"].values()) == 2000 and sum(zone["inside"].values()) <= 11
    assert zone["dwell_mean_s"] == {"person": 0.0, "car": 0.0}


def test_draw_returns_a_changed_copy_of_the_same_shape():
    counter = RegionCounter("gate", parse_regions({"zones": {"door": [[0.1, 0.2], [0.5, 0.2], [0.5, 0.8]]},
                                                   "lines": {"gate": [[0.7, 0.1], [0.7, 0.9]]}}, WHERE),
                            NAMES, (200, 100))
    counter.update(tracked((1, 0, 60, 60)), 0, 0.0)
    image = np.zeros((100, 200, 3), np.uint8)
    drawn = counter.draw(image)
    assert drawn.shape == image.shape and drawn.dtype == image.dtype
    assert drawn.any() and not image.any()
    assert counter.draw(np.zeros((300, 600, 3), np.uint8)).any()  # another size: drawn relative to it


def test_event_sink_writes_whole_lines_from_many_streams_and_renames_on_close(tmp_path: Path):
    path = tmp_path / "out" / "events.jsonl"
    sink = EventSink(path)
    partial = path.with_name(".events.partial.jsonl")
    assert partial.exists() and not path.exists()

    def stream(name: str) -> None:
        for f in range(200):
            sink.write([Event(name, "enter", "door", f, "person", f / 10, f),
                        Event(name, "exit", "door", f, "person", f / 10 + 1, f + 10, dwell=1.0)])

    threads = [threading.Thread(target=stream, args=(name,)) for name in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    sink.close()  # a second close (another stream's loop ending) is harmless
    assert path.exists() and not partial.exists()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 1200
    assert {line["stream"] for line in lines} == {"a", "b", "c"}
    assert all("dwell" in line for line in lines if line["kind"] == "exit")
    assert not any("dwell" in line or "direction" in line for line in lines if line["kind"] == "enter")


def test_real_bytetrack_on_a_moving_square_makes_one_enter_exit_and_cross_with_one_id():
    tracker = ByteTrack()
    regions = pixels({"door": [[100, 100], [180, 100], [180, 200], [100, 200]]}, {"gate": [[240, 0], [240, 240]]})
    counter = RegionCounter("cam", regions, NAMES, (320, 240))
    image = np.zeros((240, 320, 3), np.uint8)
    events = []
    for f in range(36):
        x = 8.0 * f
        dets = Detections(np.array([[x, 100, x + 40, 140]], np.float32), np.array([0.9], np.float32),
                          np.array([0], np.int64))
        events += counter.update(tracker.update(dets, image), f, f / 30)
    assert [(e.kind, e.region, e.direction) for e in events] == [("enter", "door", None), ("exit", "door", None),
                                                                 ("cross", "gate", "in")]
    assert len({e.track_id for e in events}) == 1
    assert events[1].dwell == pytest.approx(events[1].time - events[0].time)
