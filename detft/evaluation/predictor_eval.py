"""The one predict-then-score path: training's per-epoch validation, ``detft eval``, ``Model.evaluate``
and the benchmark all call :func:`evaluate_predictor`, so their numbers can be compared."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..annotations.dataset import Dataset, ImageRecord
from ..errors import DetftError
from ..inference.predictor import Predictor, predict_records
from ..inference.sliced import SlicedPredictor
from .groundtruth import coco_groundtruth, to_results
from .report import EvalSettings, evaluate_all, write_report
from .worst import worst_grid


@dataclass
class Evaluation:
    metrics: dict[str, float]  # bbox_AP, bbox_AP50 (and segm_*)
    results: list[dict]  # COCO results, image ids 1..N in the order of the evaluated images
    doc: dict[str, Any] | None = None  # eval.json's content when a report was written
    images: int = 0  # how many images were evaluated


def evaluate_predictor(predictor: Predictor, dataset: Dataset, split: str | list[ImageRecord], settings: EvalSettings,
                       out: Path | None = None, extra: dict[str, Any] | None = None,
                       every: float | None = None) -> Evaluation:
    """Score ``predictor`` on a split of ``dataset`` (or a list of its images) with detft's COCO evaluator.

    Classes are matched by name, so a model evaluates on the same classes written in another format.
    With ``out`` the full report (eval.json, detections.json, PR curves, confusion matrix) is written there.
    ``every``: the seconds between progress lines in a log (a training's epochs say theirs less often)."""
    images = dataset.images_in(split) if isinstance(split, str) else split
    name = split if isinstance(split, str) else "val"
    if not images:
        raise DetftError(f"no images in split {name!r} (splits: {', '.join(dataset.splits())})")
    model_names = list(predictor.labels.names)
    data_names = [c.name for c in dataset.sorted_categories()]
    if model_names != data_names:
        raise DetftError(f"the model's classes {model_names} differ from the dataset's {data_names}")
    started = time.perf_counter()
    dets = predict_records(predictor, images, f"eval {name}", every)
    seconds = time.perf_counter() - started
    speed = {"predict_s": round(seconds, 3), "images_per_s": round(len(images) / max(seconds, 1e-9), 3)}
    if isinstance(predictor, SlicedPredictor):
        speed["slicing"] = asdict(predictor.slicing)
    results = to_results(dataset, dets, predictor.labels.names_by_category())
    gt = coco_groundtruth(dataset, images)
    if out is None:
        scored, _ = evaluate_all(gt, results, settings)
        stats = {t: r.stats_dict() for t, r in scored.items()}
        doc = None
    else:
        doc = write_report(out, gt, results, settings, extra={"split": name, **(extra or {}), **speed, "out": str(out)})
        worst_grid(images, doc["worst_images"], results, {c["id"]: c["name"] for c in gt["categories"]},
                   out / "worst_images.png")
        stats = {t: m["stats"] for t, m in doc["metrics"].items()}
    metrics = {}
    for t, s in stats.items():
        metrics[f"{t}_AP"], metrics[f"{t}_AP50"] = s["AP"], s["AP50"]
    return Evaluation(metrics, results, doc, len(images))
