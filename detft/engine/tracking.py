"""Experiment tracking: the one seam every family reports a training to, so a tracker sees an R-CNN run and a YOLO
run the same way.

A family calls :meth:`Tracker.start` once run.yaml is written (before the first epoch), then
:meth:`Tracker.log_epoch` with each epoch's row as metrics.csv has it; ``detft.train``, around the whole training
(the family's, then the full-image score of a tiled run), calls :meth:`Tracker.finish` when it succeeds and
:meth:`Tracker.fail` when it raises. Tracking is off unless asked (:func:`open_tracker`); MLflow, the ``mlflow``
extra, is the tracker (:mod:`.mlflow_log`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..annotations.dataset import Dataset
    from ..runs import Run, RunInfo

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


class Tracker(Protocol):
    def start(self, run: Run, info: RunInfo, dataset: Dataset) -> None:
        """Open (or, for a resumed run, reopen) the tracked run: the config as params, the run's tags. Called on
        the main process alone; an unreachable tracker is a DetftError here, before training."""

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One epoch's numbers (a metrics.csv row, ``epoch`` from 1) as metrics at that step."""

    def finish(self, run: Run) -> None:
        """The final evaluation (eval.json's COCO stats, per class too), the plots and best.pt; marks it finished."""

    def fail(self, error: BaseException) -> None:
        """Mark the tracked run failed (killed for Ctrl-C); never raises, so ``error`` is what the user sees."""


class NoTracking:
    """What a run that is not tracked reports to."""

    def start(self, run: Run, info: RunInfo, dataset: Dataset) -> None:
        pass

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        pass

    def finish(self, run: Run) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        pass


NO_TRACKING = NoTracking()


def open_tracker(mlflow: bool | str | None, resumed: Run | None = None) -> Tracker:
    """The tracker a training asked for, checked before anything trains. ``mlflow``: a tracking URI; True for
    ``MLFLOW_TRACKING_URI``, else a ``./mlruns`` file store; False never; None (the default) tracks when
    ``MLFLOW_TRACKING_URI`` is set or ``resumed`` was tracked, whose MLflow run it continues.

    Asked in words (``mlflow`` given) without the extra installed is an error naming it; a tracking URI merely set
    in the environment (for other tools, perhaps) is a note, and the run trains untracked."""
    if mlflow is False:
        return NO_TRACKING
    from .mlflow_log import MLflowTracker, recorded

    record = recorded(resumed) if resumed is not None else None
    env = os.environ.get(TRACKING_URI_ENV) or None
    if mlflow is None and env is None and record is None:
        return NO_TRACKING
    if isinstance(mlflow, str) and mlflow.strip():
        uri, why = mlflow.strip(), "--mlflow"
    elif record is not None:
        uri, why = record["uri"], f"where {resumed.folder} was tracked"  # type: ignore[union-attr]
    elif env is not None:
        uri, why = env, TRACKING_URI_ENV
    else:
        uri, why = "mlruns", "no tracking URI given: a local file store"
    tracker = MLflowTracker.open(uri, why, record["run_id"] if record else None, required=mlflow is not None)
    return tracker or NO_TRACKING

