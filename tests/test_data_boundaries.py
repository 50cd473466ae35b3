"""A path named inside a data file never makes detft open a file outside the dataset: an image path that climbs out
(``../../``) or is absolute elsewhere is looked up by its file name under the dataset like any stale path, and
otherwise reported missing; the file it names is never read, and never copied into OUT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from helpers import make_image

from detft.annotations.report import Report
from detft.cli import main
from detft.errors import DetftError
from detft.operations.convert import load


def coco(ds: Path, name: str) -> Path:
    (ds / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": name, "width": 64, "height": 48}], "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10], "iscrowd": 0, "area": 200}]}))
    return ds


def voc(ds: Path, name: str) -> Path:
    (ds / "Annotations").mkdir()
    (ds / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>{name}</filename><size><width>64</width><height>48</height><depth>3</depth></size>"
        "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>22</xmax>"
        "<ymax>13</ymax></bndbox></object></annotation>")
    return ds


def labelme(ds: Path, name: str) -> Path:
    (ds / "a.json").write_text(json.dumps({
        "version": "5.5.0", "flags": {}, "imagePath": name, "imageData": None, "imageHeight": 48, "imageWidth": 64,
        "shapes": [{"label": "cat", "points": [[2, 3], [22, 13]], "group_id": None, "description": "",
                    "shape_type": "rectangle", "flags": {}}]}))
    return ds


def via(ds: Path, name: str) -> Path:
    (ds / "via_region_data.json").write_text(json.dumps({"a1": {"filename": name, "size": 1, "file_attributes": {},
        "regions": [{"shape_attributes": {"name": "rect", "x": 2, "y": 3, "width": 20, "height": 10},
                     "region_attributes": {"class": "cat"}}]}}))
    return ds


def csv(ds: Path, name: str) -> Path:
    (ds / "labels.csv").write_text(f"filename,width,height,class,xmin,ymin,xmax,ymax\n{name},64,48,cat,2,3,22,13\n")
    return ds / "labels.csv"


def cvat(ds: Path, name: str) -> Path:
    (ds / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        f'<image id="0" name="{name}" width="64" height="48"><box label="cat" occluded="0" xtl="2" ytl="3" xbr="22" '
        'ybr="13" z_order="0"></box></image></annotations>')
    return ds


def createml(ds: Path, name: str) -> Path:
    (ds / "createml.json").write_text(json.dumps([{"image": name, "annotations": [
        {"label": "cat", "coordinates": {"x": 12, "y": 8, "width": 20, "height": 10}}]}]))
    return ds / "createml.json"


def yolo_list(ds: Path, name: str) -> Path:
    (ds / "labels").mkdir()
    (ds / "labels" / (Path(name.replace("\\", "/")).stem + ".txt")).write_text("0 0.5 0.5 0.2 0.2\n")
    (ds / "data.yaml").write_text("train: train.txt\nval: train.txt\nnames:\n  0: cat\n")
    (ds / "train.txt").write_text(name + "\n")
    return ds


WRITERS: dict[str, Callable[[Path, str], Path]] = {
    "coco": coco, "voc": voc, "labelme": labelme, "via": via, "csv": csv, "cvat": cvat, "createml": createml,
    "yolo": yolo_list}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """An image of the user's, beside the downloaded dataset: a data file names it."""
    return make_image(tmp_path / "private" / "secret.jpg", 64, 48, seed=7)


def outside_names(secret: Path, ds: Path) -> list[str]:
    return [str(secret), "../private/secret.jpg", "../../" + secret.parent.name + "/secret.jpg",
            "..\\private\\secret.jpg", "images/../../private/secret.jpg"]


@pytest.mark.parametrize("fmt", WRITERS)
def test_an_image_path_outside_the_dataset_is_never_opened(tmp_path: Path, secret: Path, fmt: str):
    for k, name in enumerate(outside_names(secret, tmp_path)):
        ds = tmp_path / f"ds{k}"
        make_image(ds / "images" / "other.jpg", 64, 48)
        src = WRITERS[fmt](ds, name)
        report = Report()
        try:
            dataset = load(src, fmt, report)
        except DetftError:
            continue  # a named error is fine: nothing outside was read
        for im in dataset.images:
            assert im.path is None or im.path.resolve().is_relative_to(ds.resolve()), (fmt, name, im.path)
        assert any(c.kind == "image_path_outside_dataset" for c in report.changes), (fmt, name, report.changes)


