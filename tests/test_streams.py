"""Many cameras in one process: batching, a frozen or dead camera that costs the others nothing, zone and line
events on a video whose track the test knows, metrics while streams run, the cameras file and its errors, and
real loopback streams through ``detft video`` with one of them killed."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import tiny_models  # noqa: F401  (registers tiny_maskrcnn)
from helpers import Closed, FakeCapture, config, doc_block, free_port, make_data, picture, serve_mjpeg

from detft import train
from detft.cli import main as detft_main
from detft.errors import DetftError
from detft.inference import sources
from detft.inference.cameras import Camera, cameras_from_sources, read_cameras
from detft.inference.detections import Detections
from detft.inference.streams import run_streams
from detft.models.labels import LabelMap

ROOT = Path(__file__).resolve().parents[1]
SIZE = (160, 90)  # a 16:9 camera
STEP = 4  # px the square moves per frame


def square_video(path: Path, frames: int = 36, fps: float = 10.0) -> Path:
    """A 16 px red square walking left to right along y 40-56, ``STEP`` px a frame from x = 0."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    for i in range(frames):
        image = np.full((SIZE[1], SIZE[0], 3), 60, np.uint8)
        cv2.rectangle(image, (i * STEP, 40), (i * STEP + 15, 55), (0, 0, 255), -1)
        writer.write(image)
    writer.release()
    return path


class SquareDetector:
    """Finds the red square: detections the test knows, so what is tested is the loop, ByteTrack and the zones."""

    labels = LabelMap((1,), ("person",), background=False)
    masks = False

    def __init__(self, delay: float = 0.0):
        self.delay, self.calls = delay, []

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        pass

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        self.calls.append((time.monotonic(), len(images)))
        time.sleep(self.delay)
        out = []
        for im in images:
            ys, xs = np.nonzero((im[..., 0] > 150) & (im[..., 1] < 110) & (im[..., 2] < 110))
            if not len(xs):
                out.append(Detections.empty())
                continue
            box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
            out.append(Detections(box, np.array([0.9], np.float32), np.array([1], np.int64)))
        return out


