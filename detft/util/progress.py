"""One place that decides how progress is shown: tqdm bars on a terminal; in a log (nohup, a container, CI, ``>
train.log 2>&1``) a line every few seconds from a long loop (:class:`Heartbeat`) and one line per training epoch
(:func:`epoch_line`), the same for every family, so a log shows how far a job is and when it will end."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

HEARTBEAT_S = 5.0  # how often a count is said when stderr is a log: often enough that a stuck step shows
# inside a training epoch, whose own line follows: a long epoch shows it is moving, and the epoch lines stand out
EPOCH_HEARTBEAT_S = 60.0


def duration(seconds: float) -> str:
    """``12.3 s``, ``1m26s``, ``2h05m``: short enough for a line per epoch, and no ``: `` in it, so a line's count
    stays the text after its last one."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Heartbeat:
    """tqdm's ``update``/``close`` for a log: instead of redrawing a bar, a line ``desc: N/TOTAL unit (P%), elapsed,
    ETA`` on stderr at most every ``every`` seconds, flushed, so a log shows a long loop moving without a line per
    item; a loop shorter than ``every`` says nothing. ``update`` costs one clock read."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", every: float | None = None) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.every = HEARTBEAT_S if every is None else every  # read now: tests shorten it
        self.n = 0
        self.started = self.last = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if not self.total:
            return f"{self.desc}: {self.n} {self.unit} so far ({duration(elapsed)})"
        eta = f", ETA {duration(elapsed / self.n * (self.total - self.n))}" if self.n else ""
        return f"{self.desc}: {self.n}/{self.total} {self.unit} ({self.n / self.total:.0%}), {duration(elapsed)}{eta}"

    def say(self) -> None:
        print(self.line(), file=sys.stderr, flush=True)
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.every:
            self.say()

    def close(self) -> None:
        """Nothing to clear: a log keeps its lines (here so a caller can treat this and a tqdm bar alike)."""


def ticker(desc: str, total: int | None = None, unit: str = "it", every: float | None = None) -> tqdm | Heartbeat:
    """Progress through a loop someone else runs (ultralytics' batches, fed from its callbacks): a tqdm bar when
    stderr is a terminal, a :class:`Heartbeat` when it is a log; both take ``update()`` and ``close()``."""
    bar = tqdm(desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True)
    return Heartbeat(desc, total, unit, every) if bar.disable else bar


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             every: float | None = None) -> Iterable[T]:
    """``items`` with a progress bar when stderr is a terminal (the bar itself, so a caller can ``set_postfix``);
    in a log a :class:`Heartbeat` line every ``every`` seconds (default :data:`HEARTBEAT_S`), or none with
    ``math.inf``, for a loop that logs its own lines."""
    bar = tqdm(items, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True)
    if not bar.disable or every == math.inf:
        return bar
    return _beating(items, Heartbeat(desc, total if total is not None else len(items) if isinstance(items, Sized)
                                     else None, unit, every))


def _beating(items: Iterable[T], beat: Heartbeat) -> Iterator[T]:
    for item in items:
        yield item
        beat.update()  # after the caller's work on the item: the count is of items done


def epoch_line(epoch: int, total: int, loss: float, parts: Mapping[str, float], *, val_loss: float | None = None,
               ap: Mapping[str, tuple[float, float]] | None = None, evaluator: str | None = None,
               best: tuple[str, float, int | None] | None = None, elapsed: float, done: int) -> str:
    """The line every family prints after each epoch's validation, flushed, so a log shows the run going and both
    families' logs read alike: ``epoch 3/10: loss 0.8123 (classifier 0.210, box_reg 0.301); val loss 0.9012,
    bbox AP 0.4120 AP50 0.6543; best val AP 0.4200 at epoch 2; 12.3 s/epoch, ETA 1m26s``. ``ap``: task ->
    (AP, AP50), a negative AP (no object to score) left out; ``evaluator`` names the one that gave them when it is
    not detft's; ``best``: (what best.pt maximises, its best value, its epoch or None when unknown); ``elapsed``
    over the ``done`` epochs of this process (validation included) gives the time per epoch and the ETA."""
    text = f"epoch {epoch}/{total}: loss {loss:.4f}"
    if parts:
        text += " (" + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()) + ")"
    scores = [f"val loss {val_loss:.4f}"] if val_loss is not None else []
    scores += [f"{task} AP {a:.4f} AP50 {a50:.4f}" for task, (a, a50) in (ap or {}).items() if a >= 0]
    if scores:
        text += "; " + ", ".join(scores) + (f" ({evaluator})" if evaluator and ap else "")
    if best is not None:
        name, value, at = best
        text += f"; best {name} {value:.4f}" + (f" at epoch {at}" if at is not None else "")
    per = elapsed / max(done, 1)
    return text + f"; {duration(per)}/epoch, ETA {duration(per * max(total - epoch, 0))}"


class Count:
    """What :func:`counting` yields: ``tick()`` once per item done; ``n`` the items so far."""

    def __init__(self) -> None:
        self.n = 0

    def tick(self) -> None:
        self.n += 1


@contextmanager
def counting(desc: str, unit: str = "it") -> Iterator[Count]:
    """Show a count of items while a step of unknown length runs (a user's adapter, which may stall in its own code
    before it yields anything): a tqdm counter on a terminal, redrawn by a background thread so its clock moves even
    when the count does not; elsewhere a :class:`Heartbeat` line ``desc: N unit so far (T s)`` every
    :data:`HEARTBEAT_S` seconds, said by that thread, so a log shows the step is still running even while no item
    comes, and nothing at all for a step shorter than that."""
    count = Count()
    bar = tqdm(desc=desc, unit=f" {unit}", disable=None, leave=False, dynamic_ncols=True)
    beat = Heartbeat(desc, unit=unit)
    stop = threading.Event()

    def beating() -> None:
        while not stop.wait(0.5 if not bar.disable else beat.every):
            if bar.disable:
                beat.n = count.n
                beat.say()
            else:
                bar.update(count.n - bar.n)  # refreshes the bar, and its clock, even at the same count
                bar.refresh()

    thread = threading.Thread(target=beating, name=f"progress: {desc}", daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join()
        bar.close()
