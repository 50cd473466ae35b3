"""``detft runs``: every run under a folder as one table, and two or more runs side by side (the config keys that
differ, then their scores), so ten runs are compared without opening ten folders.

What a run holds is read through :mod:`detft.runs`, the one module that knows a run's files; this module decides
what a row says (a status, a best epoch) and prints it. A run folder that cannot be read is a row that says why,
never an error that hides the other runs."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from .engine.metrics import fitness_key
from .errors import DetftError
from .runs import FOREIGN, Run, RunInfo, find_runs, is_run_folder, training_seconds
from .util.progress import duration

QUIET_S = 600.0  # a run without eval.json that wrote nothing for longer than this (and 3 epochs' time) stopped
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # the COCO stats compared, of each IoU type eval.json holds
IOU_TYPES = ("bbox", "segm")
WIDE = 40  # characters of a text cell (start, data; a compared value: 2x) before its middle is cut


@dataclass
class RunRow:
    """One run of ``detft runs``; None where the run does not record it (or could not be read: ``status``)."""

    folder: Path
    name: str  # its path under the folder listed
    family: str | None = None
    task: str | None = None
    model: str | None = None
    start: str | None = None  # the weights training started from, in words
    data: str | None = None
    epochs_done: int | None = None
    epochs_planned: int | None = None  # None under a --time-budget, which refits the count as it goes
    time_budget_min: float | None = None
    time_s: float | None = None  # as the epoch log records it (runs.training_seconds)
    bbox_AP: float | None = None  # the last evaluation's (eval.json)
    segm_AP: float | None = None
    best_epoch: int | None = None  # the epoch of the highest val AP in the epoch log: best.pt's
    status: str = "?"  # finished | running | stopped | failed | damaged: <why>
    modified: float = 0.0  # when the run last wrote to its record

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "folder": str(self.folder),
                "modified": datetime.fromtimestamp(self.modified).isoformat(timespec="seconds")}

    def cells(self) -> dict[str, str]:
        """The table's text, column -> cell."""
        if self.start and self.model and self.model not in self.start:
            start = f"{self.model} ({self.start})"
        else:  # a YOLO start says its network ("yolov8n.yaml from random init")
            start = self.start or self.model or ""
        if self.epochs_done is None:
            epochs = ""
        elif self.time_budget_min is not None:
            epochs = f"{self.epochs_done} ({self.time_budget_min:g} min)"
        else:
            epochs = f"{self.epochs_done}/{self.epochs_planned}" if self.epochs_planned else str(self.epochs_done)
        return {"name": self.name, "family": self.family or "", "start": _cut(start), "data": _cut(self.data or ""),
                "epochs": epochs, "time": duration(self.time_s) if self.time_s is not None else "",
                "bbox AP": _score(self.bbox_AP), "segm AP": _score(self.segm_AP),
                "best": str(self.best_epoch or ""), "status": self.status}


def _cut(text: str, width: int = WIDE) -> str:
    """``text`` in ``width`` characters, its middle left out: a path keeps its root and its last folders."""
    if len(text) <= width:
        return text
    head = (width - 3) // 2
    return text[:head] + "..." + text[len(text) - (width - 3 - head):]


def _score(ap: float | None) -> str:
    """An AP to 4 places; ``-`` for COCO's -1 (nothing to score: no object of that kind in the split)."""
    return "" if ap is None else "-" if ap < 0 else f"{ap:.4f}"


def read_rows(root: Path, now: float | None = None) -> list[RunRow]:
    """A row for each run folder under ``root`` (:func:`detft.runs.find_runs`), in path order, named by its path
    under ``root``."""
    now = time.time() if now is None else now
    return [read_row(folder, folder.relative_to(root).as_posix() if folder != root else folder.name, now)
            for folder in find_runs(root)]


