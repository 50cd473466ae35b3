"""A corpus generated here: every value of a valid file of each format replaced, one at a time, by a
hostile one (NaN, Infinity, 1e400, a 400-digit integer, a string, a list, an object, null...). Every
reader must end in a named error (DetftError) or a reported drop, never a traceback or a silent loss."""

from __future__ import annotations

import copy
import math
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_image

from detft.operations.convert import load
from detft.errors import DetftError
from detft.annotations.report import Report

BIG = "9" * 400
HOSTILE_JSON: list[Any] = [float("nan"), float("inf"), -float("inf"), 1e308 * 10, int(BIG), "x1", "", [1], {"a": 1},
                           None, True, -1, 0]
HOSTILE_TEXT = ["nan", "NaN", "inf", "-Infinity", "1e400", BIG, "abc", "", "-1", "0x10", "1,5"]


def leaf_paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every position in a JSON document (containers too), as a key path."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaf_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from leaf_paths(v, (*prefix, i))


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    out = copy.deepcopy(doc)
    if not path:
        return value
    target = out
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return out


def variants(doc: Any) -> Iterator[tuple[str, Any]]:
    for path in leaf_paths(doc):
        for v in HOSTILE_JSON:
            yield f"{'/'.join(map(str, path))}={v!r:.20}", replaced(doc, path, v)


def outcome(src: Path, fmt: str) -> str:
    """'error' (named), or 'ok N' with N annotations kept + annotations reported lost."""
    report = Report()
    try:
        ds = load(src, fmt, report)
    except DetftError as e:
        assert str(e), "an error must say something"
        return "error"
    return f"ok {ds.num_annotations} lost {report.annotations_lost} changes {len(report)}"


# variants that really say "no annotations" (a COCO image-info file has none)
NO_ANNOTATIONS = {"annotations=None"}


def check_corpus(tmp: Path, fmt: str, valid: Any, write: Any, n_valid: int) -> int:
    """Run every variant; anything but a DetftError or a clean load fails the test, naming the variant.
    A load that keeps fewer annotations than the valid file must have reported each one lost."""
    assert outcome(write(tmp / "valid", valid), fmt).startswith(f"ok {n_valid} lost 0 ")
    failures, n = [], 0
    for name, doc in variants(valid):
        n += 1
        folder = tmp / f"v{n}"
        try:
            result = outcome(write(folder, doc), fmt)
        except Exception as e:  # noqa: BLE001  what the test exists to find
            failures.append(f"{name}: {e.__class__.__name__}: {e}"[:200])
            continue
        if result.startswith("ok") and name not in NO_ANNOTATIONS:
            kept, lost = int(result.split()[1]), int(result.split()[3])
            if kept + lost < n_valid and not int(result.split()[5]):
                failures.append(f"{name}: {n_valid - kept} annotation(s) lost without a report entry")
    assert not failures, f"{len(failures)} of {n} variants:\n" + "\n".join(failures[:40])
    return n


def with_image(folder: Path, name: str = "a.jpg", size: tuple[int, int] = (64, 48)) -> None:
    if not (folder / name).exists():
        make_image(folder / name, *size)


def coco_writer(folder: Path, doc: Any) -> Path:
    with_image(folder)
    (folder / "instances.json").write_text(json.dumps(doc))
    return folder / "instances.json"


COCO = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10], "iscrowd": 0, "area": 200},
                        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [10, 10, 20, 20], "iscrowd": 0,
                         "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]], "area": 400},
                        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [40, 20, 10, 10], "iscrowd": 1,
                         "segmentation": {"size": [48, 64], "counts": [1940, 10, 38, 10, 1074]}}]}


def labelme_writer(folder: Path, doc: Any) -> Path:
    with_image(folder)
    (folder / "a.json").write_text(json.dumps(doc))
    return folder


