"""Evaluate a set of detections completely and write what a person needs: eval.json (all numbers),
the detections in COCO results format, PR curves and a confusion matrix; print the tables."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DetftError
from ..util.output import atomic_write_bytes, atomic_write_text
from .cocoeval import IouTypeResult, evaluate
from .confusion import confusion_matrix
from .matching import Overlaps
from .plots import confusion_plot, f1_curves, pr_curves
from .thresholds import f1_thresholds, match
from .tide import error_breakdown, format_breakdown
from .worst import worst_images

EVAL_JSON = "eval.json"
# what training alone writes into a run's eval.json (its overfitting watch; the warnings it gave before the first epoch
# of when its data's number misleads, data/split_checks.py; for YOLO, ultralytics' own numbers for the same weights):
# an evaluation that rewrites the file later replaces the scores and keeps these as training wrote them
TRAINING_SECTIONS = ("overfitting", "warnings", "ultralytics")


@dataclass
class EvalSettings:
    backend: str = "faster"
    max_dets: int = 100
    score_threshold: float = 0.001  # detections below this are not evaluated (COCO practice: keep nearly all)
    confusion_conf: float = 0.25
    confusion_iou: float = 0.5
    target_precision: float | None = None  # thresholds: the lowest reaching this precision instead of the best F1

    def __post_init__(self) -> None:  # checked here once for `detft eval`, Model.evaluate and training
        if self.max_dets <= 0:
            raise DetftError(f"--max-dets must be at least 1, not {self.max_dets}")
        if self.target_precision is not None and not 0 < self.target_precision <= 1:
            raise DetftError(f"--target-precision is a precision in (0, 1], not {self.target_precision}")


def evaluate_all(gt: dict, dets: list[dict], settings: EvalSettings) -> tuple[dict[str, IouTypeResult], dict]:
    """bbox always, segm when both the ground truth and the detections have masks."""
    kept = [d for d in dets if d["score"] >= settings.score_threshold]
    iou_types = ["bbox"]
    if any("segmentation" in a for a in gt.get("annotations", [])) and any("segmentation" in d for d in kept):
        iou_types.append("segm")
    timing: dict[str, float] = {}
    results = {}
    for t in iou_types:
        t0 = time.perf_counter()
        results[t] = evaluate(gt, kept, t, backend=settings.backend, max_dets=settings.max_dets)
        timing[t] = time.perf_counter() - t0
    return results, {"timing_s": timing, "n_detections": len(kept), "n_detections_below_threshold": len(dets) - len(kept)}


@dataclass
class _Extras:
    """What eval.json holds besides COCO's numbers, all from one set of overlaps."""

    matrix: np.ndarray
    cat_ids: list[int]
    thresholds: dict
    curves: dict
    worst: dict
    errors: dict


def _extras(gt: dict, dets: list[dict], kept: list[dict], settings: EvalSettings) -> _Extras:
    shared = Overlaps.of(gt, kept)  # every pair's IoU once, for the confusion matrix, thresholds and TIDE
    matrix, cat_ids = confusion_matrix(gt, dets, settings.confusion_conf, settings.confusion_iou,  # kept holds all
                                       shared=shared if settings.confusion_conf >= settings.score_threshold else None)
    matches = match(gt, kept, shared=shared)
    thresholds = f1_thresholds(gt, matches, settings.target_precision)
    curves = thresholds.pop("curves")
    return _Extras(matrix, cat_ids, thresholds, curves, worst_images(matches, gt, thresholds),
                   error_breakdown(gt, kept, settings.max_dets, shared=shared))


