"""The slice merge's cost in the number of detections: every pair compared (the merge as it was before issue 33)
against the grid index (:class:`detft.inference.sliced.BoxIndex`), same detections, same objects.

    python bench/slice_merge.py [--pairwise-max 25000]

Detections are generated per window (100 each, as a model at evaluation confidence returns them: tests/helpers.py's
``slice_detections``), and the pairwise merge is tests/helpers.py's ``pairwise_merge``, the reference the tests
hold the indexed merge to. The pairwise merge is timed up to
``--pairwise-max`` detections: it grows with their square."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from detft.inference.sliced import cut_by_window, greedy_merge

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import pairwise_merge, slice_detections  # noqa: E402  (the reference the tests hold it to)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairwise-max", type=int, default=25_000)
    args = ap.parse_args()
    cases = [(2000, 1500, 256, 100), (4000, 2500, 256, 100), (8000, 5000, 256, 100), (20000, 20, 32, 100)]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    print(f"{'image':>11}  {'slice':>5}  {'windows':>7}  {'detections':>10}  {'objects':>7}  {'pairwise s':>10}  "
          f"{'index s':>7}  same")
    for width, height, size, per in cases:
        boxes, scores, labels, wins = slice_detections(width, height, size, per)
        cut = cut_by_window(boxes, wins, width, height)
        started = time.perf_counter()
        groups = greedy_merge(boxes, scores, labels, 0.5, cut, wins)
        indexed = time.perf_counter() - started
        if len(boxes) <= args.pairwise_max:
            started = time.perf_counter()
            reference = pairwise_merge(boxes, scores, labels, cut, wins)
            slow, same = f"{time.perf_counter() - started:10.2f}", str(reference == [g.members for g in groups])
        else:
            slow, same = f"{'-':>10}", "-"
        print(f"{f'{width}x{height}':>11}  {size:>5}  {len(wins) // per:>7}  {len(boxes):>10}  {len(groups):>7}  "
              f"{slow}  {indexed:7.2f}  {same}", flush=True)


if __name__ == "__main__":
    main()