LABELME = {"version": "5.4.1", "flags": {}, "imagePath": "a.jpg", "imageData": None, "imageHeight": 48, "imageWidth": 64,
           "shapes": [{"label": "cat", "points": [[2, 3], [22, 13]], "group_id": None, "description": "",
                       "shape_type": "rectangle", "flags": {}, "mask": None},
                      {"label": "dog", "points": [[10, 10], [30, 10], [30, 30], [10, 30]], "group_id": None,
                       "description": "", "shape_type": "polygon", "flags": {}, "mask": None},
                      {"label": "dog", "points": [[40, 20], [45, 20]], "group_id": None, "description": "",
                       "shape_type": "circle", "flags": {}, "mask": None}]}


def via_writer(folder: Path, doc: Any) -> Path:
    with_image(folder)
    (folder / "via_region_data.json").write_text(json.dumps(doc))
    return folder / "via_region_data.json"


VIA = {"a.jpg1234": {"filename": "a.jpg", "size": 1234, "file_attributes": {}, "regions": [
    {"shape_attributes": {"name": "rect", "x": 2, "y": 3, "width": 20, "height": 10},
     "region_attributes": {"class": "cat"}},
    {"shape_attributes": {"name": "polygon", "all_points_x": [10, 30, 30, 10], "all_points_y": [10, 10, 30, 30]},
     "region_attributes": {"class": "dog"}},
    {"shape_attributes": {"name": "ellipse", "cx": 45, "cy": 25, "rx": 5, "ry": 4, "theta": 0.3},
     "region_attributes": {"class": "dog"}}]}}


def masks_writer(folder: Path, doc: Any) -> Path:
    import numpy as np
    from PIL import Image

    with_image(folder / "images")
    if not (folder / "masks" / "a.png").exists():
        m = np.zeros((48, 64), np.uint8)
        m[5:20, 5:30] = 1
        m[25:40, 30:60] = 2
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(folder / "masks" / "a.png")
    (folder / "classes.json").write_text(json.dumps(doc))
    return folder


MASKS = {"default": {"1": "cat", "2": "dog"}}


@pytest.mark.parametrize("fmt,valid,writer,n", [
    ("coco", COCO, coco_writer, 3), ("labelme", LABELME, labelme_writer, 3), ("via", VIA, via_writer, 3),
    ("masks", MASKS, masks_writer, 2)])
def test_every_json_value_replaced_by_a_hostile_one(tmp_path: Path, fmt, valid, writer, n):
    assert check_corpus(tmp_path, fmt, valid, writer, n) > 50


# ---- text formats: every token of a valid file replaced ----------------------------------------

def token_variants(text: str) -> Iterator[tuple[str, str]]:
    import re

    spans = [m.span() for m in re.finditer(r"[^\s,;\"<>=/]+", text)]
    for a, b in spans:
        for v in HOSTILE_TEXT:
            yield f"{text[a:b]}@{a}={v[:12]}", text[:a] + v + text[b:]


def check_text_corpus(tmp: Path, fmt: str, valid: str, write: Any, n_valid: int) -> int:
    assert outcome(write(tmp / "valid", valid), fmt).startswith(f"ok {n_valid} lost 0 ")
    failures, n = [], 0
    for name, text in token_variants(valid):
        n += 1
        try:
            result = outcome(write(tmp / f"v{n}", text), fmt)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name}: {e.__class__.__name__}: {e}"[:200])
            continue
        if result.startswith("ok"):
            kept, lost, changes = (int(result.split()[i]) for i in (1, 3, 5))
            if kept + lost < n_valid and not changes:
                failures.append(f"{name}: {n_valid - kept} annotation(s) lost without a report entry")
    assert not failures, f"{len(failures)} of {n} variants:\n" + "\n".join(failures[:40])
    return n


