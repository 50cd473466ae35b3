"""Progress in a log (stdout and stderr not a terminal, as under nohup, a container or CI): one line per epoch for
every family, a line every few seconds from a long loop, and the live bar kept on a terminal."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import config, make_data, yolo_config

import detft
from detft.util import progress as progress_module
from detft.util.progress import duration, progress

NUMBER = r"\d+\.\d+"
TIMES = rf"{NUMBER} s/epoch, ETA {NUMBER} s"  # tiny runs: seconds, not minutes
EPOCH_LINES = {
    "rcnn": (rf"loss {NUMBER} \(classifier {NUMBER}, box_reg {NUMBER}, objectness {NUMBER}, rpn_box_reg {NUMBER}\); "
             rf"val loss {NUMBER}, bbox AP {NUMBER} AP50 {NUMBER}; best val AP {NUMBER} at epoch [12]; {TIMES}"),
    "yolo": (rf"loss {NUMBER} \(box {NUMBER}, cls {NUMBER}, dfl {NUMBER}\); val loss {NUMBER}, bbox AP {NUMBER} "
             rf"AP50 {NUMBER} \(ultralytics' evaluator\); best val AP {NUMBER} at epoch [12]; {TIMES}")}


@pytest.mark.parametrize("family", ["rcnn", "yolo"])
def test_a_run_logged_to_a_file_says_one_line_per_epoch_with_losses_ap_best_and_eta(tmp_path: Path, capsys,
                                                                                    family: str):
    if family == "yolo":
        pytest.importorskip("ultralytics", reason="ultralytics is not installed")
        cfg = yolo_config(tmp_path, "yolov8n.yaml", augment="none")
    else:
        cfg = config(make_data(tmp_path / "data"), tmp_path, epochs=2)
    detft.train(cfg)
    out = capsys.readouterr().out.splitlines()
    epochs = [line for line in out if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"], out
    for line in epochs:
        assert re.fullmatch(rf"epoch [12]/2: {EPOCH_LINES[family]}", line), line
    assert epochs[-1].endswith("ETA 0.0 s")


class FakeTime:
    """The progress module's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_long_loop_in_a_log_says_a_line_every_few_seconds_not_per_item_and_a_short_one_nothing(monkeypatch,
                                                                                                   capsys):
    clock = FakeTime()
    monkeypatch.setattr(progress_module, "time", clock)
    for _ in progress(range(100), "reading YOLO train", unit="img"):
        clock.now += 0.5  # 50 s in all: a line every 5 s
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10, lines
    assert lines[0] == "reading YOLO train: 10/100 img (10%), 5.0 s, ETA 45.0 s"
    assert lines[-1] == "reading YOLO train: 100/100 img (100%), 50.0 s, ETA 0.0 s"
    for _ in progress(iter(range(40)), "pseudo", unit="img"):  # no length: a count
        clock.now += 0.25
    assert capsys.readouterr().err.splitlines() == ["pseudo: 20 img so far (5.0 s)", "pseudo: 40 img so far (10.0 s)"]
    for _ in progress(range(9), "quick", unit="img"):
        clock.now += 0.5
    for _ in progress(range(100), "frames", unit="frame", every=math.inf):  # a loop that logs its own lines
        clock.now += 0.5
    assert capsys.readouterr().err == ""


def test_a_terminal_keeps_the_live_bar_and_no_lines(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    bar = progress(range(3), "epoch 1/2", unit="batch")
    assert hasattr(bar, "set_postfix")  # the trainer's loss and images/s beside the bar
    assert list(bar) == [0, 1, 2]


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.04, 12.34, 59.96, 86, 3599.4, 3600, 7530)] == \
        ["0.0 s", "12.3 s", "1m00s", "1m26s", "59m59s", "1h00m", "2h05m"]
