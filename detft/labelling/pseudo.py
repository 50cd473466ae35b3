"""Pseudo-labels (``detft train --pseudo UNLABELLED``): a teacher run's detections on unlabelled images, kept
where they reach the teacher's per-class best-F1 thresholds (``--pseudo-conf auto``; STAC's recipe of a
confidence cut on a teacher trained on the labelled part), trained on beside the labelled data.

They are written once, before training, as a COCO dataset in the run folder (``RUN/pseudo/``, with the teacher,
its thresholds and the counts in ``pseudo.json``); ``run.yaml`` names that folder (``pseudo_labels``) so a resumed
run or a second seed reuses them. Pseudo-labelled images only ever join the training split: validation, ``detft
eval`` and ``--conf auto`` read the labelled data alone, so no score is computed against a model's own guesses."""

from __future__ import annotations

import json
from pathlib import Path

from ..annotations.report import Report
from ..config import TrainConfig
from ..errors import DetftError
from ..inference.predictor import Predictor
from ..runs import Run
from ..util.output import atomic_write_text

FOLDER = "pseudo"
SUMMARY = "pseudo.json"


def teacher_of(cfg: TrainConfig) -> str:
    """The teacher run: ``--teacher``, or ``--weights`` when that is a run or a checkpoint (the student then
    starts from the teacher's weights, as self-training does)."""
    teacher = cfg.teacher or (cfg.weights if cfg.weights and Path(cfg.weights).exists() else None)
    if teacher is None:
        raise DetftError(f"--pseudo {cfg.pseudo}: pseudo-labels need a teacher, a run trained on the labelled data "
                         "(--teacher RUN, or --weights RUN to also start from it)")
    return teacher


def pseudo_conf(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise DetftError(f"--pseudo-conf {text!r}: 'auto' (the teacher's per-class best-F1 thresholds) or a score "
                         "between 0 and 1")
    return value


def check_teacher(cfg: TrainConfig, teacher: Run) -> None:
    """The teacher knows only the data's classes: checked before it predicts a single image, since the labels it
    writes are joined to the data by class name."""
    from ..data.loading import data_source
    from ..operations.convert import load

    data = load(data_source(cfg), cfg.data_format, Report(), verify_images=False,
                images_dir=Path(cfg.images_dir) if cfg.images_dir else None)
    unknown = sorted(set(teacher.info.labels.names) - {c.name for c in data.categories})
    if unknown:
        raise DetftError(f"teacher {teacher.folder}: its classes {', '.join(unknown)} are not classes of "
                         f"{data_source(cfg)}; the teacher must be trained on the labelled data")


def write_pseudo_labels(cfg: TrainConfig, run: Run, teacher: Run, predictor: Predictor) -> TrainConfig:
    """``teacher``'s pseudo-labels on ``cfg.pseudo`` (``predictor``: the teacher at ``--pseudo-conf``) written into
    ``run``; the config that trains on them."""
    from .prelabels import count_by_class, save_labels

    conf = pseudo_conf(cfg.pseudo_conf)
    out = run.folder / FOLDER
    print(f"pseudo-labelling {cfg.pseudo} with {teacher.folder} at --pseudo-conf {cfg.pseudo_conf}")
    saved = save_labels(predictor, Path(cfg.pseudo), "coco", out, overwrite=True)
    counts = count_by_class(saved.dataset)
    summary = {"teacher": str(teacher.weights), "source": str(cfg.pseudo), "conf": cfg.pseudo_conf,
               "thresholds": teacher.thresholds() if conf == "auto" else {n: conf for n in counts},
               "images": len(saved.dataset.images), "detections": counts}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1))
    print(f"pseudo-labels: {len(saved.dataset.images)} images, {sum(counts.values())} detections "
          f"({', '.join(f'{n} {k}' for k, n in counts.items())}) in {out}")
    changes: dict = {"pseudo_labels": str(out)}
    if cfg.weights and Path(cfg.weights).exists() and Run.open(cfg.weights).folder == teacher.folder:
        changes["weights"] = str(teacher.weights)  # the checkpoint itself: what a family's --weights takes
    return cfg.replace(**changes)