@pytest.mark.parametrize("fmt", WRITERS)
def test_an_outside_path_is_looked_up_by_its_name_inside(tmp_path: Path, secret: Path, fmt: str):
    ds = tmp_path / "ds"
    ds.mkdir()
    inside = make_image(ds / ("images" if fmt != "voc" else "JPEGImages") / "secret.jpg", 64, 48, seed=1)
    src = WRITERS[fmt](ds, str(secret))
    report = Report()
    dataset = load(src, fmt, report)
    assert [im.path.resolve() for im in dataset.images] == [inside.resolve()]
    assert sum(len(im.annotations) for im in dataset.images) == 1


def test_convert_with_copied_images_never_copies_an_outside_file(tmp_path: Path, secret: Path, capsys):
    ds = tmp_path / "ds"
    make_image(ds / "images" / "other.jpg", 64, 48)
    coco(ds, "../private/secret.jpg")
    out = tmp_path / "out"
    code = main(["convert", str(ds), str(out), "--to", "coco", "--images", "copy"])
    assert code != 0 or not any(p.read_bytes() == secret.read_bytes() for p in out.rglob("*.jpg"))
    assert secret.read_bytes() not in [p.read_bytes() for p in tmp_path.rglob("*.jpg") if p != secret]


def test_a_yaml_naming_a_folder_outside_is_a_named_error(tmp_path: Path, secret: Path):
    ds = tmp_path / "ds"
    (ds / "images" / "train").mkdir(parents=True)
    (ds / "data.yaml").write_text(f"path: {secret.parent}\ntrain: .\nval: .\nnames:\n  0: cat\n")
    with pytest.raises(DetftError, match="outside the YAML's folder"):
        load(ds, "yolo", Report())
    (ds / "data.yaml").write_text(f"train: {secret.parent}\nval: images/train\nnames:\n  0: cat\n")
    with pytest.raises(DetftError, match="outside the YAML's folder"):
        load(ds, "yolo", Report())


def test_roboflow_yaml_paths_that_climb_still_read_inside(tmp_path: Path):
    """Roboflow writes ``train: ../train/images`` beside ``train/``: ultralytics' rule reads it inside the dataset,
    even when the folder above happens to hold a ``train/images`` of its own."""
    make_image(tmp_path / "train" / "images" / "other.jpg", 64, 48)
    ds = tmp_path / "ds"
    for split in ("train", "valid"):
        make_image(ds / split / "images" / f"{split}.jpg", 64, 48)
        (ds / split / "labels").mkdir(parents=True)
        (ds / split / "labels" / f"{split}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (ds / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['cat']\n")
    dataset = load(ds, "yolo", Report())
    assert sorted(im.path.name for im in dataset.images) == ["train.jpg", "valid.jpg"]


def test_a_darknet_list_file_outside_the_export_is_not_read(tmp_path: Path, secret: Path):
    ds = tmp_path / "ds"
    (ds / "obj_train_data").mkdir(parents=True)
    make_image(ds / "obj_train_data" / "a.jpg", 64, 48)
    (ds / "obj_train_data" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (secret.parent / "list.txt").write_text(f"{secret}\n")
    (ds / "obj.names").write_text("cat\n")
    (ds / "obj.data").write_text(f"classes = 1\ntrain = {secret.parent / 'list.txt'}\nnames = obj.names\n")
    with pytest.raises(DetftError, match="image list"):
        load(ds, "yolo", Report())


def test_an_annotation_only_folder_belongs_to_the_folder_above_and_no_further(tmp_path: Path, secret: Path):
    """labelme's ``--output ann/`` writes ``imagePath: ../images/a.jpg``: the folder named holds no image, so its
    dataset is the folder above (the same rule as COCO's ``annotations/`` beside ``val2017/``); two levels up is out."""
    project = tmp_path / "project"
    make_image(project / "images" / "a.jpg", 64, 48)
    ann = project / "ann"
    ann.mkdir()
    labelme(ann, "../images/a.jpg")
    dataset = load(ann, "labelme", Report())
    assert [im.path.resolve() for im in dataset.images] == [(project / "images" / "a.jpg").resolve()]
    labelme(ann, "../../private/secret.jpg")
    report = Report()
    with pytest.raises(DetftError, match="secret.jpg' not found"):
        load(ann, "labelme", report)
    assert [c.kind for c in report.changes] == ["image_path_outside_dataset", "missing_image"]
