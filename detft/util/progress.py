"""One place that decides how progress is shown: tqdm bars on a terminal, silence in logs and CI."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``items`` in a progress bar that only draws when stderr is a terminal."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True))
