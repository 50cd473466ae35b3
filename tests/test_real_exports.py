"""Defects found reading the development suite's public datasets (bench/suite.md), each fixture built small in
exactly the shape the real export has: the same file and folder names, keys in the same order, the same fields
(Roboflow's ``info``/``licenses``/``date_captured``, its placeholder category, an author's second COCO file, a
data.yaml without ``test:``, YOLO-OBB's corner rows without a final newline). No image or annotation of the suite
is copied: the images are made by ``make_image``."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import make_image

from detft.annotations.report import Report
from detft.cli import main
from detft.operations.convert import load

INFO = {"year": "2023", "version": "2", "description": "Exported from roboflow.com", "contributor": "",
        "url": "https://public.roboflow.com/object-detection/undefined", "date_created": "2023-11-07T06:51:21+00:00"}
LICENSES = [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}]
BoxList = list[tuple[int, float, float, float, float]]  # (category_id, x, y, w, h) as COCO's bbox


def roboflow_coco_file(path: Path, categories: list[dict], images: list[tuple[str, int, int, BoxList]],
                       make: bool = True) -> Path:
    """A Roboflow ``_annotations.coco.json`` (or a file written in its shape) with its images beside it: keys in
    Roboflow's order, image and annotation ids from 0, ``segmentation`` empty for boxes."""
    out_images, anns = [], []
    for i, (name, w, h, boxes) in enumerate(images):
        if make:
            make_image(path.parent / name, w, h, seed=i)
        out_images.append({"id": i, "license": 1, "file_name": name, "height": h, "width": w,
                           "date_captured": "2023-11-07T06:51:21+00:00"})
        anns += [{"id": len(anns), "image_id": i, "category_id": c, "bbox": [x, y, bw, bh], "area": bw * bh,
                  "segmentation": [], "iscrowd": 0} for c, x, y, bw, bh in boxes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": INFO, "licenses": LICENSES, "categories": categories,
                                "images": out_images, "annotations": anns}))
    return path


# dental-cavity: no placeholder category, and no supercategory at all
DENTAL_CATS = [{"id": 1, "name": "cavity"}, {"id": 2, "name": "normal"}]
DENTAL_TRAIN = [("healthy_teeth_326_jpg.rf.c8b6a29aaa3f136bd78381b8127be6a1.jpg", 64, 36, [(2, 40, 10, 8, 12)]),
                ("unhealthy_teeth_12_jpg.rf.0a1b2c3d4e5f60718293a4b5c6d7e8f9.jpg", 48, 32,
                 [(1, 4, 5, 10, 9), (2, 20, 6, 7, 8)]),
                ("unhealthy_teeth_222_jpg.rf.036b00d872f9ded7047ee2704d7d0be4.jpg", 40, 30, [])]


def dental_cavity(root: Path) -> Path:
    """hongjin4790/cavity_detecting: Roboflow's COCO download (``train/``, ``valid/``) whose ``train/`` also holds
    the author's ``_train_anno.json``, the same images less Roboflow's negatives, with the same objects."""
    roboflow_coco_file(root / "train" / "_annotations.coco.json", DENTAL_CATS, DENTAL_TRAIN)
    roboflow_coco_file(root / "train" / "_train_anno.json", DENTAL_CATS, DENTAL_TRAIN[:2], make=False)
    roboflow_coco_file(root / "valid" / "_annotations.coco.json", DENTAL_CATS,
                       [("healthy_teeth_123_jpg.rf.022ff6b1e998e2e68d76a2ede6ca4ab3.jpg", 52, 38, [(2, 14, 5, 10, 15)])])
    return root


def test_two_coco_files_of_the_same_images_are_alternatives_read_the_fuller(tmp_path: Path):
    report = Report()
    ds = load(dental_cavity(tmp_path / "dental"), None, report)
    train = ds.images_in("train")
    assert len(train) == 3 and sum(len(im.annotations) for im in train) == 3  # Roboflow's, with its negative
    assert len(ds.images_in("val")) == 1 and not report.changes
    note = next(n for n in report.notes if "list the same images" in n)
    assert "read _annotations.coco.json" in note and "_train_anno.json not read" in note
    assert "_annotations.coco.json: 3 objects on 3 images" in note and "_train_anno.json: 3 objects on 2 images" in note


def test_coco_files_of_different_images_are_parts_and_a_duplicate_names_both_files(tmp_path: Path):
    """instances_train.json + instances_val.json in one folder: merged as before; an image both list (one of three,
    too few to make them alternatives) is dropped once, the loss naming both files."""
    cats = [{"id": 1, "name": "cavity"}]
    a = [(f"a{i}.jpg", 32, 24, [(1, 2, 2, 10, 10)]) for i in range(3)]
    b = [a[0]] + [(f"b{i}.jpg", 32, 24, [(1, 3, 3, 9, 9)]) for i in range(2)]
    roboflow_coco_file(tmp_path / "annotations" / "instances_train.json", cats, a)
    roboflow_coco_file(tmp_path / "annotations" / "instances_val.json", cats, b)
    report = Report()
    ds = load(tmp_path, None, report)
    assert len(ds.images_in("train")) == 3 and len(ds.images_in("val")) == 2
    (dup,) = [c for c in report.changes if c.kind == "duplicate_image"]
    assert "instances_val.json" in dup.where and "instances_train.json" in dup.detail and dup.annotations_lost == 1