def write_report(out: Path, gt: dict, dets: list[dict], settings: EvalSettings,
                 extra: dict[str, Any] | None = None, dets_file: Path | None = None) -> dict:
    """Evaluate and write eval.json, detections.json and plots into ``out``; returns eval.json's dict.
    ``dets_file``: the results file ``dets`` were read from, copied as detections.json rather than written again.
    The extras are computed in a second thread while COCO's evaluation runs (their array work releases the GIL),
    reading ``gt`` and ``dets`` only."""
    kept = [d for d in dets if d["score"] >= settings.score_threshold]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_extras, gt, dets, kept, settings)
        results, info = evaluate_all(gt, dets, settings)
        x = pending.result()
    names = {c["id"]: c["name"] for c in gt["categories"]}
    doc = {
        "settings": vars(settings), "n_images": len(gt["images"]),
        "n_ground_truth": sum(not a.get("iscrowd", 0) for a in gt["annotations"]), **info,
        "metrics": {t: {"stats": r.stats_dict(), "per_class": r.per_class} for t, r in results.items()},
        "confusion_matrix": {"labels": [names[c] for c in x.cat_ids] + ["background"],
                             "rows_predicted": x.matrix.tolist(), "conf": settings.confusion_conf,
                             "iou": settings.confusion_iou},
        "thresholds": x.thresholds,
        "worst_images": x.worst,
        "errors": x.errors,
        **(extra or {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    if dets_file is not None:
        atomic_write_bytes(out / "detections.json", dets_file.read_bytes())
    else:
        atomic_write_text(out / "detections.json", json.dumps(dets))
    for t, r in results.items():
        pr_curves(r.precision, [names.get(c, str(c)) for c in r.cat_ids], out / f"pr_{t}.png", f"PR curves ({t}, IoU 0.5)")
    confusion_plot(x.matrix, [names[c] for c in x.cat_ids], out / "confusion_matrix.png")
    f1_curves(x.curves, x.thresholds, out / "f1_curve.png")
    atomic_write_text(out / EVAL_JSON, json.dumps(doc, indent=1) + "\n")
    return doc


def format_report(doc: dict) -> str:
    s = doc["settings"]
    lines = [f"{doc['n_images']} images, {doc['n_ground_truth']} ground-truth objects, {doc['n_detections']} detections "
             f"(score >= {s['score_threshold']}, at most {s['max_dets']} per image, backend {s['backend']})"]
    lines += [f"warning: {w['message']}" for w in doc.get("warnings") or []]  # beside the number they qualify
    if doc.get("slicing"):
        sl = doc["slicing"]
        lines.append(f"full-size images predicted in {sl['size']} px windows (overlap {sl['overlap']:g}"
                     f"{', and whole' if sl.get('full') else ''}) and merged")
    if doc.get("tiles"):
        t = doc["tiles"]
        lines.append(f"the same split as {t['images']} tiles of {t['size']} px, the number training tracked (an object on "
                     f"overlapping tiles counts once per tile): " + "  ".join(f"{k} {v:.4f}" for k, v in t["metrics"].items()))
    for t, m in doc["metrics"].items():
        lines.append(f"\n{t}: " + "  ".join(f"{k} {v:.4f}" for k, v in m["stats"].items()))
        width = max([len(r["name"]) for r in m["per_class"]] + [5])
        lines.append(f"  {'class':<{width}} {'gt':>6} {'AP':>7} {'AP50':>7} {'AR':>7}")
        for r in m["per_class"]:
            lines.append(f"  {r['name']:<{width}} {r['gt']:>6} {r['AP']:>7.4f} {r['AP50']:>7.4f} {r['AR']:>7.4f}")
    if doc.get("thresholds"):
        lines.append(format_thresholds(doc["thresholds"]))
    if doc.get("errors"):
        lines.append(format_breakdown(doc["errors"]))
    return "\n".join(lines)


def format_thresholds(t: dict) -> str:
    """The thresholds ``--conf auto`` uses, one line each (bbox, IoU 0.5)."""
    rule = f"lowest reaching precision {t['target_precision']}" if t.get("target_precision") else "best F1"
    lines = [f"\nscore thresholds ({rule}, bbox IoU {t['iou']}; --conf auto uses the per-class ones):"]
    for name, p in [("all classes", t["overall"]), *t["per_class"].items()]:
        lines.append(f"  {name:<20} " + (f"{p['threshold']:.3f}  P {p['precision']:.3f}  R {p['recall']:.3f}  "
                                        f"F1 {p['f1']:.3f}" if p else "none (no detections, no objects, or target not reached)"))
    return "\n".join(lines)


def training_sections(folder: Path) -> dict[str, Any]:
    """The :data:`TRAINING_SECTIONS` of ``folder``'s eval.json, for an evaluation about to rewrite it (``detft eval
    --weights RUN``): re-scoring a run must not erase the record of how it trained, which nothing can recompute.
    A file that does not parse holds nothing to keep."""
    from ..formats.base import load_json

    path = folder / EVAL_JSON
    try:
        doc = load_json(path) if path.is_file() else {}
    except DetftError:
        return {}
    return {k: doc[k] for k in TRAINING_SECTIONS if k in doc} if isinstance(doc, dict) else {}


def load_eval(path: Path) -> dict:
    f = path / EVAL_JSON if path.is_dir() else path
    if not f.is_file():
        raise DetftError(f"no {EVAL_JSON} at {path} (run detft eval first)")
    from ..formats.base import load_json

    doc = load_json(f)
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    if not isinstance(metrics, dict) or not all(isinstance(m, dict) and isinstance(m.get("stats"), dict)
                                                and isinstance(m.get("per_class"), list) for m in metrics.values()):
        raise DetftError(f"{f} is not an eval.json that detft wrote: its 'metrics' are missing or incomplete (run detft eval to make one)")
    return doc


def compare(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """Side-by-side stats and per-class AP of two evaluations, with deltas (b - a)."""
    lines = []
    for t in [t for t in a["metrics"] if t in b["metrics"]]:
        sa, sb = a["metrics"][t]["stats"], b["metrics"][t]["stats"]
        lines.append(f"{t:<10}{name_a[-18:]:>20}{name_b[-18:]:>20}{'delta':>10}")
        for k in sa:
            if k in sb:
                lines.append(f"{k:<10}{sa[k]:>20.4f}{sb[k]:>20.4f}{sb[k] - sa[k]:>+10.4f}")
        pa = {r["name"]: r for r in a["metrics"][t]["per_class"]}
        pb = {r["name"]: r for r in b["metrics"][t]["per_class"]}
        lines.append(f"per-class AP ({t})")
        for name in [n for n in pa if n in pb]:
            lines.append(f"  {name[:18]:<18}{pa[name]['AP']:>10.4f}{pb[name]['AP']:>20.4f}{pb[name]['AP'] - pa[name]['AP']:>+10.4f}")
        lines.append("")
    if not lines:
        raise DetftError("the two evaluations share no IoU type")
    if "images_per_s" in a and "images_per_s" in b:  # how each was predicted, and how fast
        how = [f"slice {d['slicing']['size']} px, overlap {d['slicing']['overlap']}" + (" + full" if d['slicing']['full'] else "")
               if d.get("slicing") else "whole images" for d in (a, b)]
        lines += [f"{'predicted':<10}{how[0]:>20}{how[1]:>20}",
                  f"{'images/s':<10}{a['images_per_s']:>20.2f}{b['images_per_s']:>20.2f}"
                  f"{b['images_per_s'] - a['images_per_s']:>+10.2f}"]
    return "\n".join(lines).rstrip()
