"""Warnings before training of when the val number will mislead (detft/data/split_checks.py): classes scored but
never trained, too few training objects, images in two splits, near-identical images, a split too small to tell
runs apart; printed before the first epoch and kept in eval.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import config, make_image, yolo_config
from PIL import Image

import detft
from detft.annotations.dataset import Annotation, Category, ImageRecord
from detft.cli import main
from detft.config import TrainConfig
from detft.data import split_checks
from detft.data.loading import load_data
from detft.data.split_checks import check_splits

SHIP_CLASSES = ["ship", "tanker", "tug", "ferry", "yacht"]
BOX = (4.0, 4.0, 20.0, 20.0)


def roboflow_export(root: Path, splits: dict[str, list[list[int]]], size: int = 96) -> Path:
    """A YOLO export laid out as Roboflow publishes one (data.yaml; train/, valid/ with images/ and labels/); each
    image given as its objects' class indices, boxes on a grid, pixels distinct noise."""
    root.mkdir(parents=True)
    (root / "data.yaml").write_text(f"train: train/images\nval: valid/images\nnc: {len(SHIP_CLASSES)}\n"
                                    f"names: {SHIP_CLASSES}\n")
    seed = 0
    for split, images in splits.items():
        (root / split / "labels").mkdir(parents=True)
        for k, classes in enumerate(images):
            seed += 1
            make_image(root / split / "images" / f"{split}{k:02d}.jpg", size, size, seed=seed)
            rows = [f"{c} {0.15 + 0.23 * (j % 4):.2f} {0.15 + 0.23 * (j // 4):.2f} 0.18 0.18"
                    for j, c in enumerate(classes)]
            (root / split / "labels" / f"{split}{k:02d}.txt").write_text("\n".join(rows) + "\n")
    return root


def ships_like(root: Path) -> Path:
    """The published ships export's trouble, small: training holds only ships, val scores 5 classes (22 objects)."""
    return roboflow_export(root, {"train": [[0, 0]] * 12,
                                  "valid": [[0] * 6 + [1], [1] * 6, [2, 2, 2, 2, 3, 3], [3, 4, 4]]})


UNTRAINED = ("val: 4 of the 5 classes it scores have no training object: the model never saw one, so each scores AP "
             "about 0, and the mean AP over classes cannot reach much above 0.20: tanker (7 in val), tug (4 in val), "
             "ferry (3 in val), yacht (2 in val)")


@pytest.mark.parametrize("family", ["rcnn", "yolo"])
def test_val_classes_with_no_training_object_warn_before_the_first_epoch_and_stay_in_eval_json(
        tmp_path: Path, capsys, family: str):
    if family == "yolo":
        pytest.importorskip("ultralytics", reason="ultralytics is not installed")
    data = ships_like(tmp_path / "ships")
    cfg = config(data, tmp_path) if family == "rcnn" else \
        yolo_config(tmp_path, "yolov8n.yaml", data=str(data), epochs=1, augment="none")
    run = detft.train(cfg)
    out = capsys.readouterr().out.splitlines()
    assert f"warning: {UNTRAINED}" in out
    training_starts = "epoch 1/1" if family == "rcnn" else "start: "  # YOLO: the start is said, then ultralytics trains
    first_epoch = next(i for i, line in enumerate(out) if line.startswith(training_starts))
    assert out.index(f"warning: {UNTRAINED}") < first_epoch
    assert out.count(f"warning: {UNTRAINED}") == 2  # and again beside the final numbers
    warnings = json.loads((run.folder / "eval.json").read_text())["warnings"]
    assert warnings == [{"kind": "untrained_classes", "split": "val", "message": UNTRAINED, "items": [
        {"class": name, "objects": n, "training_objects": 0}
        for name, n in [("tanker", 7), ("tug", 4), ("ferry", 3), ("yacht", 2)]]}]
    if family == "rcnn":  # detft eval rewrites the scores and keeps what training warned of, and says it again
        assert main(["eval", "--weights", str(run.folder), "--device", "cpu"]) == 0
        assert f"warning: {UNTRAINED}" in capsys.readouterr().out
        assert json.loads((run.folder / "eval.json").read_text())["warnings"] == warnings


