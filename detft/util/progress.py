"""One place that decides how progress is shown: tqdm bars on a terminal, silence in logs and CI, except a line every
few seconds from a step that may stall with nothing to show (:func:`counting`)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``items`` in a progress bar that only draws when stderr is a terminal."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True))


HEARTBEAT_S = 5.0  # how often a count is said when stderr is a log: often enough that a stuck step shows


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
    when the count does not; elsewhere a line ``desc: N unit so far (T s)`` on stderr every :data:`HEARTBEAT_S`
    seconds, so a log shows the step is still running, and nothing at all for a step shorter than that."""
    count = Count()
    bar = tqdm(desc=desc, unit=f" {unit}", disable=None, leave=False, dynamic_ncols=True)
    started, stop = time.monotonic(), threading.Event()

    def beat() -> None:
        while not stop.wait(0.5 if not bar.disable else HEARTBEAT_S):
            if bar.disable:
                print(f"{desc}: {count.n} {unit} so far ({time.monotonic() - started:.0f} s)", file=sys.stderr,
                      flush=True)
            else:
                bar.update(count.n - bar.n)  # refreshes the bar, and its clock, even at the same count
                bar.refresh()

    thread = threading.Thread(target=beat, name=f"progress: {desc}", daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join()
        bar.close()
