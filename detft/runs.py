"""A training run on disk: the only code that knows where a run keeps its files.

Every family writes the same layout::

    runs/<name>/run.yaml          family, model, task, classes, image size, start weights, config, detft version
    runs/<name>/weights/last.pt   (resume) and weights/best.pt
    runs/<name>/metrics.csv, *.png, eval.json   (a family may add its own files beside them)

Runs written by detft 0.1 still open: YOLO ones kept their metadata in ``detft_meta.json``, R-CNN ones
only inside their checkpoints (which still carry it, so a ``best.pt`` copied elsewhere stays usable)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import TrainConfig
from .errors import DetftError
from .models.labels import LabelMap
from .util.output import atomic_write_text, safe_component
from .version import __version__

RUN_FILE = "run.yaml"
LEGACY_YOLO_META = "detft_meta.json"  # detft 0.1 YOLO runs
LEGACY_ARGS = "args.yaml"  # detft 0.1 R-CNN runs (metadata in the checkpoints), and runs plain ultralytics trained
ULTRALYTICS_EPOCH_LOG = "results.csv"  # a YOLO run's epochs as ultralytics logs them, metrics.csv made from it at the end
CHECKPOINTS = ("best", "last")
TRACKING_FILE = "mlflow.json"  # the MLflow run a tracked run logs to (engine/mlflow_log.py), for --resume


@dataclass
class RunInfo:
    """What detft needs to predict with, evaluate, resume or reproduce a run, whatever its family."""

    family: str  # a key of the family registry: "rcnn", "yolo"
    model: str  # R-CNN: the registered model name; YOLO: the network (yaml/pt) or its start
    task: str  # "detect" | "segment"
    labels: LabelMap
    config: TrainConfig
    imgsz: int | None = None  # the size it was trained at (None: the model's own)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # what the builder needs beyond the classes
    start: str | None = None  # the weights training started from, in words
    parameters: dict[str, int] = field(default_factory=dict)  # {"total": N, "trainable": M} when training began
    split: dict[str, Any] | None = None  # the split training made (data/loading.make_split), None: the data's own
    auto: str | None = None  # what --freeze auto (and the other auto settings) chose and why, as training said it
    detft_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "model": self.model, "task": self.task, "classes": self.labels.to_json(),
                "imgsz": self.imgsz, "model_kwargs": self.model_kwargs, "start": self.start,
                "parameters": self.parameters, "split": self.split, "auto": self.auto,
                "detft_version": self.detft_version,
                "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, d: Any, source: Path | str) -> RunInfo:
        if not isinstance(d, dict):
            raise DetftError(f"{source}: damaged run metadata (expected a mapping, not {type(d).__name__})")
        for key, kind in (("family", str), ("task", str), ("classes", dict), ("config", dict)):
            if not isinstance(d.get(key), kind):
                raise DetftError(f"{source}: damaged run metadata ('{key}' missing or not a {kind.__name__})")
        return cls(family=d["family"], model=str(d.get("model") or d["family"]), task=d["task"],
                   labels=_labels(d["classes"], source), config=TrainConfig.from_dict(d["config"], source),
                   imgsz=_imgsz(d.get("imgsz"), source), model_kwargs=dict(d.get("model_kwargs") or {}),
                   start=d.get("start"), parameters=_parameters(d.get("parameters"), source),
                   split=_split(d.get("split"), source), auto=_text(d.get("auto"), "auto", source),
                   detft_version=str(d.get("detft_version", "?")))


def _split(v: Any, source: Path | str) -> dict[str, Any] | None:
    if v is None:  # the data's own split (or a run written before detft recorded the one it made)
        return None
    if not isinstance(v, dict) or not isinstance(v.get("seed"), int) or isinstance(v.get("seed"), bool):
        raise DetftError(f"{source}: damaged 'split' (a mapping with an integer seed, not {v!r})")
    return dict(v)


def _parameters(v: Any, source: Path | str) -> dict[str, int]:
    if v is None:  # runs written before detft recorded them
        return {}
    if not isinstance(v, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in v.values()):
        raise DetftError(f"{source}: damaged 'parameters' (a mapping of counts, not {v!r})")
    return dict(v)


def _labels(d: Any, source: Path | str) -> LabelMap:
    try:
        labels = LabelMap.from_json(d)
        if len(labels.category_ids) != len(labels.names) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in labels.category_ids):
            raise ValueError("category_ids and names differ in length or ids are not integers")
    except (KeyError, TypeError, ValueError) as e:
        raise DetftError(f"{source}: damaged 'labels' ({e})") from None
    return labels


def _imgsz(v: Any, source: Path | str) -> int | None:
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 32 <= v <= 8192):
        raise DetftError(f"{source}: damaged 'imgsz' (an integer from 32 to 8192, not {v!r})")
    return v


def _text(v: Any, key: str, source: Path | str) -> str | None:
    if v is not None and not isinstance(v, str):
        raise DetftError(f"{source}: damaged '{key}' (a line of text, not {v!r})")
    return v


class Run:
    """A run folder; ``weights`` is the checkpoint chosen when it was opened (best.pt unless a file was named)."""

    def __init__(self, folder: Path, weights: Path | None = None, info: RunInfo | None = None):
        self.folder = Path(folder)
        self.weights = weights or self.checkpoint_path("best")
        self._info = info

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r})"

    # a Run stands for its folder wherever a path is expected: open(run / "eval.json"), Path(run), str(run)
    def __fspath__(self) -> str:
        return str(self.folder)

    def __str__(self) -> str:
        return str(self.folder)

    def __truediv__(self, other: str | Path) -> Path:
        return self.folder / other

    # ---------------------------------------------------------------- layout
    @property
    def run_file(self) -> Path:
        return self.folder / RUN_FILE

    @property
    def weights_dir(self) -> Path:
        return self.folder / "weights"

    @property
    def metrics_csv(self) -> Path:
        return self.folder / "metrics.csv"

    @property
    def tracking_file(self) -> Path:
        """Where a run tracked in MLflow keeps its MLflow run (URI and run id), so ``--resume`` continues that run;
        absent for a run never tracked. Beside run.yaml, not in it: the families rewrite run.yaml from what they
        know, and none of them knows the tracker."""
        return self.folder / TRACKING_FILE

    @property
    def pseudo_labels_dir(self) -> Path:
        """Where ``train --pseudo`` writes the teacher's pseudo-labels (run.yaml's ``pseudo_labels`` names it)."""
        return self.folder / "pseudo"

    def feature_cache_dir(self, rank: int = 0) -> Path:
        """Where a training process spills cached trunk features (emptied when it starts, removed when it ends)."""
        return self.folder / f".feature_cache-rank{rank}"

    def image_cache_dir(self, rank: int = 0) -> Path:
        """Where a training process keeps its decoded images (emptied when it starts, removed when it ends)."""
        return self.folder / f".image_cache-rank{rank}"

    @property
    def inputs(self) -> list[Path]:
        """What a command that reads this run must never write over or into: the run folder when it is one
        (run.yaml, or the checkpoint in its ``weights/``), else the checkpoint file alone (a bare ``best.pt`` in
        a user's folder does not make that folder a run)."""
        is_run = self.run_file.is_file() or (self.folder / LEGACY_YOLO_META).is_file() \
            or self.weights.parent == self.weights_dir
        return [self.folder, self.weights] if is_run else [self.weights]

    def checkpoint_path(self, which: str) -> Path:
        if which not in CHECKPOINTS:
            raise ValueError(which)
        return self.weights_dir / f"{which}.pt"

    def checkpoint(self, which: str) -> Path:
        """An existing best.pt or last.pt, or a named error."""
        path = self.checkpoint_path(which)
        if not path.is_file():
            raise DetftError(f"no {path} (the run has no {which} checkpoint yet)")
        return path

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(cls, project: str | Path, name: str, exist_ok: bool = False) -> Run:
        """A new run folder's place: ``name`` must be one folder name, and an existing run is kept unless
        ``exist_ok``."""
        if safe_component(name, "run name") != name:
            raise DetftError(f"run name {name!r} must be one folder name (no '/', '..' or control characters); "
                             "--project chooses where runs go")
        run = cls(Path(project) / name)
        if run.weights_dir.exists() and not exist_ok:
            raise DetftError(f"{run.folder} already holds a run; use --name, --exist-ok or --resume {run.folder}")
        return run

    @classmethod
    def open(cls, path: str | Path | Run, which: str = "best") -> Run:
        """A run from its folder, or from a checkpoint file inside it (or an R-CNN checkpoint on its own)."""
        path = Path(path)
        if path.is_dir():
            folder, weights = path, cls(path).checkpoint_path(which)
        else:
            folder = path.parent.parent if path.parent.name == "weights" else path.parent
            weights = path
        if not weights.is_file():
            raise DetftError(f"no checkpoint at {weights}")
        return cls(folder, weights)

    def thresholds(self) -> dict[str, float]:
        """Class name -> the score threshold of ``--conf auto``, from the run's last evaluation (eval.json, written
        after training and by ``detft eval``); a class without one gets the threshold chosen for all classes."""
        from .evaluation.report import EVAL_JSON
        from .formats.base import load_json

        path = self.folder / EVAL_JSON
        doc = load_json(path) if path.is_file() else {}
        t = doc.get("thresholds") if isinstance(doc, dict) else None
        if not isinstance(t, dict) or not isinstance(t.get("per_class"), dict):
            raise DetftError(f"--conf auto needs the thresholds of an evaluation, and {path} has none; "
                             f"run: detft eval --weights {self.folder}")
        if not t.get("overall"):
            raise DetftError(f"{path}: no score threshold reaches the target precision {t.get('target_precision')} "
                             f"(or nothing was detected); evaluate again with a lower --target-precision or without")
        return {name: (p or t["overall"])["threshold"] for name, p in t["per_class"].items()}

    def class_ap(self) -> dict[str, float]:
        """Class name -> box AP in the run's last evaluation (eval.json); empty when it was never evaluated."""
        from .evaluation.report import EVAL_JSON
        from .formats.base import load_json

        path = self.folder / EVAL_JSON
        doc = load_json(path) if path.is_file() else {}
        per_class = (((doc.get("metrics") if isinstance(doc, dict) else None) or {}).get("bbox") or {}).get("per_class")
        return {c["name"]: max(0.0, float(c["AP"])) for c in per_class or [] if isinstance(c, dict) and "name" in c}

    # ---------------------------------------------------------------- its record (detft runs)
    def evaluation(self) -> dict[str, Any] | None:
        """eval.json as the run's last evaluation wrote it (the end of training, or ``detft eval``); None before
        one. A file that is not an eval.json is a named error."""
        from .evaluation.report import EVAL_JSON, load_eval

        return load_eval(self.folder) if (self.folder / EVAL_JSON).is_file() else None

    def epoch_rows(self) -> list[dict[str, float | None]]:
        """One row per epoch trained, column -> number (None where blank): metrics.csv, which every family writes
        (R-CNN after each epoch, YOLO when the run ends), else ultralytics' results.csv, a YOLO run's only epoch log
        while it trains; empty before the first epoch."""
        for path in (self.metrics_csv, self.folder / ULTRALYTICS_EPOCH_LOG):
            if path.is_file():
                return _epoch_rows(path)
        return []

    def last_written(self) -> float:
        """When the run last wrote to its record (run.yaml, an epoch log, a checkpoint, eval.json), as a timestamp:
        how a run still training is told from one that stopped (no process writes a lock into the folder)."""
        from .evaluation.report import EVAL_JSON

        files = (self.run_file, self.folder / LEGACY_YOLO_META, self.metrics_csv, self.folder / ULTRALYTICS_EPOCH_LOG,
                 *(self.checkpoint_path(w) for w in CHECKPOINTS), self.folder / EVAL_JSON)
        return max([p.stat().st_mtime for p in files if p.is_file()] or [self.folder.stat().st_mtime])

    @property
    def info(self) -> RunInfo:
        if self._info is None:
            self._info = self._read_info()
        return self._info

    def save_info(self, info: RunInfo) -> None:
        self._info = info
        atomic_write_text(self.run_file, yaml.safe_dump(info.to_dict(), sort_keys=False, allow_unicode=True))

    def _read_info(self) -> RunInfo:
        if self.run_file.is_file():
            from .formats.base import load_yaml

            return RunInfo.from_dict(load_yaml(self.run_file), self.run_file)
        legacy = self.folder / LEGACY_YOLO_META
        if legacy.is_file():
            return _legacy_yolo(legacy)
        return _from_checkpoint(self.weights)


def _legacy_yolo(meta_file: Path) -> RunInfo:
    """A detft 0.1 YOLO run's ``detft_meta.json``."""
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DetftError(f"{meta_file}: damaged run metadata ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), dict) or not isinstance(meta.get("config", {}), dict):
        raise DetftError(f"{meta_file}: damaged run metadata (expected an object with 'labels' and 'config')")
    config = meta.get("config", {})
    start = config["extra"].get("start") if isinstance(config.get("extra"), dict) else None
    return RunInfo(family="yolo", model=str(config.get("model") or "yolo"), task=str(meta.get("task", "detect")),
                   labels=_labels(meta["labels"], meta_file), config=TrainConfig.from_dict(config, meta_file),
                   imgsz=_imgsz(meta.get("imgsz", 640), meta_file), start=start, detft_version="0.1")


FOREIGN = "none: trained outside detft"  # the detft_version of a checkpoint another tool wrote
ULTRALYTICS_TASKS = {"DetectionModel": "detect", "SegmentationModel": "segment"}


def _ultralytics(weights: Path) -> RunInfo | None:
    """What a checkpoint plain ultralytics wrote (``yolo train``'s best.pt) says of itself, read by the inert
    reader, which runs none of the file: its task, class names and training size. None when it is not one."""
    from .models.inert_pickle import Inert, read_pickle

    try:
        root, _ = read_pickle(weights)
    except DetftError:
        return None
    model = (root.get("ema") or root.get("model")) if isinstance(root, dict) else None
    if not isinstance(model, Inert) or not model.qualname.startswith("ultralytics."):
        return None
    kind = model.qualname.rsplit(".", 1)[1]
    if kind not in ULTRALYTICS_TASKS:
        raise DetftError(f"{weights}: an ultralytics {kind}; detft predicts and evaluates "
                         f"{' and '.join(ULTRALYTICS_TASKS)}s")
    names = model.state.get("names") if isinstance(model.state, dict) else None
    names = dict(enumerate(names)) if isinstance(names, list) else names
    if not isinstance(names, dict) or not names or not all(isinstance(k, int) and isinstance(v, str)
                                                           for k, v in names.items()):
        raise DetftError(f"{weights}: an ultralytics checkpoint without its class names (model.names)")
    classes = tuple(names[k] for k in sorted(names))
    args = root.get("train_args") if isinstance(root.get("train_args"), dict) else {}
    imgsz = args.get("imgsz") if isinstance(args.get("imgsz"), int) and args["imgsz"] >= 32 else 640
    return RunInfo(family="yolo", model=weights.name, task=ULTRALYTICS_TASKS[kind],
                   labels=LabelMap(tuple(range(1, len(classes) + 1)), classes, background=False),
                   config=TrainConfig(arch="yolo"), imgsz=imgsz,
                   start=f"ultralytics {root.get('version', '?')} checkpoint", detft_version=FOREIGN)


def _from_checkpoint(weights: Path) -> RunInfo:
    """The metadata an R-CNN checkpoint carries: this version's RunInfo, or detft 0.1's ``meta``; or, for a
    checkpoint plain ultralytics trained, what it says of itself (evaluating a model trained elsewhere with
    detft's evaluator is how tools are compared)."""
    from .engine import checkpoint

    try:
        ckpt = checkpoint.load(weights)
    except DetftError:
        foreign = _ultralytics(weights)
        if foreign is None:
            raise
        return foreign
    meta = ckpt.get("meta")
    if isinstance(meta, dict) and "model_name" in meta:  # detft 0.1
        try:
            config = TrainConfig.from_dict(meta.get("config", {}), weights)
            return RunInfo(family="rcnn", model=meta["model_name"],
                           task="segment" if meta.get("family") == "maskrcnn" else "detect",
                           labels=_labels(meta["labels"], weights), config=config, imgsz=config.imgsz,
                           model_kwargs=dict(meta.get("model_kwargs") or {}), start=config.weights, detft_version="0.1")
        except KeyError as e:
            raise DetftError(f"{weights}: damaged run metadata (no {e})") from None
    return RunInfo.from_dict(meta, weights)


def is_run_folder(folder: Path) -> bool:
    """A folder holding a run: run.yaml, or the record of a detft 0.1 run (detft_meta.json; args.yaml beside a
    checkpoint in weights/, which is also how a run plain ultralytics trained looks)."""
    if (folder / RUN_FILE).is_file() or (folder / LEGACY_YOLO_META).is_file():
        return True
    return (folder / LEGACY_ARGS).is_file() and any((folder / "weights" / f"{w}.pt").is_file() for w in CHECKPOINTS)


def find_runs(root: Path) -> list[Path]:
    """The run folders under ``root`` (``root`` itself when it is one) at any depth, sorted; the inside of a run and
    hidden folders (the YOLO data cache under ``runs/.cache``) are not searched, nor links to folders."""
    root = Path(root)
    if not root.is_dir():
        raise DetftError(f"no folder {root} (runs are found under the --project of detft train, runs/ by default)")
    found = []
    for here, folders, _ in os.walk(root):
        if is_run_folder(Path(here)):
            found.append(Path(here))
            folders.clear()
        else:
            folders[:] = [f for f in folders if not f.startswith(".")]
    return sorted(found)


def training_seconds(rows: list[dict[str, float | None]]) -> float | None:
    """Seconds a run trained, as its epoch log records them (None where it records none): the sum of the R-CNN
    loop's ``time_s`` (each epoch's training steps), or ultralytics' ``time`` (seconds since the process began
    training, validation included; a resumed run starts that clock again, so each stretch counts to its last row)."""
    steps = [t for r in rows if (t := r.get("time_s")) is not None]
    if rows and len(steps) == len(rows):
        return sum(steps)
    clock = [t for r in rows if (t := r.get("time")) is not None]
    if not rows or len(clock) < len(rows):
        return None
    return sum(a for a, b in zip(clock, clock[1:]) if b < a) + clock[-1]


def _epoch_rows(path: Path) -> list[dict[str, float | None]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DetftError(f"{path}: damaged epoch log ({e})") from None
    parsed = []
    for n, row in enumerate(rows, 2):
        try:
            parsed.append({k.strip(): float(v) if v not in ("", None) else None for k, v in row.items() if k})
        except (TypeError, ValueError):
            raise DetftError(f"{path} (line {n}): damaged epoch log (a value that is not a number)") from None
    if any(r.get("epoch") is None for r in parsed):
        raise DetftError(f"{path}: damaged epoch log (a row without its epoch)")
    return parsed