# aquarium: data.yaml exactly as shipped (train: and val: only), test/ beside train/ and valid/
AQUARIUM_YAML = ("train: ../train/images\nval: ../valid/images\n\nnc: 7\n"
                 "names: ['fish', 'jellyfish', 'penguin', 'puffin', 'shark', 'starfish', 'stingray']")


def yolo_split(root: Path, folder: str, rows: dict[str, list[str]], newline: bool = True) -> None:
    """``<folder>/images/<name>`` + ``<folder>/labels/<stem>.txt``, Roboflow's YOLO layout."""
    for k, (name, lines) in enumerate(rows.items()):
        make_image(root / folder / "images" / name, 40, 30, seed=k)
        (root / folder / "labels").mkdir(parents=True, exist_ok=True)
        (root / folder / "labels" / (Path(name).stem + ".txt")).write_text("\n".join(lines) + ("\n" if newline else ""))


def test_a_split_folder_the_data_yaml_does_not_name_is_read_as_its_split(tmp_path: Path):
    root = tmp_path / "aquarium_pretrain"
    yolo_split(root, "train", {"IMG_2274_jpeg_jpg.rf.aaa.jpg": ["0 0.5 0.5 0.25 0.3", "4 0.2 0.3 0.1 0.1"]})
    yolo_split(root, "valid", {"IMG_2301_jpeg_jpg.rf.bbb.jpg": ["1 0.4 0.4 0.2 0.2"]})
    yolo_split(root, "test", {"IMG_2289_jpeg_jpg.rf.ccc.jpg": ["0 0.5 0.5 0.2 0.2"],
                              "IMG_2380_jpeg_jpg.rf.ddd.jpg": ["6 0.6 0.6 0.2 0.2", "2 0.3 0.3 0.2 0.2"]})
    (root / "data.yaml").write_text(AQUARIUM_YAML)
    report = Report()
    ds = load(root, None, report)
    assert [len(ds.images_in(s)) for s in ("train", "val", "test")] == [1, 1, 2]
    assert sum(len(im.annotations) for im in ds.images_in("test")) == 3 and not report.changes
    assert any("has no test: key" in n and "2 labelled images: read as the test split" in n for n in report.notes)


def test_a_split_folder_of_images_a_named_split_lists_is_not_read_twice(tmp_path: Path):
    yolo_split(tmp_path, "train", {"a.jpg": ["0 0.5 0.5 0.25 0.3"]})
    yolo_split(tmp_path, "test", {"b.jpg": ["0 0.5 0.5 0.2 0.2"]})
    (tmp_path / "data.yaml").write_text("train: ../train/images\nval: ../test/images\n\nnc: 1\nnames: ['fish']")
    report = Report()
    ds = load(tmp_path, None, report)
    assert [len(ds.images_in(s)) for s in ("train", "val", "test")] == [1, 1, 0]
    assert not any("has no test: key" in n for n in report.notes)


# Roboflow's placeholder: category 0 named after the project, supercategory of every class, used by no annotation
def test_roboflow_placeholder_category_is_left_out_and_said(tmp_path: Path):
    """brain-mri's ``state``; an unused real class (``t2`` here) is kept and noted."""
    cats = [{"id": 0, "name": "state", "supercategory": "none"}] + [
        {"id": i, "name": n, "supercategory": "state"} for i, n in enumerate(["flair", "t1", "t1ce", "t2"], start=1)]
    roboflow_coco_file(tmp_path / "train" / "_annotations.coco.json", cats,
                       [("IM6_T2_57--CH09043_jpg.rf.723a.jpg", 48, 48, [(1, 5, 3, 30, 40)]),
                        ("IM1_T1_12--CH00011_jpg.rf.9e8f.jpg", 48, 48, [(2, 4, 4, 20, 20), (3, 10, 8, 22, 30)])])
    roboflow_coco_file(tmp_path / "valid" / "_annotations.coco.json", cats,
                       [("IM3_FLAIR_7--CH07001_jpg.rf.55aa.jpg", 48, 48, [(1, 2, 2, 30, 30)])])
    report = Report()
    ds = load(tmp_path, None, report)
    assert [c.name for c in ds.sorted_categories()] == ["flair", "t1", "t1ce", "t2"]
    assert any("category 0 'state' left out" in n for n in report.notes)
    assert any("never used: t2 (kept" in n for n in report.notes) and not report.changes


