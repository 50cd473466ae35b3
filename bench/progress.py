"""What the progress machinery costs when output goes to a log (#46 item 1): stdout and stderr to a file, as
``detft train ... > train.log 2>&1``, nohup, a container or CI run it; side by side in one process.

    python bench/progress.py [--items 1000000] [--rounds 5] [--epochs 3] [--families rcnn,yolo]

- a loop of ``--items`` cheap items through ``progress(...)`` (in a log: a generator and a Heartbeat clock read per
  item) against the bare loop: the overhead per item in microseconds;
- the per-call cost of the other pieces: ``Heartbeat.update``, a heartbeat line said, ``epoch_line`` formatted and
  printed flushed, and setting up and closing ``progress(...)`` and ``ticker(...)`` (once per loop or epoch);
- a tiny training of ``--epochs`` epochs per family on the embedded shapes (the tests' tiny R-CNN at 96 px; YOLOv8n
  from its yaml at 64 px; CPU, 0 workers), as shipped ("on") against the same run with the machinery taken out
  ("off": progress() a bare loop, no YOLO epoch callbacks, R-CNN's epoch line an empty string): wall and CPU seconds
  per run, torch on one thread. A tiny model is the worst case: its epochs are the shortest the progress is
  measured against. The per-call costs times the calls an epoch makes give the expected cost an epoch beside it.

Every measurement is repeated ``--rounds`` times, the two arms alternated (on first in even rounds, off first in
odd), and printed as the median with the lowest and highest [min, max]. Prints one table."""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import tiny_models  # noqa: E402,F401  (registers tiny_fasterrcnn, the tests' R-CNN at a fraction of the cost)

import detft  # noqa: E402
from detft.config import EMBEDDED_DATA  # noqa: E402
from detft.util import progress as prog  # noqa: E402

PARTS = {"loss_classifier": 0.21, "loss_box_reg": 0.30, "loss_objectness": 0.05, "loss_rpn_box_reg": 0.01}


@contextmanager
def to_log(path: Path) -> Iterator[None]:
    """stdout and stderr (the file descriptors: ultralytics' and tqdm's writes too) into ``path``, as a log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def timed(func: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def per_call(func: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``func``, over ``calls`` calls."""
    return timed(lambda: [func() for _ in range(calls)]) / calls * 1e6


def loop_costs(n: int) -> dict[str, tuple[float, float]]:
    """(bare, with the machinery) per item or per call, in microseconds; one round."""
    items = list(range(n))

    def bare() -> int:
        total = 0
        for i in items:
            total += i
        return total

    def watched() -> int:
        total = 0
        for i in prog.progress(items, "bench", unit="item"):
            total += i
        return total

    beat = prog.Heartbeat("bench", n, "item")
    line = lambda: print(prog.epoch_line(3, 10, 0.8123, PARTS, val_loss=0.9012,  # noqa: E731
                                         ap={"bbox": (0.412, 0.6543)}, best=("val AP", 0.42, 2), elapsed=37.0,
                                         done=3), flush=True)
    said = prog.Heartbeat("bench", n, "item")
    said.n = n // 2

    return {
        f"loop of {n:,} items, us/item": (timed(bare) / n * 1e6, timed(watched) / n * 1e6),
        "Heartbeat.update, us/call": (0.0, per_call(beat.update, n)),
        "a heartbeat line said, us/line": (0.0, per_call(said.say, 2000)),
        "epoch_line printed, us/line": (0.0, per_call(line, 2000)),
        # in a log progress() gives a generator, ticker() a Heartbeat: both close()
        "progress() set up + closed, us/loop": (0.0, per_call(lambda: prog.progress(items, "x").close(), 2000)),
        "ticker() set up + closed, us/epoch": (0.0, per_call(lambda: prog.ticker("x", 10, "batch").close(), 2000)),
    }


@contextmanager
def machinery_off(family: str) -> Iterator[None]:
    """The training as shipped, less its progress: every progress() a bare loop, YOLO's epoch callbacks not
    registered, the R-CNN epoch line an empty string (its print stays: one empty line an epoch)."""
    with mock.patch.object(prog, "progress", lambda items, *a, **k: items), \
            mock.patch("detft.engine.trainer.progress", lambda items, *a, **k: items), \
            mock.patch("detft.engine.trainer.epoch_line", lambda *a, **k: ""):
        if family == "yolo":
            with mock.patch("detft.families.yolo.EpochLines.register", lambda self, model: None):
                yield
        else:
            yield