def read_row(folder: Path, name: str, now: float) -> RunRow:
    """What the run in ``folder`` records. Each part (run.yaml, the epoch log, eval.json) is read on its own, so a
    damaged one leaves the others' columns filled and names itself in the status."""
    run = Run(folder)
    row = RunRow(folder, name)
    damage: list[str] = []

    def reading(part: Callable[[], None]) -> None:
        try:
            part()
        except (DetftError, OSError) as e:
            damage.append(str(e))

    def info() -> None:
        i = run.info
        cfg = i.config
        row.family, row.task, row.model, row.start = i.family, i.task, i.model, i.start
        row.data = cfg.data or (None if i.detft_version == FOREIGN else "(embedded shapes)")
        row.time_budget_min = cfg.time_budget
        row.epochs_planned = None if cfg.time_budget else cfg.epochs

    def epochs() -> None:
        rows = run.epoch_rows()
        row.epochs_done = int(max(r["epoch"] or 0 for r in rows)) if rows else 0
        row.time_s = training_seconds(rows)
        row.best_epoch = best_epoch(rows)

    evaluated = False

    def scores() -> None:
        nonlocal evaluated
        doc = run.evaluation()
        if doc is not None:
            evaluated = True
            row.bbox_AP, row.segm_AP = (_stat(doc, t, "AP") for t in IOU_TYPES)

    def modified() -> None:
        row.modified = run.last_written()

    for part in (info, epochs, scores, modified):
        reading(part)
    row.status = f"damaged: {damage[0]}" if damage else \
        status(row, evaluated, run.checkpoint_path("last").is_file(), now)
    return row


def status(row: RunRow, evaluated: bool, resumable: bool, now: float) -> str:
    """finished: it has an evaluation (eval.json, written after the last epoch); else running while it writes (within
    :data:`QUIET_S`, or 3 epochs' time if that is longer); else stopped with a last.pt to resume from, or failed
    before its first epoch ended."""
    if evaluated:
        return "finished"
    per_epoch = row.time_s / row.epochs_done if row.time_s and row.epochs_done else 0.0
    if now - row.modified < max(QUIET_S, 3 * per_epoch):
        return "running"
    return "stopped" if resumable else "failed"


def best_epoch(rows: list[dict[str, float | None]]) -> int | None:
    """The epoch with the highest val AP the run was judged by (:func:`detft.engine.metrics.fitness_key`: segm for
    masks, ultralytics' own for a YOLO run's epochs), the first of equals, as best.pt keeps it; None without one."""
    key = fitness_key(rows)
    scored = [(r[key], int(r["epoch"] or 0)) for r in rows if key and r.get(key) is not None and r[key] >= 0]
    return max(scored, key=lambda p: (p[0], -p[1]))[1] if scored else None


def _stat(doc: dict[str, Any], iou_type: str, name: str) -> float | None:
    value = doc["metrics"].get(iou_type, {}).get("stats", {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None


# ---------------------------------------------------------------- sorting and printing the table
SORTS: dict[str, tuple[Callable[[RunRow], Any], bool]] = {  # column -> (its value, descending)
    "newest": (lambda r: r.modified, True), "name": (lambda r: r.name, False), "family": (lambda r: r.family, False),
    "start": (lambda r: r.cells()["start"] or None, False), "data": (lambda r: r.data, False),
    "epochs": (lambda r: r.epochs_done, True), "time": (lambda r: r.time_s, True), "bbox": (lambda r: r.bbox_AP, True),
    "segm": (lambda r: r.segm_AP, True), "best": (lambda r: r.best_epoch, True), "status": (lambda r: r.status, False),
}


def sort_rows(rows: list[RunRow], by: str = "newest") -> list[RunRow]:
    """``rows`` ordered by a column of :data:`SORTS`: numbers from the highest, text from A, blanks last."""
    if by not in SORTS:
        raise DetftError(f"--sort {by!r}: one of {', '.join(SORTS)}")
    value, descending = SORTS[by]
    known = [r for r in rows if value(r) is not None]
    return sorted(known, key=value, reverse=descending) + [r for r in rows if value(r) is None]


def format_table(rows: list[RunRow], root: Path) -> str:
    if not rows:
        return f"no runs under {root} (a run is a folder with run.yaml, as detft train writes)"
    cells = [r.cells() for r in rows]
    columns = list(cells[0])
    widths = {c: max(len(c), *(len(row[c]) for row in cells)) for c in columns}
    right = {"epochs", "time", "bbox AP", "segm AP", "best"}

    def line(row: dict[str, str]) -> str:
        return "  ".join(row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]) for c in columns).rstrip()

    return "\n".join([line({c: c for c in columns}), *(line(row) for row in cells)])


# ---------------------------------------------------------------- comparing runs
MISSING = object()  # a key one run has and another lacks: a blank cell


@dataclass
class Comparison:
    """Runs side by side: ``config`` key -> one value per run (every key, or those that differ), ``metrics`` row
    label -> one number per run (None: not recorded), ``per_class`` IoU type -> class -> AP per run (None: the class
    is not in that run's evaluation)."""

    runs: list[RunRow]
    all_keys: bool = False  # config holds every key, not only those that differ
    config: dict[str, list[Any]] = field(default_factory=dict)
    metrics: dict[str, list[float | None]] = field(default_factory=dict)
    per_class: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs],
                "config": {k: [None if v is MISSING else v for v in vs] for k, vs in self.config.items()},
                "metrics": self.metrics, "per_class": self.per_class}


