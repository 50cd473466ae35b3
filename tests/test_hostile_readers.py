"""Reader cases an adversarial user found (#50): each ends in a named error that names the file and the object or
line, or in a result whose report counts what was dropped; never a silent loss, a crash or a huge allocation.
Inputs are built in the shape real exports have: Label Studio's JSON export (label-studio-converter's test data),
datumaro's YOLO and VoTT CSV test assets, the Data Science Bowl's one-mask-per-object folders."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import make_image
from PIL import Image

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord, SourceRef
from detft.annotations.report import Report
from detft.errors import DataLossError, DetftError, FormatError
from detft.formats import write_dataset
from detft.operations.convert import load

W, H = 64, 48


# ------------------------------------------------------------------------------------------ Label Studio
def ls_result(kind: str, value: Any, rid: Any = "r1", **extra: Any) -> dict:
    """One result of an annotation, as Label Studio exports it."""
    return {"id": rid, "type": kind, "value": value, "origin": "manual", "to_name": "image", "from_name": "label",
            "image_rotation": 0, "original_width": W, "original_height": H, **extra}


def ls_box(rid: str = "r1", label: str = "car") -> dict:
    return ls_result("rectanglelabels", {"x": 10, "y": 20, "width": 25, "height": 50, "rotation": 0,
                                         "rectanglelabels": [label]}, rid)


def ls_export(root: Path, results: list[Any], image: bool = True) -> Path:
    """A project export of two tasks: ``a.jpg`` with one box, ``b.jpg`` with ``results`` (its file present unless
    ``image`` is False). ``results`` may hold the text ``"INF"``, written into the JSON as ``1e400``."""
    make_image(root / "a.jpg", W, H)
    if image:
        make_image(root / "b.jpg", W, H, seed=1)
    tasks = [{"id": k + 1, "data": {"image": f"/data/local-files/?d={name}"}, "predictions": [], "annotations": [
        {"id": k + 1, "result": res, "was_cancelled": False, "ground_truth": False,
         "created_at": "2024-01-30T02:40:43Z", "updated_at": "2024-01-30T02:40:43Z"}]}
        for k, (name, res) in enumerate([("a.jpg", [ls_box()]), ("b.jpg", results)])]
    (root / "export.json").write_text(json.dumps(tasks).replace('"INF"', "1e400"))
    return root


def lost(report: Report, kind: str) -> list[tuple[str, str, int]]:
    """(where, detail, annotations lost) of each change of ``kind``."""
    return [(c.where, c.detail, c.annotations_lost) for c in report.changes if c.kind == kind]


def test_label_studio_results_of_types_detft_does_not_read_are_counted_by_type(tmp_path: Path):
    """Keypoints, a tool of a later Label Studio and a result that is a string are each a counted drop naming its task
    and position; a relation links regions and is said, not counted."""
    results = [ls_box("r2", "bus"),
               ls_result("keypointlabels", {"x": 5, "y": 5, "width": 0.5, "keypointlabels": ["nose"]}, "k1"),
               ls_result("hexagonlabels", {"points": [[1, 2]], "hexagonlabels": ["cell"]}, "h1"),
               "rectanglelabels",
               {"from_id": "r2", "to_id": "k1", "type": "relation", "direction": "right"}]
    report = Report()
    ds = load(ls_export(tmp_path, results), None, report)
    assert ds.num_annotations == 2
    unread = lost(report, "unread_result")
    assert [(w.rsplit(" ", 4)[1:], d.split(":")[0], n) for w, d, n in unread] == [
        (["task", "1", "result", "1"], "a 'keypointlabels' result", 1),
        (["task", "1", "result", "2"], "a 'hexagonlabels' result", 1)]
    assert lost(report, "bad_result") == [(f"{tmp_path / 'export.json'} task 1 result 3",
                                           "a result must be an object, not str", 1)]
    assert report.annotations_lost == 3 and report.shapes_held == 5
    assert any("1 relation" in n for n in report.notes)


def test_a_label_studio_export_of_keypoints_only_is_a_named_loss(tmp_path: Path):
    root = ls_export(tmp_path, [])
    tasks = json.loads((root / "export.json").read_text())
    tasks[0]["annotations"][0]["result"] = [
        ls_result("keypointlabels", {"x": 5, "y": 5, "width": 0.5, "keypointlabels": ["nose"]}, "k1")]
    (root / "export.json").write_text(json.dumps(tasks))
    with pytest.raises(DataLossError, match=r"unread_result .*task 0 result 0: a 'keypointlabels' result"):
        load(root, None, Report())


def test_a_label_studio_result_field_that_is_not_a_list_is_a_counted_drop(tmp_path: Path):
    report = Report()
    ds = load(ls_export(tmp_path, "rectanglelabels"), None, report)  # type: ignore[arg-type]
    assert sorted((im.file_name, len(im.annotations)) for im in ds.images) == [("a.jpg", 1), ("b.jpg", 0)]
    assert lost(report, "bad_result") == [(f"{tmp_path / 'export.json'} task 1", "'result' must be a list of results, "
                                           "not str 'rectanglelabels'", 1)]


def brush_bomb(width: int, height: int) -> list[int]:
    """A well-formed brush code (thi.ng rle-pack) of a ``width`` x ``height`` transparent canvas: repeat blocks of
    65,536 zeros, 27 bits each, so 30000x30000 is 185 kB of code for 3.6 billion values."""
    num = width * height * 4
    header = f"{num:032b}{7:05b}" + "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16))
    block = "1" + "11" + "1" * 16 + "0" * 8
    bits = header + block * -(-num // 65536)
    bits += "0" * (-len(bits) % 8)
    return np.packbits(np.frombuffer(bits.encode(), np.uint8) - ord("0")).tolist()


def test_a_label_studio_brush_declaring_a_huge_canvas_is_refused_before_decoding(tmp_path: Path):
    """30000x30000 RGBA is 3.6 billion values (26.8 GiB as the decoder's integers): refused from the declared size."""
    side = 30000
    brush = ls_result("brushlabels", {"format": "rle", "rle": brush_bomb(side, side), "brushlabels": ["car"]}, "b1",
                      original_width=side, original_height=side)
    report = Report()
    ds = load(ls_export(tmp_path, [brush], image=False), None, report)
    assert ds.num_annotations == 1
    ((where, detail, n),) = lost(report, "bad_brush")
    assert where == f"{tmp_path / 'export.json'} task 1 result 0" and n == 1
    assert "30000x30000 mask is larger than any image" in detail


def test_label_studio_ids_that_are_lists_and_infinite_sizes_are_named(tmp_path: Path):
    """A result id that cannot join a region (a list) is dropped, named; an original_width of 1e400 (infinite once
    parsed) is not a size: the image file's own is used, said."""
    results = [{**ls_box("r2"), "id": ["r", 2]}, {**ls_box("r3"), "original_width": "INF"}]
    report = Report()
    ds = load(ls_export(tmp_path, results), None, report)
    b = next(im for im in ds.images if im.file_name == "b.jpg")
    assert [a.bbox for a in b.annotations] == [pytest.approx((6.4, 9.6, 22.4, 33.6))]
    where = f"{tmp_path / 'export.json'} task 1"
    assert lost(report, "bad_result") == [(f"{where} result 0", "result id ['r', 2] is not a string or an integer", 1)]
    assert [(c.action, c.where) for c in report.changes if c.kind == "bad_image_size"] == [("fixed", f"{where} result 1")]


# ------------------------------------------------------------------------------------------ mask files
def bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid 1-bit PNG of ``side`` x ``side`` pixels, all 0: 0.5 MB on disk, 900 million pixels decoded."""
    c = zlib.compressobj(1)
    row = bytes(1 + (side + 7) // 8)
    data = b"".join(c.compress(row) for _ in range(side)) + c.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def save_mask(path: Path, box: tuple[int, int, int, int], **kw: Any) -> Path:
    """A 0/255 object mask of the image size, the object a rectangle (x0, y0, x1, y1)."""
    m = np.zeros((H, W), np.uint8)
    m[box[1]:box[3], box[0]:box[2]] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m).save(path, **kw)
    return path


def dsb_sample(root: Path, image_id: str = "0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9") -> Path:
    """One Data Science Bowl 2018 sample folder: ``<id>/images/<id>.png`` and ``<id>/masks/``."""
    Image.fromarray(np.full((H, W, 4), 40, np.uint8), "RGBA").save(
        make_image(root / image_id / "images" / f"{image_id}.png", W, H))
    (root / image_id / "masks").mkdir(parents=True)
    return root / image_id / "masks"


def test_object_masks_in_tif_bmp_and_jpeg_are_read_and_a_broken_one_is_counted(tmp_path: Path):
    """TIFF and BMP read exactly, a JPEG thresholded at half intensity with a warning, an undecodable PNG dropped."""
    masks = dsb_sample(tmp_path / "stage1_train")
    save_mask(masks / "a.tif", (2, 3, 12, 14))
    save_mask(masks / "b.bmp", (30, 5, 44, 20))
    save_mask(masks / "c.jpg", (10, 30, 25, 45), quality=60)
    (masks / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    report = Report()
    ds = load(tmp_path / "stage1_train", None, report)
    assert sorted(a.bbox for a in ds.images[0].annotations) == [(2, 3, 12, 14), (10, 30, 25, 45), (30, 5, 44, 20)]
    assert [(c.action, Path(c.where).name, c.annotations_lost) for c in report.changes] == [
        ("warning", "c.jpg", 0), ("dropped", "d.png", 1)]
    assert report.shapes_held == 4


def test_a_huge_object_mask_is_refused_from_its_header(tmp_path: Path):
    masks = dsb_sample(tmp_path / "stage1_train")
    save_mask(masks / "a.png", (2, 3, 12, 14))
    bomb_png(masks / "b.png")
    report = Report()
    ds = load(tmp_path / "stage1_train", None, report)
    assert ds.num_annotations == 1
    ((where, detail, n),) = lost(report, "unreadable_mask")
    assert Path(where).name == "b.png" and "900000000 pixels" in detail and n == 1


def test_object_masks_of_no_image_are_counted(tmp_path: Path):
    """``masks/<stem>_<n>.png`` naming an image that is not there, or a mask named after no image at all."""
    make_image(tmp_path / "images" / "cell.jpg", W, H)
    save_mask(tmp_path / "masks" / "cell_0.png", (2, 3, 12, 14))
    save_mask(tmp_path / "masks" / "gone_0.png", (2, 3, 12, 14))
    save_mask(tmp_path / "masks" / "stray.png", (2, 3, 12, 14))
    report = Report()
    ds = load(tmp_path, None, report, class_name="cell")
    assert ds.num_annotations == 1
    assert sorted((Path(w).name, n) for w, _, n in lost(report, "orphan_mask")) == [("gone_0.png", 1), ("stray.png", 1)]


def test_a_huge_instance_mask_is_refused_from_its_header(tmp_path: Path):
    make_image(tmp_path / "images" / "a.jpg", W, H)
    make_image(tmp_path / "images" / "b.jpg", W, H, seed=1)
    save_mask(tmp_path / "masks" / "a.png", (2, 3, 12, 14))
    bomb_png(tmp_path / "masks" / "b.png")
    (tmp_path / "classes.json").write_text(json.dumps({"default": {"255": "cell"}}))
    report = Report()
    ds = load(tmp_path, "masks", report)
    assert ds.num_annotations == 1
    ((where, detail, n),) = lost(report, "unreadable_mask")
    assert Path(where).name == "b.png" and "decompression bomb" in detail and n == 1


# ------------------------------------------------------------------------------------------ --from text
def text_dataset(root: Path, lines: list[str], names: list[str] | None = None) -> Path:
    make_image(root / "images" / "a.jpg", W, H)
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text("".join(f"{ln}\n" for ln in lines))
    if names is not None:
        (root / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    return root / "labels" / "a.txt"


def test_a_malformed_first_text_line_is_a_counted_drop_not_a_header(tmp_path: Path):
    f = text_dataset(tmp_path, ["10 20 3O 40 car", "1 2 30 40 car", "5 6 x 9 bus", "1 1 20 20 bus"])
    report = Report()
    ds = load(tmp_path, "text", report, fields="x1 y1 x2 y2 class")
    assert ds.num_annotations == 2
    assert [(w, n) for w, _, n in lost(report, "bad_line")] == [(f"{f}:1", 1), (f"{f}:3", 1)]
    assert "nor is it a header" in lost(report, "bad_line")[0][1]
    assert not any("header" in n for n in report.notes)


def test_a_text_header_is_said_with_its_file_and_line(tmp_path: Path):
    f = text_dataset(tmp_path, ["xmin,ymin,xmax,ymax,label", "1,2,30,40,car"])
    report = Report()
    assert load(tmp_path, "text", report, fields="x1 y1 x2 y2 class").num_annotations == 1
    assert any(n.startswith(f"{f}:1: first line 'xmin,ymin,xmax,ymax,label' read as a header") for n in report.notes)
    assert not report.changes


def test_a_text_header_in_another_order_than_the_fields_is_named(tmp_path: Path):
    f = text_dataset(tmp_path, ["class x1 y1 x2 y2", "1 1 2 30 40"])
    with pytest.raises(FormatError, match=rf"{f}:1: the header calls column 1 'class', --fields calls it 'x1'"):
        load(tmp_path, "text", Report(), fields="x1 y1 x2 y2 class")


@pytest.mark.parametrize("names", [None, ["car", "bus"]])
def test_text_classes_that_are_no_index_are_counted(tmp_path: Path, names: list[str] | None):
    """``²`` passes ``str.isdigit`` and fails ``int``; 5000 digits pass both checks and exceed Python's int limit."""
    f = text_dataset(tmp_path, ["1 2 30 40 ²", f"1 2 30 40 {'7' * 5000}", "1 2 30 40 1"], names)
    report = Report()
    ds = load(tmp_path, "text", report, fields="x1 y1 x2 y2 class")
    assert [c.name for c in ds.categories] == ["bus" if names else "1"]
    index = "is not a class index (digits 0-9, fewer than 19)"
    assert lost(report, "bad_class") == [(f"{f}:1", f"class '²' {index}", 1),
                                         (f"{f}:2", f"class '{'7' * 20}'... (5000 digits) {index}", 1)]


# ------------------------------------------------------------------------------------------ KITTI writer
def test_kitti_writes_occlusion_states_and_reports_every_value_it_changes(tmp_path: Path):
    """The devkit: occluded an integer 0..3 (3 unknown), truncated a fraction 0..1. Valid values are written as
    given (0.125 stays 0.125, not 0.12); others are rounded, clamped or made unknown, each reported by annotation."""
    image = make_image(tmp_path / "a.png", W, H)
    attrs = [{"occluded": 2, "truncated": 0.125, "alpha": -1.5},
             {"occluded": 2.7}, {"occluded": 1e300, "truncated": 1.5}, {"occluded": "partly", "alpha": float("inf")}]
    anns = [Annotation(1, (1.0, 2.0, 30.0, 40.5), attributes=a, source=SourceRef("in.json", index=k))
            for k, a in enumerate(attrs)]
    report = Report()
    write_dataset("kitti", Dataset([ImageRecord("a.png", W, H, path=image, annotations=anns)], [Category(1, "Car")]),
                  tmp_path / "out", report, image_mode="copy")
    lines = [ln.split()[1:4] for ln in (tmp_path / "out" / "label_2" / "a.txt").read_text().splitlines()]
    assert lines == [["0.125", "2", "-1.50"], ["0.00", "3", "-10.00"], ["1.00", "3", "-10.00"], ["0.00", "3", "-10.00"]]
    assert [(c.action, c.kind, c.where) for c in report.changes] == [
        ("converted", "kitti_occluded", "in.json object 1"), ("fixed", "kitti_truncated", "in.json object 2"),
        ("fixed", "kitti_occluded", "in.json object 2"), ("fixed", "kitti_occluded", "in.json object 3"),
        ("fixed", "kitti_alpha", "in.json object 3")]
    assert "1e+300 is not one of KITTI's states" in report.changes[2].detail


# ------------------------------------------------------------------------------------------ YOLO class names
def datumaro_yolo(root: Path) -> Path:
    """datumaro's ``tests/assets/yolo_dataset/strict``: obj.names, obj_train_data/1.jpg + 1.txt, train.txt (obj.data
    added by the tests that want it); the image larger than the asset's 15x10, where the checker drops a 2 px box."""
    make_image(root / "obj_train_data" / "1.jpg", 150, 100)
    (root / "obj_train_data" / "1.txt").write_text("2 0.133333 0.300000 0.266667 0.200000\n"
                                                   "4 0.266667 0.450000 0.133333 0.300000\n")
    (root / "obj.names").write_text("".join(f"label_{k}\n" for k in range(10)))
    (root / "train.txt").write_text("data/obj_train_data/1.jpg\n")
    return root


def class_names(ds: Dataset) -> list[str]:
    names = ds.category_by_id()
    return sorted(names[a.category_id].name for im in ds.images for a in im.annotations)


def test_yolo_names_in_obj_names_are_used_without_obj_data(tmp_path: Path):
    report = Report()
    ds = load(datumaro_yolo(tmp_path / "yolo"), None, report)
    assert class_names(ds) == ["label_2", "label_4"] and len(ds.categories) == 10
    assert any(n == f"class names from {tmp_path / 'yolo' / 'obj.names'}" for n in report.notes)
    assert not any(c.kind == "no_class_names" for c in report.changes)


def test_yolo_names_beside_images_and_labels_folders(tmp_path: Path):
    """datumaro's ``yolo_dataset/labels``: images/train, labels/train and obj.names at the root."""
    make_image(tmp_path / "images" / "train" / "1.jpg", 150, 100)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "1.txt").write_text("2 0.133333 0.300000 0.266667 0.200000\n")
    (tmp_path / "obj.names").write_text("".join(f"label_{k}\n" for k in range(10)))
    assert class_names(load(tmp_path, None, Report())) == ["label_2"]