def train_once(family: str, epochs: int, out: Path, name: str) -> tuple[float, float]:
    """Wall and CPU seconds of one training (CPU: this process's, less swayed by other jobs on a shared machine),
    its output into ``out/name.log``."""
    settings = {"rcnn": dict(arch="fasterrcnn", model="tiny_fasterrcnn", weights="none", imgsz=96, batch=4,
                             augment="none", schedule="constant", warmup_iters=0),
                "yolo": dict(arch="yolo", model="yolov8n.yaml", weights="none", imgsz=64, batch=8, augment="none")}
    cpu = time.process_time()
    with to_log(out / f"{name}.log"):
        wall = timed(lambda: detft.train(**settings[family], epochs=epochs, workers=0, device="cpu",
                                         project=str(out), name=name, exist_ok=True))
    return wall, time.process_time() - cpu


def epoch_lines(log: Path) -> int:
    """The lines ``epoch N/M: loss ...`` a training wrote into its log."""
    return sum(1 for text in log.read_text(errors="replace").splitlines() if re.match(r"epoch \d+/\d+: loss", text))


def expected_us(micro: dict[str, tuple[list[float], list[float]]], family: str) -> float:
    """The machinery's cost in one epoch of the tiny training, from the per-call medians and the calls an epoch makes
    on the embedded shapes: R-CNN 3 loops (training batches, val-loss batches, val images predicted), YOLO a ticker
    over its training batches (its validation is ultralytics' own); one epoch line each."""
    cost = {name.split(",")[0]: statistics.median(on) - statistics.median(bare) for name, (bare, on) in micro.items()}
    per_item = next(v for k, v in cost.items() if k.startswith("loop of"))
    train, val = (len(list((EMBEDDED_DATA / "images" / s).iterdir())) for s in ("train", "val"))
    if family == "rcnn":
        calls = 3 * cost["progress() set up + closed"] + (math.ceil(train / 4) + math.ceil(val / 4) + val) * per_item
    else:
        calls = cost["ticker() set up + closed"] + math.ceil(train / 8) * cost["Heartbeat.update"]
    return calls + cost["epoch_line printed"]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):10.3f} [{min(values):.3f}, {max(values):.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--families", default="rcnn,yolo")
    args = ap.parse_args()
    load_before = os.getloadavg()
    torch.set_num_threads(1)  # one core: the least swayed by the other jobs of a shared machine
    families = [f for f in args.families.split(",") if f]
    micro: dict[str, tuple[list[float], list[float]]] = {}
    trainings: dict[tuple[str, str], tuple[list[float], list[float]]] = {
        (f, clock): ([], []) for f in families for clock in ("wall", "CPU")}
    lines: dict[str, set[int]] = {"on": set(), "off": set()}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for f in families:  # a first run of each, not timed: imports, caches, the YOLO data conversion
            train_once(f, 1, out, f"warm-{f}")
        for r in range(args.rounds):
            with to_log(out / "loops.log"):
                for name, (bare, on) in loop_costs(args.items).items():
                    micro.setdefault(name, ([], []))[0].append(bare)
                    micro[name][1].append(on)
            for f in families:
                for arm in ("on", "off") if r % 2 == 0 else ("off", "on"):
                    with machinery_off(f) if arm == "off" else nullcontext():
                        wall, cpu = train_once(f, args.epochs, out, f"{f}-{arm}-{r}")
                    trainings[f, "wall"][arm == "off"].append(wall)
                    trainings[f, "CPU"][arm == "off"].append(cpu)
                    lines[arm].add(epoch_lines(out / f"{f}-{arm}-{r}.log"))
    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"
          f"; load average (1, 5, 15 min) {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after")
    print(f"# stdout and stderr to a file; median [min, max] of {args.rounds} rounds, arms alternated\n")
    print(f"{'what':<42}{'bare / off':>28}{'with progress / on':>30}{'cost':>16}")
    print("-" * 116)
    for name, (bare, on) in micro.items():
        cost = statistics.median(on) - statistics.median(bare)
        left = spread(bare) if any(bare) else f"{'':>10}"
        print(f"{name:<42}{left:>28}{spread(on):>30}{cost:>+13.3f} us")
    for (f, clock), (on, off) in trainings.items():
        cost = statistics.median(on) - statistics.median(off)
        label = f"tiny {f}, {args.epochs} epochs, {clock} s/run"
        print(f"{label:<42}{spread(off):>28}{spread(on):>30}{cost:>+13.3f} s "
              f"({cost / statistics.median(off):+.1%})")
    for f in families:
        per_epoch = expected_us(micro, f)
        epoch_s = statistics.median(trainings[f, "wall"][1]) / args.epochs  # the 'off' runs, setup and final eval in
        print(f"{f}: the per-call costs add up to {per_epoch:.0f} us an epoch, {per_epoch * 1e-6 / epoch_s:.4%} of "
              "the tiny training's wall time per epoch")
    print(f"epoch lines per training's log: on {sorted(lines['on'])}, off {sorted(lines['off'])}")


if __name__ == "__main__":
    main()