def resolve(ref: str | Path, root: Path) -> Path:
    """A run named on the command line: its folder, or its name under ``root``."""
    for folder in (Path(ref), root / ref):
        if folder.is_dir() and is_run_folder(folder):
            return folder
    raise DetftError(f"{ref}: not a run folder, nor a run under {root} (detft runs {root} lists them)")


def compare(refs: list[str | Path], root: Path, all_keys: bool = False) -> Comparison:
    """The runs ``refs`` name (:func:`resolve`) side by side, each named as given. Each must read whole: a damaged
    one is a named error here, as comparing with it would compare with blanks."""
    if len(refs) < 2:
        raise DetftError("detft runs compare A B [C ...]: two runs or more")
    now = time.time()
    rows = [read_row(resolve(ref, root), str(ref), now) for ref in refs]
    for row in rows:
        if row.status.startswith("damaged"):
            raise DetftError(f"{row.name} cannot be compared: {row.status}")
    runs = [Run(row.folder) for row in rows]
    keys = [flatten(run.info) for run in runs]
    names = list(dict.fromkeys(k for flat in keys for k in flat))
    config = {k: [flat.get(k, MISSING) for flat in keys] for k in names}
    docs = [run.evaluation() or {"metrics": {}} for run in runs]
    comparison = Comparison(rows, all_keys, {k: vs for k, vs in config.items() if all_keys or _differ(vs)})
    for t in IOU_TYPES:
        if any(t in doc["metrics"] for doc in docs):
            comparison.metrics.update({f"{t} {s}": [_stat(doc, t, s) for doc in docs] for s in STATS})
            per_run = [{c["name"]: float(c["AP"]) for c in doc["metrics"].get(t, {}).get("per_class", [])
                        if isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("AP"), (int, float))}
                       for doc in docs]
            classes = list(dict.fromkeys(name for aps in per_run for name in aps))
            comparison.per_class[t] = {c: [aps.get(c) for aps in per_run] for c in classes}
    comparison.metrics.update({"best epoch": [r.best_epoch for r in rows], "epochs": [r.epochs_done for r in rows],
                               "time_s": [r.time_s for r in rows]})
    return comparison


def flatten(info: RunInfo) -> dict[str, Any]:
    """run.yaml as dotted keys (``config.lr``, ``classes.names``), the values compared."""
    flat: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            flat[prefix] = value

    walk(info.to_dict(), "")
    return flat


def _differ(values: list[Any]) -> bool:
    return any(v != values[0] for v in values[1:])  # MISSING equals itself alone


def format_comparison(c: Comparison) -> str:
    names = [r.name for r in c.runs]
    lines = [f"config ({'every key' if c.all_keys else 'the keys that differ'}):"]
    table = [[k, *(_value(v) for v in vs)] for k, vs in c.config.items()] or [["(none differ)", *([""] * len(names))]]
    lines += _aligned([["", *names], *table], numbers=False)
    lines.append("\nmetrics:")
    table = [[LABELS.get(k, k), *(_number(k, v) for v in vs)] for k, vs in c.metrics.items()]
    lines += _aligned([["", *names], *table])
    for t, classes in c.per_class.items():
        lines.append(f"\nper-class {t} AP:")
        lines += _aligned([["", *names], *([name, *(_score(v) for v in vs)] for name, vs in classes.items())])
    return "\n".join(lines)


LABELS = {"time_s": "time"}  # a metric's row label where its key says its unit


def _value(v: Any) -> str:
    if v is MISSING:
        return ""
    if v is None:
        return "-"
    return _cut(",".join(map(str, v)) if isinstance(v, list) else str(v), 2 * WIDE)


def _number(label: str, v: float | None) -> str:
    if v is None:
        return ""
    if label == "time_s":
        return duration(v)
    if label in ("best epoch", "epochs"):
        return str(int(v))
    return _score(v)


def _aligned(table: list[list[str]], numbers: bool = True) -> list[str]:
    """Rows of cells in columns: the first (labels) to the left, the rest to the right (``numbers``) or left."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join([row[0].ljust(widths[0]), *(cell.rjust(w) if numbers else cell.ljust(w)
                                                  for cell, w in zip(row[1:], widths[1:]))]).rstrip() for row in table]