def test_yolo_obj_data_names_are_read_inside_the_dataset_only(tmp_path: Path):
    root = datumaro_yolo(tmp_path / "yolo")
    (tmp_path / "outside.names").write_text("secret\n" * 10)
    (root / "obj.data").write_text("classes = 10\ntrain = data/train.txt\nnames = ../outside.names\nbackup = backup/\n")
    with pytest.raises(FormatError, match=r"obj\.data: class names file .*yolo/outside\.names not found"):
        load(root, None, Report())
    (root / "obj.data").write_text("classes = 10\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    assert class_names(load(root, None, Report())) == ["label_2", "label_4"]


# ------------------------------------------------------------------------------------------ CSV per split
VOTT_HEADER = '"image","xmin","ymin","xmax","ymax","label"\n'


def test_vott_csv_exports_one_per_split_are_each_read(tmp_path: Path):
    """datumaro's ``vott_csv_dataset``: train-export.csv and test-export.csv beside the images, VoTT's header."""
    for k in range(1, 5):
        make_image(tmp_path / f"img000{k}.jpg", W, H, seed=k)
    (tmp_path / "test-export.csv").write_text(VOTT_HEADER + '"img0001.jpg",10,5,20,17,"helmet"\n'
                                                            '"img0002.jpg",11.5,12,21.7,32.5,"person"\n')
    (tmp_path / "train-export.csv").write_text(VOTT_HEADER + '"img0003.jpg",6.7,10.3,10,15,"helmet"\n'
                                                             '"img0004.jpg",1,2,12,14,"helmet"\n'
                                                             '"img0003.jpg",13.7,20.2,45.6,43.6,"person"\n')
    report = Report()
    ds = load(tmp_path, None, report)
    assert sorted((im.file_name, im.split, len(im.annotations)) for im in ds.images) == [
        ("img0001.jpg", "test", 1), ("img0002.jpg", "test", 1), ("img0003.jpg", "train", 2), ("img0004.jpg", "train", 1)]
    assert sorted(c.name for c in ds.categories) == ["helmet", "person"] and not report.changes


def test_train_and_valid_csvs_side_by_side(tmp_path: Path):
    for split in ("train", "valid"):
        make_image(tmp_path / f"{split}.jpg", W, H)
        (tmp_path / f"{split}.csv").write_text(f"filename,class,xmin,ymin,xmax,ymax\n{split}.jpg,cat,1,2,30,40\n")
    assert sorted((im.file_name, im.split) for im in load(tmp_path, None, Report()).images) == [
        ("train.jpg", "train"), ("valid.jpg", "val")]


@pytest.mark.parametrize("files,why", [(["export.csv", "export-copy.csv"], "export-copy.csv, export.csv name(s) no split"),
                                       (["train.csv", "train_old.csv"], "train.csv, train_old.csv all name train")])
def test_csvs_that_cannot_be_told_apart_are_named(tmp_path: Path, files: list[str], why: str):
    make_image(tmp_path / "a.jpg", W, H)
    for name in files:
        (tmp_path / name).write_text("filename,class,xmin,ymin,xmax,ymax\na.jpg,cat,1,2,30,40\n")
    with pytest.raises(DetftError, match=re.escape(f"2 .csv files and their names do not tell them apart ({why})")):
        load(tmp_path, "csv", Report())
