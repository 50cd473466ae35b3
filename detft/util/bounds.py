"""The range of every numeric option, checked where it is parsed and named by its flag.

NaN passes every comparison check written the usual way (``nan < 0`` is False), so a ratio of ``nan`` or a
count of ``-1`` went through to a result that was silently wrong. A :class:`Bound` says what a flag accepts once,
for the CLI (an argparse type) and for the Python API (:meth:`Bound.check`) alike."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DetftError


@dataclass(frozen=True)
class Bound:
    kind: type = float  # int or float
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the low end itself is refused
    high_open: bool = False
    unit: str = ""  # said after a lower bound: " px"

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        low = high = ""
        if self.low is not None:
            low = f"above {self.low:g}" if self.low_open else (
                f"from {self.low:g}" if self.high is not None else
                ("0 or more" if self.low == 0 else f"of at least {self.low:g}{self.unit}"))
        if self.high is not None:
            high = f"up to, not including, {self.high:g}" if self.high_open else (
                f"at most {self.high:g}" if self.low_open or self.low is None else f"to {self.high:g}")
        joined = ", ".join(p for p in (low, high) if p) if self.low_open else " ".join(p for p in (low, high) if p)
        return f"{what}{',' if low == '0 or more' else ''} {joined}".rstrip() if joined else f"a finite {what[2:].strip()}"

    def problem(self, value: object) -> str | None:
        """Why ``value`` is refused, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind is int and not isinstance(value, int)):
            return f"{value!r} is not {self.describe()}"
        if not math.isfinite(value):
            return f"{value} is not {self.describe()}"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"{value:g} is not {self.describe()}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"{value:g} is not {self.describe()}"
        return None

    def check(self, flag: str, value: object) -> None:
        """A named error for ``value`` given as ``flag``; None passes (an option left unset)."""
        if value is not None and (why := self.problem(value)):
            raise DetftError(f"{flag}: {why}")

    def argtype(self) -> Callable[[str], int | float]:
        """An argparse ``type``: the message names the flag (argparse prefixes it) and the accepted range. The parser
        refuses the value before the command runs, a usage error (exit 2, ``ExitCode.USAGE``); :meth:`check`, for
        values that come another way (the Python API, a run.yaml), raises a named error (exit 1)."""
        def parse(text: str) -> int | float:
            try:
                value = self.kind(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not {self.describe()}") from None
            if why := self.problem(value):
                raise argparse.ArgumentTypeError(why)
            return value

        parse.__name__ = self.kind.__name__  # argparse names the type in some messages
        return parse


COUNT = Bound(int, 1)  # images, epochs, detections, batch...
NONNEGATIVE_INT = Bound(int, 0)
SIZE = Bound(int, 32, unit=" px")  # pixels of a model input or a window: below this no detector has a feature map
FRACTION = Bound(float, 0, 1)
OVERLAP = Bound(float, 0, 1, high_open=True)  # windows must advance
VISIBILITY = Bound(float, 0, 1, low_open=True)
NONNEGATIVE = Bound(float, 0)
POSITIVE = Bound(float, 0, low_open=True)