def test_images_in_two_splits_and_near_identical_ones_are_named(tmp_path: Path):
    def image(split: str, name: str, seed: int, objects: int) -> ImageRecord:
        path = make_image(tmp_path / split / name, 64, 48, seed=seed)
        return ImageRecord(name, 64, 48, path=path, split=split, annotations=[Annotation(1, BOX)] * objects)

    train = [image("train", f"t{k}.jpg", k, 2) for k in range(6)]
    val = [image("val", f"v{k}.jpg", 100 + k, 5) for k in range(6)]
    shutil.copy(train[0].path, val[0].path)  # the same file under another name
    Image.open(train[1].path).save(val[1].path.with_suffix(".png"))  # the same pixels, other bytes
    val[1] = ImageRecord("v1.png", 64, 48, path=val[1].path.with_suffix(".png"), annotations=val[1].annotations)
    test = [image("test", "x0.jpg", 200, 25)]
    shutil.copy(val[3].path, test[0].path)
    warnings = check_splits([Category(1, "buoy")], train, {"val": val, "test": test})
    assert [(w["kind"], w["split"], w["items"]) for w in warnings] == [
        ("same_images", "val", [{"image": "v0.jpg", "same_as": "t0.jpg", "in": "train"}]),
        ("same_images", "test", [{"image": "x0.jpg", "same_as": "v3.jpg", "in": "val"}]),
        ("near_duplicates", "val", [{"image": "v1.png", "near": "t1.jpg"}])]  # v0 is said once, as the same image
    assert warnings[0]["message"] == ("val: 1 of its 6 images is also in train (identical bytes), so it scores images "
                                      "the model trained on: v0.jpg = t0.jpg")
    assert warnings[1]["message"].startswith("test: 1 of its 1 images is also in val (identical bytes), so val and "
                                             "test score the same images: x0.jpg = v3.jpg")
    assert warnings[2]["message"].startswith("val: 1 of its 6 images is near-identical to training images "
                                             "(difference hashes within 6 of 64 bits")


def test_a_small_split_rare_classes_and_long_lists_are_counted():
    cats = [Category(i, f"c{i}") for i in range(1, 10)]

    def objects(*counts: tuple[int, int]) -> list[ImageRecord]:
        return [ImageRecord(f"im{c}.jpg", 64, 48, annotations=[Annotation(c, BOX)] * n) for c, n in counts]

    train = objects((1, 12), (2, 3), (9, 1))
    val = objects((1, 5), *((c, 1) for c in range(3, 9)))  # 6 classes training never showed, 11 objects in all
    kinds = {w["kind"]: w for w in check_splits(cats, train, {"val": val})}
    assert list(kinds) == ["untrained_classes", "small_split", "rare_classes"]
    assert kinds["untrained_classes"]["message"].endswith(
        "cannot reach much above 0.14: c3 (1 in val), c4 (1 in val), c5 (1 in val), c6 (1 in val), c7 (1 in val) "
        "and 1 more")
    assert len(kinds["untrained_classes"]["items"]) == 6  # eval.json names every one
    assert kinds["small_split"]["message"] == ("val: only 11 object(s) to score (fewer than 20): one found or missed "
                                               "moves its class's recall by 9% or more, more than most differences "
                                               "between runs")
    assert kinds["rare_classes"]["message"].endswith("training objects, too few to learn well (their AP rests on "
                                                     "which few objects were labelled): c9 (1), c2 (3)")


def test_past_the_limit_near_duplicates_are_not_hashed_and_that_is_said(monkeypatch):
    monkeypatch.setattr(split_checks, "NEAR_CHECK_LIMIT", 3)
    images = [ImageRecord(f"never_decoded{k}.jpg", 64, 48, data=f"not an image {k}".encode(),
                          annotations=[Annotation(1, BOX)] * 20) for k in range(4)]
    warnings = check_splits([Category(1, "a")], images[:2], {"val": images[2:]})
    assert [w["kind"] for w in warnings] == ["near_duplicates_unchecked"]
    assert warnings[0]["message"].startswith("near-identical images across splits not checked: 4 images, more than "
                                             "the 3 hashed before training")


def test_a_clean_dataset_gives_no_warning(capsys):
    loaded = load_data(TrainConfig())  # the embedded shapes: every class trained, distinct images, 16 val images
    assert loaded.warnings == [] and "warning" not in capsys.readouterr().out.lower()