def yolo_writer(folder: Path, labels: str) -> Path:
    with_image(folder / "images" / "train")
    (folder / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (folder / "labels" / "train" / "a.txt").write_text(labels)
    (folder / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n  0: cat\n  1: dog\n")
    return folder


def csv_writer(folder: Path, text: str) -> Path:
    with_image(folder)
    (folder / "labels.csv").write_text(text)
    return folder / "labels.csv"


def voc_writer(folder: Path, xml: str) -> Path:
    with_image(folder / "JPEGImages")
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    (folder / "Annotations" / "a.xml").write_text(xml)
    return folder


def cvat_writer(folder: Path, xml: str) -> Path:
    with_image(folder / "images")
    (folder / "annotations.xml").write_text(xml)
    return folder


YOLO_LABELS = "0 0.2 0.2 0.3 0.2\n1 0.5 0.5 0.6 0.1 0.7 0.5 0.5 0.7\n"
CSV = "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,64,48,cat,2,3,22,13\na.jpg,64,48,dog,10,10,30,30\n"
VOC = ("<annotation><folder>JPEGImages</folder><filename>a.jpg</filename><size><width>64</width><height>48</height>"
       "<depth>3</depth></size><object><name>cat</name><difficult>0</difficult><bndbox><xmin>3</xmin><ymin>4</ymin>"
       "<xmax>22</xmax><ymax>13</ymax></bndbox></object></annotation>")
CVAT = ('<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        '<image id="0" name="a.jpg" width="64" height="48">'
        '<box label="cat" occluded="0" source="manual" xtl="2.00" ytl="3.00" xbr="22.00" ybr="13.00" z_order="0"></box>'
        '<polygon label="dog" occluded="0" source="manual" points="10.00,10.00;30.00,10.00;30.00,30.00;10.00,30.00" '
        'z_order="0"></polygon></image></annotations>')


@pytest.mark.parametrize("fmt,valid,writer,n", [
    ("yolo", YOLO_LABELS, yolo_writer, 2), ("csv", CSV, csv_writer, 2), ("voc", VOC, voc_writer, 1),
    ("cvat", CVAT, cvat_writer, 2)])
def test_every_token_replaced_by_a_hostile_one(tmp_path: Path, fmt, valid, writer, n):
    assert check_text_corpus(tmp_path, fmt, valid, writer, n) > 30


# ---- one text decoder, bounded YAML --------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_text_files_decode_as_utf8_or_with_a_bom(tmp_path: Path, encoding: str):
    folder = yolo_writer(tmp_path / "ds", YOLO_LABELS)
    (folder / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n  0: chat\n  1: chien ü\n", encoding=encoding)
    (folder / "labels" / "train" / "a.txt").write_text(YOLO_LABELS, encoding=encoding)
    ds = load(folder, "yolo", Report())
    assert [c.name for c in ds.categories] == ["chat", "chien ü"] and ds.num_annotations == 2


def test_other_encodings_are_a_named_error_with_the_byte_offset(tmp_path: Path):
    folder = yolo_writer(tmp_path / "ds", YOLO_LABELS)
    (folder / "data.yaml").write_bytes("path: .\ntrain: images/train\nnames: [caf\u00e9]\n".encode("latin-1"))
    with pytest.raises(DetftError, match=r"data\.yaml: not UTF-8 text \(invalid continuation byte at byte 39\)"):
        load(folder, "yolo", Report())


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path):
    import time

    folder = yolo_writer(tmp_path / "ds", YOLO_LABELS)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    (folder / "data.yaml").write_text("\n".join(lines) + "\ntrain: images/train\nnames: *a11\n")
    t0 = time.monotonic()
    with pytest.raises(DetftError, match="alias bomb"):
        load(folder, "yolo", Report())
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("text,match", [
    ("!!python/object/apply:os.system ['touch pwned']\n", "invalid YAML"),
    ("names: [a]\ntrain: images/train\n" + "#" * (2 << 20), "larger than"),
    ("- just\n- a list\n", "is a mapping"),
    ("train: images/train\nnames: [[1, 2], b]\n", "not a name"),
])
def test_hostile_yaml_is_a_named_error(tmp_path: Path, text: str, match: str):
    folder = yolo_writer(tmp_path / "ds", YOLO_LABELS)
    (folder / "data.yaml").write_text(text)
    with pytest.raises(DetftError, match=match):
        load(folder, "yolo", Report())
    assert not (folder / "pwned").exists() and not Path("pwned").exists()


def test_an_unbalanced_csv_quote_names_the_line(tmp_path: Path):
    text = CSV + 'a.jpg,64,48,"cat,2,3,22,13\n' + "a.jpg,64,48,dog,10,10,30,30\n" * 5
    with pytest.raises(DetftError, match=r"labels\.csv:4: a quoted field runs from line 4"):
        load(csv_writer(tmp_path, text), "csv", Report())


def test_a_nul_byte_in_a_class_name_is_a_reported_drop(tmp_path: Path):
    report = Report()
    ds = load(csv_writer(tmp_path, CSV.replace("cat", "c\x00t")), "csv", report)
    assert ds.num_annotations == 1 and [(c.kind, c.where.rsplit(":", 1)[-1]) for c in report.changes] == [
        ("bad_class_name", "2")]


# ---- drops that used to be silent ------------------------------------------------------------------

def test_labelme_json_without_image_path_is_reported(tmp_path: Path):
    folder = labelme_writer(tmp_path, LABELME)
    (folder / "b.json").write_text(json.dumps({k: v for k, v in LABELME.items() if k != "imagePath"}))
    report = Report()
    load(folder, "labelme", report)
    lost = [c for c in report.changes if c.kind == "no_image_path"]
    assert len(lost) == 1 and lost[0].annotations_lost == 3 and "b.json" in lost[0].where


def test_orphan_yolo_labels_are_reported(tmp_path: Path):
    folder = yolo_writer(tmp_path, YOLO_LABELS)
    (folder / "labels" / "train" / "ghost.txt").write_text(YOLO_LABELS)
    (folder / "labels" / "train" / "classes.txt").write_text("cat\ndog\n")
    report = Report()
    load(folder, "yolo", report)
    assert [(c.kind, c.annotations_lost) for c in report.changes] == [("orphan_label", 2)]


def test_orphan_mask_pngs_are_reported(tmp_path: Path):
    from PIL import Image

    folder = masks_writer(tmp_path, MASKS)
    Image.open(folder / "masks" / "a.png").save(folder / "masks" / "ghost.png")
    report = Report()
    load(folder, "masks", report)
    assert [(c.kind, c.annotations_lost) for c in report.changes] == [("orphan_mask", 2)]


def test_coco_segmentation_given_as_a_string_is_a_reported_drop(tmp_path: Path):
    doc = copy.deepcopy(COCO)
    doc["annotations"][1]["segmentation"] = "10 10 30 10 30 30"
    report = Report()
    ds = load(coco_writer(tmp_path, doc), "coco", report)
    assert ds.num_annotations == 2 and [c.kind for c in report.changes] == ["bad_segmentation"]


def test_a_self_intersecting_polygon_with_area_is_kept(tmp_path: Path):
    doc = copy.deepcopy(COCO)
    doc["annotations"][1]["segmentation"] = [[10, 10, 30, 30, 30, 10, 10, 30]]  # a bow-tie: signed area 0
    report = Report()
    ds = load(coco_writer(tmp_path, doc), "coco", report)
    assert ds.num_annotations == 3 and [c.kind for c in report.changes] == ["self_intersecting_polygon"]


# ---- detft eval --dets ---------------------------------------------------------------------------

GOOD_DET = {"image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10], "score": 0.9}
BAD_DETS = [
    {**GOOD_DET, "score": float("nan")}, {**GOOD_DET, "score": -0.5}, {**GOOD_DET, "score": "0.9"},
    {**GOOD_DET, "bbox": [1, 2, 3]}, {**GOOD_DET, "bbox": [1, 2, -3, 4]}, {**GOOD_DET, "bbox": [1, float("inf"), 3, 4]},
    {**GOOD_DET, "image_id": 99}, {**GOOD_DET, "image_id": "1"}, {**GOOD_DET, "category_id": 7},
    {**GOOD_DET, "category_id": [1]}, {k: v for k, v in GOOD_DET.items() if k != "score"},
    {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [48, 64], "counts": "!!bad rle"}},
    {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [48, 64], "counts": [5, 5]}},
    {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": [[1, 2, 3]]}, "not an object",
]


@pytest.mark.parametrize("bad", range(len(BAD_DETS)))
def test_eval_dets_validates_every_detection(tmp_path: Path, bad: int, capsys):
    from detft.cli import main

    gt = coco_writer(tmp_path, COCO)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([GOOD_DET, BAD_DETS[bad]]))
    assert main(["eval", "--data", str(gt), "--dets", str(dets), "--out", str(tmp_path / "e")]) == 1
    assert "dets.json (detection 1)" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("gt_doc,argv,match", [
    ({"images": [], "annotations": []}, [], "'categories' list"),
    ({"categories": [], "annotations": []}, [], "'images' list"),
    (COCO, ["--max-dets", "0"], "--max-dets: 0 is not an integer of at least 1"),
])
def test_eval_dets_rejects_bad_ground_truth_and_settings(tmp_path: Path, gt_doc, argv, match, capsys):
    from detft.cli import main

    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(gt_doc))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([GOOD_DET]))
    try:
        code = main(["eval", "--data", str(gt), "--dets", str(dets), "--out", str(tmp_path / "e"), *argv])
    except SystemExit as e:  # a number out of range is refused as the command line is parsed (exit 2, usage)
        code = e.code
    assert code == (2 if argv else 1)
    assert match in capsys.readouterr().err


