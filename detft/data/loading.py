"""A training config's dataset, read once and split the same way for every family, and for every command
that later evaluates, exports or thresholds the run on the data it trained on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple

from ..annotations.dataset import Dataset, ImageRecord
from ..annotations.report import Report
from ..config import EMBEDDED_DATA, TrainConfig
from ..errors import DetftError
from ..formats.base import load_json
from ..operations.convert import load
from ..operations.merging import merge
from ..operations.split import assign_splits
from .split_checks import SplitWarning, check_splits

MADE_SPLIT = (0.8, 0.2)  # train, val: what a dataset without a validation split is cut into
PSEUDO_SUMMARY = "pseudo.json"  # beside pseudo-labels: their teacher, source, thresholds and counts


class TrainingData(NamedTuple):
    dataset: Dataset
    train: list[ImageRecord]
    val: list[ImageRecord]
    split: dict[str, Any] | None  # how the split was made (run.yaml keeps it), None: the data's own
    warnings: list[SplitWarning]  # when the val number will mislead: printed before training, kept in eval.json


def data_source(cfg: TrainConfig) -> Path:
    return Path(cfg.data) if cfg.data else EMBEDDED_DATA


def fingerprint(ds: Dataset) -> str:
    """Which images a dataset holds (names and sizes): the seeded split is a function of exactly this."""
    h = hashlib.sha256()
    for im in sorted(ds.images, key=lambda im: im.file_name):
        h.update(f"{im.file_name}|{im.width}|{im.height}\n".encode("utf-8", "surrogateescape"))  # names as on disk
    return h.hexdigest()[:16]


def make_split(ds: Dataset, seed: int, val_split: str = "val") -> dict[str, Any]:
    """The seeded 80/20 split of every image, applied to ``ds``; returns its record for run.yaml."""
    assign_splits(ds, MADE_SPLIT, seed)
    return {"rule": "seeded 80/20 of all images", "seed": seed, "images": len(ds.images),
            "val_images": len(ds.images_in("val")), "fingerprint": fingerprint(ds), "val_split": val_split}


def reuse_split(ds: Dataset, record: dict[str, Any] | None, source: Path | str) -> None:
    """Cut ``ds`` as the run it is evaluated for was cut, when training made the split itself (the data has no
    validation split of its own); says so, and says clearly when the images are not the ones it trained on."""
    val_split = (record or {}).get("val_split", "val")
    if not record or val_split in ds.splits():
        return
    made = make_split(ds, int(record["seed"]), val_split)
    if made["fingerprint"] == record.get("fingerprint"):
        print(f"{source} has no validation split: using the run's own ({record['rule']}, seed {record['seed']}: "
              f"{made['val_images']} val images, as in training)")
    else:
        print(f"WARNING: {source} is not the data this run trained on ({record.get('images')} images then, "
              f"{made['images']} now, or renamed/resized): its {record['rule']} (seed {record['seed']}) is made anew, "
              "so the val images differ from the ones training validated on and may include images it trained on")


def pseudo_summary(folder: Path) -> dict[str, Any]:
    """``folder``'s ``pseudo.json``, checked: ``--pseudo-labels`` takes only what ``detft pseudo`` wrote, since
    run.yaml records the folder as pseudo-labels with the teacher and images it names; any other dataset would be
    trained on and recorded as a teacher's guesses."""
    path = folder / PSEUDO_SUMMARY
    make = ("make one with: detft pseudo --weights TEACHER_RUN --source UNLABELLED_IMAGES --out FOLDER (or train "
            "with --pseudo UNLABELLED_IMAGES); other labelled data joins with detft merge")
    if not path.is_file():
        raise DetftError(f"--pseudo-labels {folder}: not a pseudo-label folder (no {PSEUDO_SUMMARY}, the summary "
                         f"detft pseudo writes beside its labels); {make}")
    summary = load_json(path)
    if not (isinstance(summary, dict) and all(isinstance(summary.get(k), str) for k in ("source", "teacher"))
            and isinstance(summary.get("images"), int) and isinstance(summary.get("detections"), dict)
            and all(isinstance(n, int) for n in summary["detections"].values())):
        raise DetftError(f"{path}: not the summary detft pseudo writes (teacher, source, images or detections "
                         f"missing); {make}")
    return summary


def describe_pseudo(folder: Path, summary: dict[str, Any]) -> str:
    """One line of what a pseudo-label folder holds: its images and detections, and whose they are."""
    counts = summary["detections"]
    return (f"pseudo-labels {folder}: {summary['images']} images of {summary['source']}, {sum(counts.values())} "
            f"detections ({', '.join(f'{n} {k}' for k, n in counts.items())}) by teacher {summary['teacher']} at "
            f"--conf {summary.get('conf')}")


