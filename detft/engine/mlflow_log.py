"""A detft run as an MLflow run, through MLflow's own client (the ``mlflow`` extra installs mlflow-skinny, the client
alone), so any MLflow server, or a local ``./mlruns`` store, takes it.

What it logs: the config as params (plus the classes and the split training made), every epoch's metrics.csv row at
its epoch as the step, the final evaluation of best.pt (eval.json's COCO stats as ``eval/bbox_AP``..., each class's
AP as ``ap_bbox/<class>``), eval.json, run.yaml, metrics.csv, the plots and best.pt as artifacts, and tags for the
family, task, model, start, data and its fingerprint, the detft version and the run folder. The MLflow run id is kept
in the run folder (:attr:`~detft.runs.Run.tracking_file`), so ``--resume`` continues the same MLflow run.

Tracking never ends a training once it has begun: a call that fails is said, and the run goes on untracked (each
further call would wait out the client's retries again, minutes against a server that is down)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.loading import data_source, fingerprint
from ..errors import DetftError
from ..evaluation.report import EVAL_JSON
from ..util.output import atomic_write_text
from ..version import __version__

if TYPE_CHECKING:
    from ..annotations.dataset import Dataset
    from ..runs import Run, RunInfo

EXTRA = "pip install 'detft[mlflow]'"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "detft"
FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"  # MLflow 3 refuses its file store (in maintenance) unless this is true
PARAM_VALUE_MAX = 500  # older MLflow servers' limit (their databases' column); today's take 6000
KEY_MAX = 250
PARAMS_PER_CALL, METRICS_PER_CALL = 100, 1000  # what one log_batch request may carry
PROBE_TIMEOUT_S = 10


def recorded(run: Run) -> dict[str, str] | None:
    """The MLflow run ``run`` was tracked as ({"uri", "experiment_id", "run_id"}), None when it never was."""
    path = run.tracking_file
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DetftError(f"{path}: damaged MLflow record ({e}); delete it to resume the run in a new MLflow "
                         "run") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("uri", "run_id")):
        raise DetftError(f"{path}: damaged MLflow record (expected 'uri' and 'run_id'); delete it to resume the run "
                         "in a new MLflow run")
    return doc


def safe_key(text: str, groups: bool = False) -> str:
    """``text`` as an MLflow metric name, which takes letters, digits and ``_-./ :`` (and no ``..``); with ``groups``
    its ``/`` stay (``lr/pg0``, grouped in MLflow's charts): ``metrics/precision(B)`` is ``metrics/precision_B``, a
    class called "traffic light" or "a/b" is ``traffic_light``, ``a_b``."""
    return re.sub(r"[^\w\-/]+" if groups else r"[^\w\-]+", "_", text).strip("_")[:KEY_MAX] or "_"


def _cut(value: Any) -> str:
    text = str(value)
    return text if len(text) <= PARAM_VALUE_MAX else text[:PARAM_VALUE_MAX - 3] + "..."


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def params_of(info: RunInfo) -> dict[str, str]:
    """The config's fields (what reproduces the run), the classes, and the split training made (``split.seed``...),
    each value cut to MLflow's 500 characters."""
    values = {**info.config.to_dict(), "classes": ", ".join(info.labels.names), "num_classes": len(info.labels.names),
              **({"split": info.split} if info.split else {})}
    return {key: _cut(value) for key, value in _flat(values).items()}


def tags_of(run: Run, info: RunInfo, dataset: Dataset) -> dict[str, str]:
    """What a run is, to filter and group runs by in MLflow. The data fingerprint is the one detft's split uses: the
    images' names and sizes (not their annotations)."""
    return {"detft.family": info.family, "detft.task": info.task, "detft.model": info.model,
            "detft.start": str(info.start), "detft.data": str(data_source(info.config)),
            "detft.data_fingerprint": fingerprint(dataset), "detft.version": __version__,
            "detft.run_folder": str(run.folder.resolve())}


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A metrics.csv row's numbers (its blanks and the epoch itself left out)."""
    return {safe_key(k, groups=True): float(v) for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def final_metrics(doc: Mapping[str, Any]) -> dict[str, float]:
    """eval.json's COCO stats as ``eval/<iou type>_<stat>`` and each class's AP as ``ap_<iou type>/<class>``; a stat
    COCO could not compute (-1: no object of that size, a class with no val object) is left out, not plotted as a
    number. Two classes whose names make the same key are told apart by their category id."""
    out: dict[str, float] = {}
    for iou_type, result in doc["metrics"].items():
        out.update({f"eval/{iou_type}_{k}": float(v) for k, v in result["stats"].items() if v >= 0})
        for c in result["per_class"]:
            key = f"ap_{iou_type}/{safe_key(c['name'])}"
            key = f"{key}_{c['id']}" if key in out else key
            if c["AP"] >= 0:
                out[key] = float(c["AP"])
    return out


def artifacts(run: Run) -> list[tuple[Path, str | None]]:
    """(file, folder in the MLflow run) for every file of the run worth keeping beside its numbers."""
    files: list[tuple[Path, str | None]] = [(run.folder / EVAL_JSON, None), (run.run_file, None),
                                            (run.metrics_csv, None)]
    files += [(p, "plots") for p in sorted(run.folder.glob("*.png"))]
    files.append((run.checkpoint_path("best"), "weights"))
    return [(path, folder) for path, folder in files if path.is_file()]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def _local(uri: str) -> bool:
    """A path or a file: URI, a file store (``databricks`` is MLflow's one URI without a scheme)."""
    return urllib.parse.urlparse(uri).scheme in ("", "file") and uri != "databricks"


class MLflowTracker:
    """One detft run's MLflow run. Picklable (ultralytics sends its callbacks to its DDP processes): the client is
    made again where it is used."""

    def __init__(self, uri: str, why: str, resume_id: str | None):
        self.uri, self.why, self.resume_id = uri, why, resume_id
        self.run_id: str | None = None  # set by start(), on the main process alone
        self.experiment_id: str | None = None
        self.broken = False
        self._client: Any = None

    @classmethod
    def open(cls, uri: str, why: str, resume_id: str | None, required: bool) -> MLflowTracker | None:
        """A tracker for ``uri`` once the client is known to be installed: when it is not, an error when MLflow was
        asked for in words (``required``), else a note, and None: no tracking."""
        try:
            import mlflow  # noqa: F401
        except ImportError:
            if required:
                raise DetftError(f"--mlflow: tracking in MLflow needs its client, which is not installed: {EXTRA}") \
                    from None
            print(f"note: not tracking in MLflow ({why}: {uri}): its client is not installed ({EXTRA})")
            return None
        if _local(uri):
            # a path is kept whole, so a run resumed from another folder finds its store; MLflow 3 takes a file
            # store only when told (it recommends a database, which the skinny client cannot write)
            path = urllib.parse.unquote(urllib.parse.urlparse(uri).path) if uri.startswith("file:") else uri
            uri = Path(path).expanduser().resolve().as_uri()
            os.environ.setdefault(FILE_STORE_ENV, "true")
        return cls(uri, why, resume_id)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    # ---------------------------------------------------------------- the seam
    def start(self, run: Run, info: RunInfo, dataset: Dataset) -> None:
        self._probe()
        try:
            if self.resume_id is None:
                self._create(run, info, dataset)
            else:
                self._reopen(run, info, dataset)
        except DetftError:
            raise
        except Exception as e:  # the client's own errors, and what its HTTP layer raises
            raise DetftError(f"MLflow at {self.uri}: {type(e).__name__}: {e}") from None
        atomic_write_text(run.tracking_file, json.dumps({"uri": self.uri, "experiment_id": self.experiment_id,
                                                         "run_id": self.run_id}, indent=1) + "\n")
        verb = "continuing MLflow run" if self.resume_id else "tracking in MLflow run"
        print(f"{verb} {self.run_id} at {self.uri} ({self.why}){self._how_to_look()}", flush=True)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self._metrics(f"epoch {row['epoch']}", epoch_metrics(row), int(row["epoch"]))

    def finish(self, run: Run) -> None:
        if self.run_id is None:  # not the main process
            return
        if (evaluation := run.evaluation()) is not None:
            self._metrics("the final evaluation", final_metrics(evaluation), 0)
        sent = []
        for path, folder in artifacts(run):
            if self._call(path.name, lambda c: c.log_artifact(self.run_id, str(path), folder), stop=False):
                sent.append(path.name)
        if self._call("the run's end", lambda c: c.set_terminated(self.run_id, "FINISHED")):
            print(f"MLflow run {self.run_id}: finished; artifacts {', '.join(sent) or 'none'}", flush=True)

    def fail(self, error: BaseException) -> None:
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        self._call(f"the run's end ({status})", lambda c: (
            c.set_tag(self.run_id, "detft.error", _cut(f"{type(error).__name__}: {error}")),
            c.set_terminated(self.run_id, status)))

    # ---------------------------------------------------------------- MLflow
    def _how_to_look(self) -> str:
        """The run's page on a server; for a local file store, the command that shows it."""
        if self.uri.startswith(("http:", "https:")):
            return f"\n  {self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        if _local(self.uri):
            return f"\n  view it: {FILE_STORE_ENV}=true mlflow ui --backend-store-uri {self.uri}"
        return ""

    def _metrics(self, what: str, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        self._call(what, lambda c: [c.log_batch(self.run_id, metrics=chunk)
                                    for chunk in _chunks(metrics, METRICS_PER_CALL)])

    def _probe(self) -> None:
        """A server that does not answer is said now, not after the client's retries (4 minutes by default)."""
        if not self.uri.startswith(("http:", "https:")):
            return
        unreachable = (ConnectionError, TimeoutError, socket.gaierror)
        try:
            urllib.request.urlopen(f"{self.uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            pass  # it answered (a proxy's login page, a server without /health): the client will say the rest
        except (urllib.error.URLError, *unreachable) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, unreachable):  # not a TLS question, which the client may be set up to answer
                raise DetftError(f"MLflow server {self.uri} ({self.why}) does not answer: {reason}") from None

    def _experiment(self) -> str:
        name = os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT
        client = self.client()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name)
        except Exception:  # another run created it meanwhile
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _create(self, run: Run, info: RunInfo, dataset: Dataset) -> None:
        from mlflow.entities import Param

        self.experiment_id = self._experiment()
        self.run_id = self.client().create_run(self.experiment_id, run_name=run.folder.name,
                                               tags=tags_of(run, info, dataset)).info.run_id
        params = [Param(k, v) for k, v in params_of(info).items()]
        for chunk in _chunks(params, PARAMS_PER_CALL):
            self.client().log_batch(self.run_id, params=chunk)

    def _reopen(self, run: Run, info: RunInfo, dataset: Dataset) -> None:
        """The recorded MLflow run, running again; params it lacks are added, and a param that changed (only
        ``--epochs`` may, to extend a run) is a ``resume.<name>`` tag, since MLflow params never change."""
        from mlflow.entities import Param, RunTag

        client = self.client()
        try:
            found = client.get_run(self.resume_id)
        except Exception as e:
            raise DetftError(f"{run.tracking_file}: MLflow run {self.resume_id} not found at {self.uri} "
                             f"({type(e).__name__}: {e}); delete the file to resume in a new MLflow run") from None
        self.run_id, self.experiment_id = self.resume_id, found.info.experiment_id
        client.update_run(self.run_id, status="RUNNING")
        logged, params = found.data.params, params_of(info)
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        tags = {**tags_of(run, info, dataset), **{f"resume.{k}": v for k, v in params.items()
                                                  if k in logged and logged[k] != v}}
        client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        for chunk in _chunks(new, PARAMS_PER_CALL):
            client.log_batch(self.run_id, params=chunk)

    def _call(self, what: str, call: Callable[[Any], object], stop: bool = True) -> bool:
        """``call(client)``, True when it went through. A failure is a warning: with ``stop`` (the server, not one
        file, failed) nothing more is sent."""
        if self.run_id is None or self.broken:
            return False
        try:
            call(self.client())
            return True
        except Exception as e:
            self.broken = self.broken or stop
            print(f"warning: MLflow at {self.uri}: could not log {what} ({type(e).__name__}: {e})"
                  + ("; this run is no longer tracked (its folder has everything)" if stop else ""), flush=True)
            return False