def test_a_placeholder_named_like_its_class_is_left_out_not_merged(tmp_path: Path):
    """aerial-cars: the placeholder and the one class are both ``cars``."""
    cats = [{"id": 0, "name": "cars", "supercategory": "none"}, {"id": 1, "name": "cars", "supercategory": "cars"}]
    f = roboflow_coco_file(tmp_path / "train" / "_annotations.coco.json", cats,
                           [("ezgif-frame-030_jpg.rf.f71a.jpg", 40, 40, [(1, 20, 17, 6, 12), (1, 2, 2, 5, 5)])])
    report = Report()
    ds = load(f, None, report)
    assert [(c.id, c.name) for c in ds.categories] == [(1, "cars")]
    assert any("category 0 'cars' left out" in n for n in report.notes)


def test_an_unused_category_of_another_shape_or_a_used_one_is_kept(tmp_path: Path):
    """Only the placeholder's exact shape is left out: a class no annotation uses yet is kept (noted), and a
    category annotations use is a class whatever it is called."""
    cats = [{"id": 0, "name": "flakes", "supercategory": "none"},
            {"id": 1, "name": "Thick_BN", "supercategory": "flakes"}, {"id": 2, "name": "Thin_BN", "supercategory": "flakes"}]
    f = roboflow_coco_file(tmp_path / "train" / "_annotations.coco.json", cats,
                           [("220323-hBN-image-39_jpg.rf.18da.jpg", 40, 40, [(1, 3, 3, 10, 10), (0, 20, 20, 8, 8)])])
    report = Report()
    ds = load(f, None, report)
    assert [c.name for c in ds.sorted_categories()] == ["flakes", "Thick_BN", "Thin_BN"]
    assert not any("left out" in n for n in report.notes)
    assert any("never used: Thin_BN (kept" in n for n in report.notes)


# crop-weed-obb: YOLOv8 OBB, 9 numbers a row, no newline at the end of a label file
OBB_YAML = "path: ../datasets/roboflow\n\ntrain: train/images\nval: valid/images\ntest: test/images\n\nnames: \n  0: crop\n  1: weed\n"
OBB_ROWS = {"1_jpg.rf.aa.jpg": ["1 0.6953125 0.216796875 0.078125 0.216796875 0.078125 0.830078125 0.6953125 0.830078125"],
            "2_jpg.rf.bb.jpg": ["0 0.1 0.1 0.4 0.1 0.4 0.5 0.1 0.5", "1 0.5 0.2 0.9 0.3 0.8 0.7 0.4 0.6"]}


def crop_weed_obb(root: Path, yaml_text: str) -> Path:
    yolo_split(root, "train", OBB_ROWS, newline=False)
    yolo_split(root, "valid", {"3_jpg.rf.cc.jpg": ["0 0.2 0.2 0.6 0.2 0.6 0.6 0.2 0.6"]}, newline=False)
    yolo_split(root, "test", {"4_jpg.rf.dd.jpg": ["1 0.3 0.3 0.7 0.3 0.7 0.7 0.3 0.7"]}, newline=False)
    (root / "data.yaml").write_text(yaml_text)
    (root / "classes.txt").write_text("crop\nweed")
    (root / "README.dataset.txt").write_text("# Crop or weed > 2024-06-12 1:11pm\nhttps://universe.roboflow.com/"
                                             "mldl-i6z0f/crop-or-weed\n\nProvided by a Roboflow user\nLicense: CC BY 4.0\n")
    (root / "README.roboflow.txt").write_text("\nCrop or weed - v1 2024-06-12 1:11pm\n==============================\n\n"
                                              "The dataset includes 2210 images.\n"
                                              "Crop- are annotated in YOLOv8 Oriented Object Detection format.\n")
    return root


def test_yolo_obb_corner_rows_are_read_as_polygons_and_said(tmp_path: Path):
    report = Report()
    ds = load(crop_weed_obb(tmp_path / "dataset", OBB_YAML), None, report)
    shapes = [a for im in ds.images for a in im.annotations]
    assert len(shapes) == 5 and all(len(a.polygons[0]) == 8 for a in shapes)  # no behaviour change
    note = next(n for n in report.notes if "4 corners" in n)
    assert "all 5 rows" in note and "oriented boxes as README.roboflow.txt says" in note


def test_yolo_obb_declared_in_the_yaml_says_how_it_trains(tmp_path: Path):
    report = Report()
    load(crop_weed_obb(tmp_path / "dataset", OBB_YAML + "task: obb\n"), None, report)
    assert any("says task: obb" in n and "axis-aligned boxes" in n for n in report.notes)


def test_inspect_of_one_split_file_takes_the_split_from_its_folder(tmp_path: Path, capsys):
    f = dental_cavity(tmp_path / "dental") / "valid" / "_annotations.coco.json"
    assert {im.split for im in load(f, None, Report()).images} == {"val"}
    assert main(["inspect", str(f), "--grid", str(tmp_path / "grid.png")]) == 0
    out = capsys.readouterr().out
    assert "val boxes" in out and "train boxes" not in out