def pseudo_provenance(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` saying where its ``--pseudo-labels`` came from (the unlabelled images and the teacher that
    ``pseudo.json`` names), so run.yaml records it whichever way they were written; a folder detft pseudo did not
    write is refused here, before a run folder is made."""
    if not cfg.pseudo_labels:
        return cfg
    summary = pseudo_summary(Path(cfg.pseudo_labels))
    if cfg.pseudo:
        return cfg
    return cfg.replace(pseudo=summary["source"], teacher=summary["teacher"], pseudo_conf=str(summary.get("conf")))


def with_pseudo_labels(ds: Dataset, cfg: TrainConfig, train_split: str) -> Dataset:
    """``ds`` with the run's pseudo-labelled images added to ``train_split`` (classes joined by name; an
    unlabelled image that is also a labelled one, in any split, is left out and reported). Images deleted since
    ``detft pseudo`` ran are counted on the training line; all of them gone is an error."""
    folder = Path(cfg.pseudo_labels or "")
    print(describe_pseudo(folder, pseudo_summary(folder)))
    report = Report()
    pseudo = load(folder, "coco", report, min_size=0.0, verify_images=False)
    missing = [im.file_name for im in pseudo.images if im.path is None and im.data is None]
    if missing and len(missing) == len(pseudo.images):
        raise DetftError(f"--pseudo-labels {folder}: all {len(missing)} of its images are missing (e.g. "
                         f"{missing[0]}): the unlabelled images were moved or deleted since detft pseudo ran")
    listed = len(pseudo.images)
    pseudo.images = [im for im in pseudo.images if im.path is not None or im.data is not None]
    for im in pseudo.images:
        im.split = train_split
    unknown = sorted({c.name for c in pseudo.categories} - {c.name for c in ds.categories})
    if unknown:
        raise DetftError(f"{folder}: the teacher's classes {', '.join(unknown)} are not classes of {cfg.data or 'the data'}; "
                         "the teacher must be trained on the labelled data")
    merged = merge([ds, pseudo], report, [str(cfg.data or "labelled data"), str(folder)])
    if len(report):
        print(report.summary())
    gone = f" ({listed} listed in {folder}, {len(missing)} missing, e.g. {missing[0]})" if missing else ""
    print(f"training on {len(ds.images_in(train_split))} labelled and {len(merged.images) - len(ds.images)} "
          f"pseudo-labelled images{gone} (validation: labelled images only)")
    merged.root, merged.format = ds.root, ds.format
    return merged


def warn_about_splits(ds: Dataset, train: list[ImageRecord], val: list[ImageRecord], train_split: str,
                      val_split: str) -> list[SplitWarning]:
    """:func:`.split_checks.check_splits` for training on ``train``, scoring ``val`` and any other split the data has
    (a test split), each printed as a ``warning:`` line now, before anything trains. On the whole images, before
    tiling (a tile is no new image), and by the first process alone under torchrun (it writes eval.json)."""
    if not train or os.environ.get("RANK", "0") != "0":
        return []
    scored = {val_split: val} if val else {}
    scored.update({s: ds.images_in(s) for s in ds.splits() if s not in (train_split, val_split)})
    warnings = check_splits(ds.categories, train, scored, train_split)
    for w in warnings:
        print(f"warning: {w['message']}", flush=True)
    return warnings


def load_data(cfg: TrainConfig) -> TrainingData:
    """The dataset with its train and val images; without a validation split, a seeded 80/20 split of all images."""
    report = Report()
    src = data_source(cfg)
    ds = load(src, cfg.data_format, report, images_dir=Path(cfg.images_dir) if cfg.images_dir else None)
    if len(report) or report.notes:  # the notes say how the images were found (the pairing, split folders)
        print(report.summary())
    split = None
    if not any((im.split or "train") == cfg.val_split for im in ds.images):
        split = make_split(ds, cfg.splitting_seed, cfg.val_split)
        print(f"no '{cfg.val_split}' split in {src}: using a seeded 80/20 split of all {len(ds.images)} images "
              "(kept in run.yaml: eval, export and --conf auto reuse it)")
    train_split, val_split = (cfg.train_split, cfg.val_split) if split is None else ("train", "val")
    train, val = ds.images_in(train_split), ds.images_in(val_split)
    if cfg.pseudo_labels:  # after the split, into training only: validation never scores a model's own guesses
        ds = with_pseudo_labels(ds, cfg, train_split)
        train = ds.images_in(train_split)
    warnings = warn_about_splits(ds, train, val, train_split, val_split)
    if cfg.tiling is not None:  # after the split: the tiles of one image never straddle train and val
        from ..operations.tiling import tile_dataset

        report = Report()
        ds = tile_dataset(ds, cfg.tiling, report)
        print(report.summary())
        train, val = ds.images_in(train_split), ds.images_in(val_split)
    if not train:
        raise DetftError(f"no training images in split '{cfg.train_split}' of {src}")
    return TrainingData(ds, train, val, split, warnings)
