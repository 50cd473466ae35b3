"""No writer merges two images' labels: images whose names differ only in extension (``x.png``, ``x.jpg``,
``x.bmp``, common in camera dumps and real exports) or in case, names with spaces, Unicode or a newline, all
written by every writer (and by ``predict --save-labels``) and read back whole, each image with its own objects."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import Oracle, make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.report import Report
from detft.formats import WRITERS, write_dataset
from detft.labelling.prelabels import save_labels
from detft.operations.convert import load

FORMATS = sorted(WRITERS)
STEMS = ["x", "X", "img 1", "ñandú", "日本語", "a\nb", "frame.0001", "x_png", "tab\there"]
SUFFIXES = [".jpg", ".png", ".bmp", ".JPG", ".jpeg", ".tif"]

names = st.lists(st.tuples(st.sampled_from(STEMS), st.sampled_from(SUFFIXES)).map("".join), min_size=2, max_size=5,
                 unique=True)


def dataset_of(root: Path, file_names: list[str]) -> Dataset:
    """Image i holds i % 2 + 1 boxes whose left edge is 4 + 6 i: each image is known by its boxes after any rename."""
    pixels = make_image(root / "pixels.png", 64, 48)
    images = []
    for i, name in enumerate(file_names):
        anns = [Annotation(1, (4.0 + 6 * i, 5.0 + 4 * j, 30.0 + 6 * i, 20.0 + 4 * j)) for j in range(i % 2 + 1)]
        images.append(ImageRecord(name, 64, 48, path=pixels, split="train", annotations=anns))
    return Dataset(images, [Category(1, "cat")], root=root)


def signature(dataset: Dataset) -> list[tuple[int, int]]:
    return sorted((len(im.annotations), round(min(a.bbox[0] for a in im.annotations)))
                  for im in dataset.images if im.annotations)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file_names=names)
def test_every_writer_keeps_each_image_apart(fmt: str, file_names: list[str]):
    with tempfile.TemporaryDirectory() as tmp:
        source = dataset_of(Path(tmp) / "src", file_names)
        report = Report()
        write_dataset(fmt, source, Path(tmp) / "out", report, image_mode="copy")
        back = load(Path(tmp) / "out", fmt, Report())
        assert len(back.images) == len(file_names), (fmt, file_names, [im.file_name for im in back.images])
        assert signature(back) == signature(source), (fmt, file_names)
        assert all(im.path is not None for im in back.images)
        renamed = [c for c in report.changes if c.kind in ("name_collision", "control_characters_in_file_name")]
        stems = {Path(n).stem.casefold() for n in file_names}
        if fmt in ("yolo", "voc", "labelme", "kitti") and len(stems) < len(file_names):
            assert renamed, "a label file shared by two images was not reported"


def test_same_stem_images_get_their_own_label_files_and_the_rename_is_reported(tmp_path: Path):
    source = dataset_of(tmp_path / "src", ["x.png", "x.jpg", "x.bmp", "X.jpg"])
    report = Report()
    write_dataset("yolo", source, tmp_path / "out", report, image_mode="copy")
    labels = sorted(p.name for p in (tmp_path / "out" / "labels" / "train").iterdir())
    assert labels == ["X_jpg_1.txt", "x.txt", "x_bmp.txt", "x_jpg.txt"]
    collisions = [c.detail for c in report.changes if c.kind == "name_collision"]
    assert len(collisions) == 3 and "'x.jpg'" in collisions[0] and "'x_jpg.jpg'" in collisions[0]


def test_a_newline_in_a_name_does_not_split_the_voc_image_list(tmp_path: Path):
    source = dataset_of(tmp_path / "src", ["a\nb.jpg", "c.jpg"])
    report = Report()
    write_dataset("voc", source, tmp_path / "out", report, image_mode="copy")
    listing = (tmp_path / "out" / "ImageSets" / "Main" / "train.txt").read_text().splitlines()
    assert listing == ["a_b", "c"]
    assert [c.kind for c in report.changes] == ["control_characters_in_file_name"]


def test_kitti_reads_back_upper_case_suffixes_and_dotted_stems(tmp_path: Path):
    source = dataset_of(tmp_path / "src", ["UPPER.JPG", "frame.0001.png"])
    write_dataset("kitti", source, tmp_path / "out", Report(), image_mode="copy")
    back = load(tmp_path / "out", "kitti", Report())
    assert sorted(im.path.name for im in back.images) == ["UPPER.JPG", "frame.0001.png"]
    assert signature(back) == signature(source)


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_labels_keeps_same_stem_images_apart(tmp_path: Path, fmt: str):
    shots = tmp_path / "shots"
    shots.mkdir()
    for k, (name, box) in enumerate([("cam.png", (5, 6, 30, 40)), ("cam.bmp", (50, 10, 90, 30)),
                                     ("CAM.tif", (20, 50, 60, 80))]):
        image = np.zeros((90, 120, 3), np.uint8)
        x0, y0, x1, y1 = box
        image[y0:y1, x0:x1] = k + 1
        Image.fromarray(image).save(shots / name)
    saved = save_labels(Oracle(masks=False), shots, fmt, tmp_path / "out")
    back = load(tmp_path / "out", fmt, Report())
    assert len(back.images) == 3
    found = sorted((len(im.annotations), round(im.annotations[0].bbox[0])) for im in back.images)
    assert found == [(1, 5), (1, 20), (1, 50)], (fmt, [im.file_name for im in back.images])
    assert saved.report is not None