def test_integer_valued_float_ids_still_match(tmp_path: Path):
    """pandas writes integer columns holding a NaN elsewhere as floats: 1.0 is image 1."""
    doc = copy.deepcopy(COCO)
    doc["images"][0]["id"] = 1.0
    for a in doc["annotations"]:
        a["image_id"], a["category_id"] = float(a["image_id"]), float(a["category_id"])
    report = Report()
    assert load(coco_writer(tmp_path, doc), "coco", report).num_annotations == 3 and not report.changes


@pytest.mark.parametrize("field,value", [("bbox", [2, float("nan"), 20, 10]), ("bbox", [2, 3, float("inf"), 10]),
                                         ("bbox", [2, 3, -20, 10]),
                                         ("segmentation", [[10, 10, float("nan"), 10, 30, 30, 10, 30]])])
def test_eval_dets_names_ground_truth_with_coordinates_that_are_not_numbers(tmp_path: Path, field, value, capsys):
    """A NaN ground-truth box is an object nothing can match: scored, it changes the AP without a word."""
    from detft.cli import main

    doc = copy.deepcopy(COCO)
    doc["annotations"][1][field] = value
    gt, dets = tmp_path / "gt.json", tmp_path / "dets.json"
    gt.write_text(json.dumps(doc))  # Python writes NaN and Infinity into JSON, as many tools do
    dets.write_text(json.dumps([GOOD_DET]))
    assert main(["eval", "--data", str(gt), "--dets", str(dets), "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert "gt.json (annotations[1])" in err and ("not a finite number" in err or "finite numbers" in err), err
    assert not (tmp_path / "e").exists()


def test_eval_data_reports_ground_truth_with_coordinates_that_are_not_numbers(tmp_path: Path):
    """Through a reader (``eval --data``), such an object is dropped and counted like every reader's bad box."""
    doc = copy.deepcopy(COCO)
    doc["annotations"][0]["bbox"] = [2, float("nan"), 20, 10]
    doc["annotations"][1]["segmentation"] = [[10, 10, float("inf"), 10, 30, 30, 10, 30]]
    report = Report()
    ds = load(coco_writer(tmp_path, doc), "coco", report)
    kept = [a for im in ds.images for a in im.annotations]
    finite = lambda values: all(math.isfinite(v) for v in values)  # noqa: E731
    assert all(finite(a.bbox) and all(finite(p) for p in a.polygons or []) for a in kept)
    assert report.annotations_lost >= 1 and len(kept) + report.annotations_lost == 3