def test_zone_and_line_events_follow_the_track_the_video_holds_on_every_camera(tmp_path: Path):
    video = square_video(tmp_path / "walk.mp4")
    cameras_file = tmp_path / "cameras.yaml"
    cameras_file.write_text(f"""cameras:
  - name: gate
    url: {video}
    zones: {{door: [[60, 30], [100, 30], [100, 70], [60, 70]]}}
    lines: {{exit: [[120, 0], [120, 90]]}}
  - name: yard
    url: {video}
    units: normalised
    zones:
      - {{name: door, points: [[0.375, 0.3333], [0.625, 0.3333], [0.625, 0.7778], [0.375, 0.7778]]}}
    lines: {{exit: [[0.75, 0.0], [0.75, 1.0]]}}
""")
    events, jsonl, logs = tmp_path / "events.jsonl", tmp_path / "dets.jsonl", []
    stats = run_streams(SquareDetector(), read_cameras(cameras_file), out=tmp_path / "mp4", jsonl=jsonl, events=events,
                        log=logs.append)
    assert set(stats) == {"gate", "yard"}
    got = [json.loads(line) for line in events.read_text().splitlines()]
    for name in ("gate", "yard"):
        mine = [e for e in got if e["stream"] == name]
        assert [(e["kind"], e["region"]) for e in mine] == [("enter", "door"), ("exit", "door"), ("cross", "exit")]
        enter, leave, cross = mine
        # the anchor (bottom centre, x = 8 + 4i) enters x >= 60 at frame 13, leaves x <= 100 at frame 24 and passes
        # x = 120 at frame 28 (frame 28 sits on the line: counted when it is left, not twice)
        assert abs(enter["frame"] - 13) <= 1 and abs(leave["frame"] - 24) <= 1 and abs(cross["frame"] - 29) <= 1
        assert leave["dwell"] == pytest.approx((leave["frame"] - enter["frame"]) / 10, abs=1e-3)
        assert cross["direction"] == "in" and enter["track_id"] == leave["track_id"] == cross["track_id"]
        assert enter["category"] == "person"
        summary = stats[name].regions
        assert summary["zones"]["door"]["entered"] == {"person": 1} and summary["lines"]["exit"]["in"] == {"person": 1}
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    for name in ("gate", "yard"):  # a file keeps every frame, in order, on every camera
        assert [d["frame"] for d in lines if d["stream"] == name] == list(range(36))
        cap = cv2.VideoCapture(str(tmp_path / "mp4" / f"{name}.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 36
    assert any("ByteTrack runs on the cameras that have them" in line for line in logs)


class Frozen(FakeCapture):
    """A camera that connects, then hangs in read() (a stalled stream before its read timeout)."""

    def read(self):
        time.sleep(3.0)
        return True, picture(0)


def test_a_frozen_and_a_dead_camera_cost_the_others_nothing_and_frames_are_batched(monkeypatch):
    def opener(url: str, timeout: float):
        if "fast" in url:
            return FakeCapture([picture(i) for i in range(2000)], delay=0.01)
        return Frozen([]) if "frozen" in url else Closed([])

    monkeypatch.setattr(sources, "open_capture", opener)
    cameras = [Camera("a", "rtsp://fast/a"), Camera("b", "rtsp://fast/b"), Camera("frozen", "rtsp://frozen"),
               Camera("dead", "rtsp://dead", max_retries=0)]
    predictor, logs, stop = SquareDetector(delay=0.02), [], threading.Event()
    scrapes: dict[str, str] = {}

    def scrape() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(line.startswith("metrics: ") for line in logs):
            time.sleep(0.05)
        time.sleep(1.0)
        base = re.search(r"http://127.0.0.1:\d+", next(line for line in logs if line.startswith("metrics: ")))[0]
        scrapes["metrics"] = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        scrapes["health"] = urllib.request.urlopen(base + "/health", timeout=5).read().decode()
        stop.set()

    scraper = threading.Thread(target=scrape)
    scraper.start()
    stats = run_streams(predictor, cameras, metrics_port=0, stop=stop, stats_every=0.5, log=logs.append)
    scraper.join()
    times = [t for t, _ in predictor.calls]
    # the frozen camera's read blocks 3 s: a step that waited for it would leave a gap that long (1.5 s leaves room
    # for a busy machine)
    assert max(np.diff(times)) < 1.5, "a step waited for a camera that had no frame"
    assert stats["a"].frames > 20 and stats["b"].frames > 20 and stats["frozen"].frames == 0
    assert max(n for _, n in predictor.calls) == 2, "a and b, ready together, are predicted in one batch"
    assert any(line.startswith("dead: failed:") and "could not be opened" in line for line in logs)
    assert re.search(r'detft_frames_total\{stream="a"\} [1-9]', scrapes["metrics"])
    assert 'detft_stream_state{stream="dead",state="failed"} 1' in scrapes["metrics"]
    health = json.loads(scrapes["health"])
    assert health["status"] == "degraded" and health["streams"]["dead"]["state"] == "failed"


def test_every_camera_failing_is_an_error_naming_each(monkeypatch):
    monkeypatch.setattr(sources, "open_capture", lambda url, timeout: Closed([]))
    with pytest.raises(DetftError, match=r"every camera failed: a: .*could not be opened.*; b: "):
        run_streams(SquareDetector(), [Camera("a", "rtsp://x", max_retries=0), Camera("b", "rtsp://y", max_retries=0)],
                    log=lambda m: None)


def test_the_cameras_file_is_read_in_each_shape_and_every_mistake_is_named(tmp_path: Path):
    video = square_video(tmp_path / "v.mp4", frames=2)
    good = tmp_path / "good.yaml"
    good.write_text(f"gate: rtsp://10.0.0.5/stream1\nyard: {{url: {video}, timeout: 2, record: false}}\ncam: 0\n")
    gate, yard, cam = read_cameras(good)
    assert (gate.url, yard.timeout, yard.record, cam.url) == ("rtsp://10.0.0.5/stream1", 2.0, False, "0")
    bad = {
        "cameras: [{name: a, url: rtsp://x, zone: {}}]": r"camera 'a': unknown key\(s\) zone",
        "cameras: [{name: a, url: rtsp://x}, {name: a, url: rtsp://y}]": r"camera name 'a' is used twice",
        "cameras: [{name: 'a b', url: rtsp://x}]": r"camera 1: name 'a b' must be",
        "cameras: [{name: a}]": r"camera 'a': 'url' is missing",
        "cameras: [{name: a, url: /no/such.mp4}]": r"camera 'a': url '/no/such.mp4' is neither",
        "cameras: [{name: a, url: rtsp://x, timeout: -1}]": r"camera 'a': 'timeout' must be a positive number",
        "cameras: [{name: a, url: rtsp://x, zones: {z: [[0, 0], [1, 1]]}}]": r"camera 'a'.*z",
        "cameras: []": r"expected a list of cameras",
        "streams: []": r"camera 'streams': 'url' is missing",
    }
    for text, message in bad.items():
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(DetftError, match=message) as e:
            read_cameras(tmp_path / "bad.yaml")
        assert str(tmp_path / "bad.yaml") in str(e.value)


def test_the_documented_cameras_file_reads_as_it_says(tmp_path: Path):
    (tmp_path / "cameras.yaml").write_text(doc_block("prediction.md", "tests/test_streams.py").code)
    gate, yard = read_cameras(tmp_path / "cameras.yaml")
    assert gate.timeout == 5.0 and gate.regions.normalised and [z.name for z in gate.regions.zones] == ["door"]
    assert [line.name for line in gate.regions.lines] == ["entry"] and not yard.regions and not yard.record


def test_sources_are_named_from_what_they_are_and_names_stay_unique():
    names = [c.name for c in cameras_from_sources(["rtsp://10.0.0.5:554/live/ch1", "gate=rtsp://10.0.0.6/s", "0",
                                                   "/data/clips/entrance.mp4", "/other/entrance.mp4"])]
    assert names == ["10.0.0.5-live-ch1", "gate", "cam0", "entrance", "entrance-2"]


def test_a_zone_outside_the_frame_is_an_error_naming_camera_and_zone(tmp_path: Path):
    video = square_video(tmp_path / "v.mp4", frames=3)
    (tmp_path / "c.yaml").write_text(f"gate: {{url: {video}, zones: {{door: [[0, 0], [400, 0], [400, 80]]}}}}\n")
    with pytest.raises(DetftError, match=r"gate.*door"):
        run_streams(SquareDetector(), read_cameras(tmp_path / "c.yaml"), log=lambda m: None)


@pytest.fixture(scope="module")
def rcnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("streams")
    return train(config(make_data(tmp / "data", n=4), tmp, arch="maskrcnn", model="tiny_maskrcnn"))


def test_cli_runs_several_files_in_one_process_with_an_mp4_each(rcnn_run: Path, tmp_path: Path, capsys):
    a, b = square_video(tmp_path / "a.mp4", frames=12), square_video(tmp_path / "b.mp4", frames=7)
    out, jsonl = tmp_path / "clips", tmp_path / "dets.jsonl"
    assert detft_main(["video", "--weights", str(rcnn_run), "--source", str(a), "--source", f"side={b}", "--out",
                       str(out), "--jsonl", str(jsonl), "--device", "cpu", "--threads", "1", "--conf", "0.0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "side.mp4"]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(d["frame"] for d in lines if d["stream"] == "side") == list(range(7))
    assert len([d for d in lines if d["stream"] == "a"]) == 12
    errors = {
        ("--source", str(a), "--events", str(tmp_path / "e.jsonl")): r"--events is for several cameras",
        ("--source", str(a), "--source", str(b), "--out", str(jsonl)): r"is a file: with several cameras --out names a folder",
        ("--source", str(a), "--source", str(b), "--out", str(out)): r"a\.mp4 already exists",
        ("--source", str(a), "--source", str(b), "--events", str(tmp_path / "e.jsonl")): r"no camera has zones or lines",
        ("--sources", str(tmp_path / "none.yaml")): r"--sources .*none\.yaml: no such file",
        ("--source", str(a), "--camera", "x"): r"--camera picks cameras of the --sources file",
        (): r"name what to run on",
    }
    (tmp_path / "two.yaml").write_text(f"a: {a}\nb: {b}\n")
    assert detft_main(["video", "--weights", str(rcnn_run), "--sources", str(tmp_path / "two.yaml"), "--camera", "b",
                       "--jsonl", str(tmp_path / "b.jsonl"), "--device", "cpu"]) == 0
    assert {json.loads(line)["stream"] for line in (tmp_path / "b.jsonl").read_text().splitlines()} == {"b"}
    errors[("--sources", str(tmp_path / "two.yaml"), "--camera", "c")] = r"has no camera 'c' \(it has: a, b\)"
    for args, message in errors.items():
        capsys.readouterr()
        assert detft_main(["video", "--weights", str(rcnn_run), *args]) != 0
        assert re.search(message, capsys.readouterr().err), (args, message)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_real_loopback_cameras_in_one_process_one_killed_the_rest_go_on(rcnn_run: Path, tmp_path: Path):
    ports = {name: free_port() for name in ("north", "south", "east")}
    servers = {name: serve_mjpeg(port) for name, port in ports.items()}
    metrics_port, jsonl = free_port(), tmp_path / "dets.jsonl"
    args = ["video", "--weights", str(rcnn_run), "--device", "cpu", "--jsonl", str(jsonl), "--out", str(tmp_path / "mp4"),
            "--metrics-port", str(metrics_port), "--stats-every", "1", "--timeout", "2", "--max-backoff", "1",
            *[a for name, port in ports.items() for a in ("--source", f"{name}=http://127.0.0.1:{port}/stream.mjpg")],
            "--source", f"gone=http://127.0.0.1:{free_port()}/none.mjpg"]
    code = (f"import runpy, sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import tiny_models; "
            f"sys.argv = ['detft', *{args!r}]; runpy.run_module('detft', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    partial = tmp_path / ".dets.partial.jsonl"

    def frames() -> dict[str, list[float]]:
        seen: dict[str, list[float]] = {}
        for line in partial.read_text().splitlines() if partial.exists() else []:
            d = json.loads(line)
            seen.setdefault(d["stream"], []).append(d["timestamp"])
        return seen

    def health_of(name: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/health", timeout=5) as reply:
            return json.loads(reply.read())["streams"][name]["state"]

    def wait(condition, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None and not condition():
            time.sleep(0.2)

    try:
        wait(lambda: all(len(frames().get(n, [])) >= 10 for n in ports), 90)
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/health", timeout=5).read())
        assert {n: health["streams"][n]["state"] for n in ports} == dict.fromkeys(ports, "live")
        servers["south"].kill()
        servers["south"].wait()
        killed = time.time()
        wait(lambda: all(len([t for t in frames().get(n, []) if t > killed + 2]) >= 10 for n in ("north", "east")), 60)
        wait(lambda: health_of("gone") == "failed", 60)  # its five tries to open, with backoff, may outlast the above
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        for server in servers.values():
            server.kill()
    assert proc.returncode == 0, output
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    after = {n: [d["timestamp"] for d in lines if d["stream"] == n and d["timestamp"] > killed] for n in ports}
    assert len(after["north"]) >= 10 and len(after["east"]) >= 10, output[-2000:]
    for n in ("north", "east"):  # no gap: the survivors' frames keep coming while south reconnects
        assert max(np.diff([killed, *after[n]])) < 2.0
    assert len(after["south"]) <= 2
    assert 'detft_stream_state{stream="south",state="reconnecting"} 1' in metrics or \
        'detft_stream_state{stream="south",state="connecting"} 1' in metrics
    assert "gone: failed:" in output and "could not be opened" in output
    assert sorted(p.name for p in (tmp_path / "mp4").iterdir()) == ["east.mp4", "north.mp4", "south.mp4"]
