"""A training config's dataset, read once and split the same way for every family."""

from __future__ import annotations

from pathlib import Path

from ..config import EMBEDDED_DATA, TrainConfig
from ..convert import load
from ..dataset import Dataset, ImageRecord
from ..errors import DetftError
from ..report import Report
from ..split import assign_splits


def data_source(cfg: TrainConfig) -> Path:
    return Path(cfg.data) if cfg.data else EMBEDDED_DATA


def load_data(cfg: TrainConfig) -> tuple[Dataset, list[ImageRecord], list[ImageRecord]]:
    """(dataset, train images, val images); without a validation split, a seeded 80/20 split of all images."""
    report = Report()
    src = data_source(cfg)
    ds = load(src, cfg.data_format, report)
    if len(report):
        print(report.summary())
    if not any((im.split or "train") == cfg.val_split for im in ds.images):
        assign_splits(ds, (0.8, 0.2), cfg.splitting_seed)
        print(f"no '{cfg.val_split}' split in {src}: using a seeded 80/20 split of all {len(ds.images)} images")
        train, val = ds.images_in("train"), ds.images_in("val")
    else:
        train, val = ds.images_in(cfg.train_split), ds.images_in(cfg.val_split)
    if not train:
        raise DetftError(f"no training images in split '{cfg.train_split}' of {src}")
    return ds, train, val
