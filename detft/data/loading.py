"""A training config's dataset, read once and split the same way for every family, and for every command
that later evaluates, exports or thresholds the run on the data it trained on."""

from __future__ import annotations

import hashlib
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

MADE_SPLIT = (0.8, 0.2)  # train, val: what a dataset without a validation split is cut into
PSEUDO_SUMMARY = "pseudo.json"  # beside pseudo-labels: their teacher, source, thresholds and counts


class TrainingData(NamedTuple):
    dataset: Dataset
    train: list[ImageRecord]
    val: list[ImageRecord]
    split: dict[str, Any] | None  # how the split was made (run.yaml keeps it), None: the data's own


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


def pseudo_provenance(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` saying where its ``--pseudo-labels`` came from (the unlabelled images and the teacher that
    ``pseudo.json`` names), so run.yaml records it whichever way they were written."""
    summary_path = Path(cfg.pseudo_labels or "") / PSEUDO_SUMMARY
    if cfg.pseudo or not summary_path.is_file():
        return cfg
    summary = load_json(summary_path)
    if not isinstance(summary, dict) or not all(isinstance(summary.get(k), str) for k in ("source", "teacher")):
        raise DetftError(f"{summary_path}: not the summary detft pseudo writes (source and teacher missing)")
    return cfg.replace(pseudo=summary["source"], teacher=summary["teacher"], pseudo_conf=str(summary.get("conf")))


def with_pseudo_labels(ds: Dataset, cfg: TrainConfig, train_split: str) -> Dataset:
    """``ds`` with the run's pseudo-labelled images added to ``train_split`` (classes joined by name; an
    unlabelled image that is also a labelled one, in any split, is left out and reported)."""
    folder = Path(cfg.pseudo_labels or "")
    if not (folder / "annotations").is_dir():
        raise DetftError(f"--pseudo-labels {folder}: not a pseudo-label folder (written by detft pseudo or "
                         "detft train --pseudo)")
    report = Report()
    pseudo = load(folder, "coco", report, min_size=0.0, verify_images=False)
    for im in pseudo.images:
        im.split = train_split
    unknown = sorted({c.name for c in pseudo.categories} - {c.name for c in ds.categories})
    if unknown:
        raise DetftError(f"{folder}: the teacher's classes {', '.join(unknown)} are not classes of {cfg.data or 'the data'}; "
                         "the teacher must be trained on the labelled data")
    merged = merge([ds, pseudo], report, [str(cfg.data or "labelled data"), str(folder)])
    if len(report):
        print(report.summary())
    print(f"training on {len(ds.images_in(train_split))} labelled and {len(merged.images) - len(ds.images)} "
          f"pseudo-labelled images (validation: labelled images only)")
    merged.root, merged.format = ds.root, ds.format
    return merged


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
        train, val = ds.images_in("train"), ds.images_in("val")
    else:
        train, val = ds.images_in(cfg.train_split), ds.images_in(cfg.val_split)
    if cfg.pseudo_labels:  # after the split, into training only: validation never scores a model's own guesses
        ds = with_pseudo_labels(ds, cfg, cfg.train_split if split is None else "train")
        train = ds.images_in(cfg.train_split if split is None else "train")
    if cfg.tiling is not None:  # after the split: the tiles of one image never straddle train and val
        from ..operations.tiling import tile_dataset

        report = Report()
        ds = tile_dataset(ds, cfg.tiling, report)
        print(report.summary())
        train, val = ds.images_in(cfg.train_split if split is None else "train"), \
            ds.images_in(cfg.val_split if split is None else "val")
    if not train:
        raise DetftError(f"no training images in split '{cfg.train_split}' of {src}")
    return TrainingData(ds, train, val, split)
