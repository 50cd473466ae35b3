"""Pseudo-labels, a data step in front of training: a teacher model's detections on unlabelled images, kept where
they reach the teacher's per-class best-F1 thresholds (``--conf auto``; STAC's recipe of a confidence cut on a
teacher trained on the labelled part), written as a COCO dataset with ``pseudo.json`` (teacher, source, thresholds,
counts) beside it.

``detft pseudo`` (``Model.pseudo_label``) writes them to a folder; ``detft train --pseudo-labels FOLDER`` trains on
them beside the labelled data, and ``run.yaml`` records the folder with the teacher and source ``pseudo.json`` names.
It takes no other folder (no valid ``pseudo.json``: an error naming ``detft pseudo``), says what the folder holds, and
counts images deleted since on its training line (all of them deleted: an error).
``detft train --pseudo UNLABELLED`` is the shortcut over the same two steps, writing them into ``RUN/pseudo/``.
Pseudo-labelled images only ever join the training split (data/loading.py): validation, ``detft eval`` and ``--conf
auto`` read the labelled data alone, so no score is computed against a model's own guesses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..annotations.dataset import Dataset
from ..annotations.report import Report
from ..data.loading import PSEUDO_SUMMARY, describe_pseudo
from ..errors import DetftError
from ..inference.predictor import Predictor
from ..util.output import atomic_write_text
from .prelabels import count_by_class, save_labels


@dataclass
class PseudoLabels:
    """What :func:`write_pseudo_labels` wrote: the folder (a COCO dataset), the dataset, and ``pseudo.json``."""

    folder: Path
    dataset: Dataset
    summary: dict[str, Any]


def pseudo_conf(text: str) -> float | str:
    """``--conf`` of a teacher: 'auto' (its per-class best-F1 thresholds) or a score in [0, 1]."""
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


def check_classes(teacher: str | Path, teacher_classes: Iterable[str], data: Path, data_format: str | None = None,
                  images_dir: Path | None = None) -> None:
    """The teacher knows only the classes of the labelled ``data``: checked before it predicts a single image, since
    the labels it writes are joined to the data by class name."""
    from ..operations.convert import load

    classes = {c.name for c in load(data, data_format, Report(), verify_images=False, images_dir=images_dir).categories}
    unknown = sorted(set(teacher_classes) - classes)
    if unknown:
        raise DetftError(f"teacher {teacher}: its classes {', '.join(unknown)} are not classes of {data}; the teacher "
                         "must be trained on the labelled data")


def write_pseudo_labels(predictor: Predictor, teacher: str | Path, source: Path, out: Path, *, conf: float | str,
                        thresholds: dict[str, float], inputs: Sequence[Path] = (),
                        overwrite: bool = False) -> PseudoLabels:
    """``predictor``'s detections on the images of ``source`` written to ``out`` as a COCO dataset, at the thresholds
    it holds (``conf``: "auto" for a teacher's per-class ones; ``thresholds`` by class name), with ``pseudo.json``
    saying where they came from."""
    print(f"pseudo-labelling {source} with {teacher} at --conf {conf}")
    saved = save_labels(predictor, source, "coco", out, overwrite=overwrite, inputs=inputs, model_version=str(teacher))
    counts = count_by_class(saved.dataset)
    summary = {"teacher": str(teacher), "source": str(source), "conf": conf, "thresholds": thresholds,
               "images": len(saved.dataset.images), "detections": counts}
    atomic_write_text(out / PSEUDO_SUMMARY, json.dumps(summary, indent=1))
    print(describe_pseudo(out, summary))
    return PseudoLabels(out, saved.dataset, summary)
