"""The tools people label with (#35): Label Studio both ways (its JSON and JSON-MIN exports, brush masks, upload
names, several annotators, pre-annotations), KITTI and CreateML, each fixture in the shape the tool or publisher writes
it (Label Studio's export as label-studio-converter's test data holds it, KITTI as datumaro's test assets and the
devkit, CreateML as Roboflow exports it), and a round trip COCO -> each -> COCO."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import Oracle, make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.geometry import decode_mask, encode_mask
from detft.annotations.report import Report
from detft.config import EMBEDDED_DATA
from detft.errors import DataLossError, FormatError
from detft.formats import brush, detect, write_dataset
from detft.formats.xmlsafe import parse
from detft.labelling.prelabels import save_labels
from detft.operations.convert import convert, load


# ------------------------------------------------------------------------------------------ brush codec
def rle_pack(values: np.ndarray, sizes=(3, 4, 8, 16)) -> list[int]:
    """thi.ng rle-pack's encoder as Label Studio's editor runs it on a canvas: runs of one value as repeat blocks,
    stretches of changing values as literal blocks (several values in one block), each as short as it fits."""
    bits, i, n = [f"{len(values):032b}", "00111", *(f"{s - 1:04b}" for s in sizes)], 0, len(values)
    while i < n:
        j = i
        while j + 1 < n and values[j + 1] == values[i]:
            j += 1
        if j > i:  # a run
            length, literal = j - i + 1, None
        else:  # a literal stretch: until two equal values follow each other
            j = i
            while j + 1 < n and values[j + 1] != values[j] and j - i + 1 < 1 << sizes[-1]:
                j += 1
            length, literal = j - i + 1, values[i:j + 1]
        length = min(length, 1 << sizes[-1])
        index = next(k for k, s in enumerate(sizes) if length <= 1 << s)
        head = f"{0 if literal is not None else 1}{index:02b}{length - 1:0{sizes[index]}b}"
        body = "".join(f"{int(v):08b}" for v in literal) if literal is not None else f"{int(values[i]):08b}"
        bits.append(head + body)
        i += length
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return list(int(stream, 2).to_bytes(len(stream) // 8, "big"))


def editor_canvas(mask: np.ndarray, colour=(255, 0, 0)) -> np.ndarray:
    """The RGBA canvas the editor encodes: the label's colour where the brush painted, anti-aliased edges with a
    partial alpha, 0 elsewhere."""
    h, w = mask.shape
    canvas = np.zeros((h, w, 4), np.uint8)
    canvas[mask] = (*colour, 255)
    edge = np.zeros_like(mask)
    edge[:, 1:] |= mask[:, :-1] & ~mask[:, 1:]  # one pixel right of every right edge: half covered
    canvas[edge & ~mask] = (*colour, 96)
    return canvas, mask | edge


def test_brush_codes_decode_as_the_editor_wrote_them_and_encode_as_the_converter_does():
    rng = np.random.default_rng(0)
    mask = np.zeros((37, 53), bool)
    mask[5:20, 7:40] = True
    mask[rng.integers(0, 37, 30), rng.integers(0, 53, 30)] = True  # specks: literal blocks
    canvas, painted = editor_canvas(mask)
    code = rle_pack(canvas.ravel())
    assert (brush.decode(code, 37, 53) == painted).all()
    assert (brush.decode(brush.encode(mask), 37, 53) == mask).all()
    assert (brush.decode(rle_pack(np.repeat(mask.ravel().astype(np.uint8) * 255, 4)), 37, 53) == mask).all()
    with pytest.raises(brush.BrushError, match="not the 8 of a 2x1"):
        brush.decode(code, 1, 2)
    with pytest.raises(brush.BrushError, match="the code ends"):
        brush.decode(code[:20], 37, 53)


# ------------------------------------------------------------------------------------------ Label Studio
W, H = 200, 150
CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Airplane" background="green"/>
    <Label value="Car" background="blue"/>
  </RectangleLabels>
  <PolygonLabels name="polygon" toName="image" strokeWidth="3">
    <Label value="Airplane" background="green"/>
    <Label value="Car" background="blue"/>
  </PolygonLabels>
  <BrushLabels name="brush" toName="image">
    <Label value="Airplane" background="green"/>
    <Label value="Car" background="blue"/>
  </BrushLabels>
  <EllipseLabels name="ellipse" toName="image"><Label value="Wheel"/></EllipseLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="Nose"/></KeyPointLabels>
  <Choices name="quality" toName="image"><Choice value="good"/><Choice value="blurry"/></Choices>
</View>
"""


def result(kind: str, value: dict, rid: str, from_name: str, **extra) -> dict:
    """One result as Label Studio exports it (label-studio-converter's tests/data shape)."""
    return {"id": rid, "type": kind, "value": value, "origin": "manual", "to_name": "image", "from_name": from_name,
            "image_rotation": 0, "original_width": W, "original_height": H, **extra}


def annotation(aid: int, results: list, updated: str, **extra) -> dict:
    return {"id": aid, "completed_by": 1, "result": results, "was_cancelled": False, "ground_truth": False,
            "created_at": updated, "updated_at": updated, "lead_time": 8.65, "prediction": {}, "result_count": 0,
            "task": 1, "project": 29, "parent_prediction": None, "parent_annotation": None, **extra}


def task(tid: int, image: str, annotations: list, upload: str | None = None, **extra) -> dict:
    return {"id": tid, "annotations": annotations, "file_upload": upload, "drafts": [], "predictions": [],
            "data": {"image": image}, "meta": {}, "created_at": "2024-01-30T02:40:33.867975Z",
            "updated_at": "2024-01-30T02:40:43.923985Z", "inner_id": tid, "total_annotations": len(annotations),
            "cancelled_annotations": 0, "total_predictions": 0, "project": 29, **extra}


@pytest.fixture
def ls_export(tmp_path: Path) -> Path:
    """A project export: uploads named ``/data/upload/29/<8 hex>-<name>``, images downloaded without the prefix into
    ``images/``; a rectangle (one rotated), a polygon, a brush mask, an ellipse, a keypoint and a task-level choice; a
    task two people annotated (one cancelled, one older), a skipped task and a task nobody labelled."""
    root = tmp_path / "project-29-at-2024-01-30-02-41-4e2b9c1f"
    for i, name in enumerate(["000000000025.jpg", "plane 2.jpg", "skipped.jpg", "unlabelled.jpg"]):
        make_image(root / "images" / name, W, H, seed=i)
    mask = np.zeros((H, W), bool)
    mask[40:90, 100:160] = True
    canvas, painted = editor_canvas(mask, (0, 128, 0))
    first = [
        result("rectanglelabels", {"x": 10, "y": 20, "width": 25, "height": 40, "rotation": 0,
                                   "rectanglelabels": ["Airplane"]}, "r1", "label"),
        result("rectanglelabels", {"x": 50, "y": 10, "width": 20, "height": 20, "rotation": 90,
                                   "rectanglelabels": ["Car"]}, "r2", "label"),
        result("polygonlabels", {"points": [[60, 60], [80, 60], [70, 90]], "closed": True,
                                 "polygonlabels": ["Car"]}, "p1", "polygon"),
        result("choices", {"choices": ["blurry"]}, "p1", "quality"),  # per-region choice: an attribute of p1
        result("brushlabels", {"format": "rle", "rle": rle_pack(canvas.ravel()), "brushlabels": ["Airplane"]},
               "b1", "brush"),
        result("ellipselabels", {"x": 50, "y": 50, "radiusX": 10, "radiusY": 5, "rotation": 0,
                                 "ellipselabels": ["Wheel"]}, "e1", "ellipse"),
        result("keypointlabels", {"x": 5, "y": 5, "width": 0.5, "keypointlabels": ["Nose"]}, "k1", "kp"),
        {"id": "c0", "type": "choices", "value": {"choices": ["good"]}, "origin": "manual", "to_name": "image",
         "from_name": "quality"},
    ]
    latest = [result("rectanglelabels", {"x": 0, "y": 0, "width": 50, "height": 50, "rotation": 0,
                                         "rectanglelabels": ["Car"]}, "x1", "label")]
    older = [result("rectanglelabels", {"x": 5, "y": 5, "width": 10, "height": 10, "rotation": 0,
                                        "rectanglelabels": ["Airplane"]}, "x0", "label")] * 3
    tasks = [
        task(1, "/data/upload/29/e97d4735-000000000025.jpg", [annotation(22, first, "2024-01-30T02:40:43Z")],
             upload="e97d4735-000000000025.jpg"),
        task(2, "/data/upload/29/0a1b2c3d-plane%202.jpg", [
            annotation(23, older, "2024-01-30T02:41:00Z"),
            annotation(24, latest, "2024-01-31T09:00:00Z"),
            annotation(25, older, "2024-02-01T09:00:00Z", was_cancelled=True)], upload="0a1b2c3d-plane 2.jpg"),
        task(3, "/data/upload/29/ffffffff-skipped.jpg", [annotation(26, [], "2024-01-30T02:41:00Z",
                                                                     was_cancelled=True)]),
        task(4, "/data/upload/29/12345678-unlabelled.jpg", []),
    ]
    (root / "project-29-at-2024-01-30-02-41-4e2b9c1f.json").write_text(json.dumps(tasks, indent=1))
    (root / "label_config.xml").write_text(CONFIG)
    return root


def test_a_label_studio_export_loads_whole_with_no_flags(ls_export: Path):
    assert detect(ls_export) == "labelstudio"
    report = Report()
    ds = load(ls_export, None, report)
    names = {c.id: c.name for c in ds.categories}
    assert [c.name for c in ds.sorted_categories()][:3] == ["Airplane", "Car", "Wheel"]  # the config's order
    images = {im.file_name: im for im in ds.images}
    assert sorted(images) == ["000000000025.jpg", "plane 2.jpg"]  # skipped and unlabelled tasks left out, said
    objects = {(names[a.category_id], a.has_mask): a for a in images["000000000025.jpg"].annotations}
    assert len(images["000000000025.jpg"].annotations) == 5
    box = objects[("Airplane", False)]
    assert box.bbox == pytest.approx((20.0, 30.0, 70.0, 90.0))  # percent of 200x150
    turned = next(a for a in images["000000000025.jpg"].annotations if names[a.category_id] == "Car" and
                  a.polygons and len(a.polygons[0]) == 8)  # 90 degrees clockwise about its top-left corner
    assert turned.bbox == pytest.approx((100.0 - 30.0, 15.0, 100.0, 15.0 + 40.0))
    polygon = next(a for a in images["000000000025.jpg"].annotations if a.polygons and len(a.polygons[0]) == 6)
    assert polygon.polygons[0] == pytest.approx([120, 90, 160, 90, 140, 135]) and polygon.attributes == {
        "quality": "blurry"}
    mask = next(a for a in images["000000000025.jpg"].annotations if a.rle is not None)
    assert names[mask.category_id] == "Airplane" and decode_mask(mask.rle).sum() == 50 * 61  # painted + its edge
    (latest,) = images["plane 2.jpg"].annotations  # the latest annotation, not the older or the cancelled one
    assert names[latest.category_id] == "Car" and latest.bbox == pytest.approx((0, 0, 100, 75))
    notes = "\n".join(report.notes)
    assert "2 upload prefix removed" in notes and "1 tasks annotated several times" in notes
    assert "2 annotations not read" in notes and "1 tasks without annotations" in notes
    assert "1 choices/text of the task" in notes and "ellipses as" in notes
    assert any(c.kind == "skipped_task" for c in report.changes)
    assert [c.detail.split(":")[0] for c in report.changes if c.kind == "unread_result"] == ["a 'keypointlabels' result"]


def test_label_studio_json_min_loads_too(tmp_path: Path):
    """JSON-MIN as label-studio-converter writes it: one record per task, each control's regions under its name."""
    make_image(tmp_path / "example.png", 128, 128)
    records = [{"image": "/data/upload/29/example.png", "id": 87, "label": [
        {"points": [[44.44, 48.25], [42.54, 60.32], [56.19, 50.79]], "closed": True, "polygonlabels": ["Airplane"],
         "original_width": 128, "original_height": 128}], "box": [
        {"x": 10, "y": 10, "width": 50, "height": 25, "rotation": 0, "rectanglelabels": ["Car"],
         "original_width": 128, "original_height": 128}],
        "annotator": 1, "annotation_id": 22, "created_at": "2024-01-30T02:40:43.893565Z", "lead_time": 8.65}]
    (tmp_path / "export.json").write_text(json.dumps(records))
    ds = load(tmp_path, None, Report())
    (image,) = ds.images
    assert image.path == tmp_path / "example.png" and len(image.annotations) == 2
    assert sorted(c.name for c in ds.categories) == ["Airplane", "Car"]


def test_label_studio_round_trip_of_boxes_polygons_and_masks(tmp_path: Path):
    """detft -> tasks.json + labeling_config.xml -> detft: boxes, polygons and masks (as brush regions, exact)."""
    mask = np.zeros((48, 64), np.uint8)
    mask[10:20, 30:50] = 1
    src = make_image(tmp_path / "src" / "a b.jpg", 64, 48)
    ds = Dataset([ImageRecord("a b.jpg", 64, 48, path=src, annotations=[
        Annotation(1, (4.25, 5.5, 30.0, 40.0)), Annotation(2, (10.0, 8.0, 50.0, 30.0),
                                                           polygons=[[10.0, 8.0, 50.0, 8.0, 30.0, 30.0]]),
        Annotation(1, (30.0, 10.0, 50.0, 20.0), rle=encode_mask(mask))])], [Category(1, "cell"), Category(2, "Zelle")])
    write_dataset("labelstudio", ds, tmp_path / "ls", Report(), image_mode="copy")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=images/a%20b.jpg"
    assert [r["type"] for r in tasks[0]["annotations"][0]["result"]] == ["rectanglelabels", "polygonlabels",
                                                                           "brushlabels"]
    config = parse(tmp_path / "ls" / "labeling_config.xml")
    assert [t.tag for t in config] == ["Image", "RectangleLabels", "PolygonLabels", "BrushLabels"]
    assert [el.get("value") for el in config.find("RectangleLabels")] == ["cell", "Zelle"]
    back = load(tmp_path / "ls", None, Report())
    got = back.images[0].annotations
    assert got[0].bbox == pytest.approx((4.25, 5.5, 30.0, 40.0))
    assert got[1].polygons[0] == pytest.approx([10.0, 8.0, 50.0, 8.0, 30.0, 30.0])
    assert (decode_mask(got[2].rle) == mask).all()


def test_predict_writes_label_studio_pre_annotations(tmp_path: Path):
    """``predict --save-labels labelstudio``: tasks with predictions (model version, a score per region and per
    task) in the shape label-studio-converter's importers write, a config whose tag names are the regions'
    from_name; read back, they are the pre-labels, said; corrected (an annotation added), the annotation wins."""
    from PIL import Image

    shot = np.zeros((90, 120, 3), np.uint8)
    shot[6:40, 5:30] = 1
    shot[10:30, 50:90] = 2
    (tmp_path / "shots").mkdir()
    Image.fromarray(shot).save(tmp_path / "shots" / "a.png")
    saved = save_labels(Oracle(masks=False), tmp_path / "shots", "labelstudio", tmp_path / "pre", model_version="exp3")
    (t,) = json.loads((tmp_path / "pre" / "tasks.json").read_text())
    (prediction,) = t["predictions"]
    assert prediction["model_version"] == "exp3" and "annotations" not in t
    assert prediction["score"] == pytest.approx(np.mean([r["score"] for r in prediction["result"]]))
    config = parse(tmp_path / "pre" / "labeling_config.xml")
    tags = {el.get("name"): el.tag for el in config if el.tag.endswith("Labels")}
    for r in prediction["result"]:
        assert {"id", "type", "value", "from_name", "to_name", "original_width", "original_height", "score"} <= set(r)
        assert tags[r["from_name"]].lower() == r["type"] and r["to_name"] == config.find("Image").get("name")
    report = Report()
    pre = load(tmp_path / "pre", None, report)
    assert len(pre.images[0].annotations) == len(saved.dataset.images[0].annotations) == 2
    assert any("only predictions" in n and "exp3" in n for n in report.notes)
    corrected = {**t, "id": 1, "annotations": [{"id": 1, "result": prediction["result"][:1], "was_cancelled": False,
                                                "ground_truth": False, "updated_at": "2026-12-04T10:00:00Z"}]}
    (tmp_path / "pre" / "project-1-at-2026-12-04-10-05-1a2b3c4d.json").write_text(json.dumps([corrected]))
    report = Report()
    assert len(load(tmp_path / "pre", None, report).images[0].annotations) == 1  # the export beside the pre-labels
    assert any("read project-1-at-2026-12-04-10-05-1a2b3c4d.json: a project export" in n for n in report.notes)


# --------------------------------------------------------------------- Label Studio's exports as they land (#44)
def box_region(x: float, label: str) -> dict:
    """A rectangle as JSON-MIN holds it: the result's value, its label list, the annotator's image size."""
    return {"x": x, "y": 10, "width": 20, "height": 30, "rotation": 0, "rectanglelabels": [label],
            "original_width": W, "original_height": H}


def min_record(task_id: int, image: str, split: str, regions: list[dict] | None, annotation_id: int | None,
               at: str | None) -> dict:
    """One JSON-MIN record as label-studio-sdk's ``convert_to_json_min`` writes it (the server's export): the task's
    data fields flattened, its id, each control's regions under the control's name, then the annotation's fields
    (all None for a task nobody annotated); one record per annotation."""
    return {"image": image, "split": split, "id": task_id, **({"label": regions} if regions is not None else {}),
            "annotator": 1 if annotation_id is not None else None, "annotation_id": annotation_id,
            "created_at": at, "updated_at": at, "lead_time": 8.6 if at else None}


@pytest.fixture
def prelabelled(tmp_path: Path) -> Path:
    """A detft output imported into a project: tasks.json (no task ids) and its images, under a document root."""
    out = tmp_path / "root" / "out1"
    images = [ImageRecord(n, W, H, path=make_image(tmp_path / "src" / n, W, H, seed=i),
                          annotations=[Annotation(1, (10.0, 15.0, 50.0, 60.0))])
              for i, n in enumerate(["a b.jpg", "c.jpg"])]
    write_dataset("labelstudio", Dataset(images, [Category(1, "Car"), Category(2, "Airplane")]), out, Report(),
                  image_mode="copy")
    return out


def json_min_export(task_images: tuple[str, str, str, str]) -> list[dict]:
    """The project's JSON-MIN export: task 2 annotated twice (the newer record first, as Label Studio writes them),
    task 3 annotated by nobody, task 4 annotated with no region (a negative)."""
    a, c, d, e = task_images
    return [min_record(1, a, "train", [box_region(5, "Car"), box_region(40, "Airplane")], 11, "2024-01-30T02:40:43Z"),
            min_record(2, c, "val", [box_region(50, "Airplane"), box_region(10, "Car")], 13, "2024-01-31T09:00:00Z"),
            min_record(2, c, "val", [box_region(5, "Car")], 12, "2024-01-30T02:41:00Z"),
            min_record(3, d, "train", None, None, None),
            min_record(4, e, "train", None, 14, "2024-01-30T02:42:00Z")]


LOCAL = ("/data/local-files/?d=out1/images/a%20b.jpg", "/data/local-files/?d=out1/images/c.jpg",
         "/data/upload/3/0a1b2c3d-d.jpg", "/data/upload/3/ffff0000-e.jpg")


def test_a_json_min_export_beside_tasks_json_is_the_one_read_with_its_splits(prelabelled: Path):
    """The corrections exported as JSON-MIN into detft's output folder win over the stale tasks.json; each task's
    latest annotation is read, the split the tasks' data held kept, the task nobody annotated left out (counted)."""
    (prelabelled / "project-3-at-2024-02-01-10-00-4e2b9c1f.json").write_text(
        json.dumps(json_min_export(LOCAL), indent=2))
    report = Report()
    ds = load(prelabelled, None, report)
    names = {c.id: c.name for c in ds.categories}
    images = {im.file_name: im for im in ds.images}
    assert sorted(images) == ["a b.jpg", "c.jpg"]  # e.jpg (an upload, not in the folder) is reported missing
    assert {n: im.split for n, im in images.items()} == {"a b.jpg": "train", "c.jpg": "val"}
    assert sorted(names[a.category_id] for a in images["c.jpg"].annotations) == ["Airplane", "Car"]  # annotation 13
    assert images["a b.jpg"].annotations[0].bbox == pytest.approx((10.0, 15.0, 50.0, 60.0))
    notes = "\n".join(report.notes)
    assert "read project-3-at-2024-02-01-10-00-4e2b9c1f.json: a project export, JSON-MIN, 4 labelled" in notes
    assert "not read: tasks.json: tasks to import" in notes
    assert "1 tasks without annotations" in notes and "1 tasks annotated several times (the latest read)" in notes
    assert "1 annotations not read" in notes
    assert [c.detail for c in report.changes if c.kind == "missing_image"] == ["image file 'e.jpg' not found"]


def test_json_min_whose_first_task_nobody_annotated_is_still_an_export(tmp_path: Path):
    make_image(tmp_path / "images" / "c.jpg", W, H)
    records = json_min_export(LOCAL)
    (tmp_path / "export.json").write_text(json.dumps([records[3], records[1]]))
    assert detect(tmp_path) == "labelstudio"
    (image,) = load(tmp_path, None, Report()).images
    assert image.file_name == "c.jpg" and len(image.annotations) == 2


def test_of_two_project_exports_the_one_with_the_latest_annotation_wins_whatever_the_file_times(
        prelabelled: Path):
    """JSON then JSON-MIN of the same project: the export holding the later edit is read, even when the other file
    was copied last (a file's time is not the work's)."""
    older = [task(2, LOCAL[1], [annotation(12, [result("rectanglelabels", {**box_region(5, "Car")}, "r1", "label")],
                                           "2024-01-30T02:41:00Z")])]
    (prelabelled / "corrected.json").write_text(json.dumps(older))
    newer = prelabelled / "newer-min.json"
    newer.write_text(json.dumps(json_min_export(LOCAL)))
    os.utime(newer, (1_000_000, 1_000_000))  # copied long ago
    report = Report()
    assert len({im.file_name for im in load(prelabelled, None, report).images}) == 2
    assert any("read newer-min.json" in n for n in report.notes)
    newer.unlink()
    report = Report()
    (image,) = load(prelabelled, None, report).images  # now the JSON export, over tasks.json
    assert image.file_name == "c.jpg" and len(image.annotations) == 1
    assert any("read corrected.json: a project export," in n for n in report.notes)


def test_an_export_of_unreviewed_pre_labels_holds_prediction_ids_only(prelabelled: Path, tmp_path: Path):
    """Label Studio exports a task's predictions as ids: alone, such an export is a named error; beside the
    pre-labels detft wrote, those are read, said."""
    ids_only = [task(k + 1, ref, [], predictions=[100 + k]) for k, ref in enumerate(LOCAL[:2])]
    alone = tmp_path / "project-7-at-2024-03-01-08-00-00aa11bb.json"
    alone.write_text(json.dumps(ids_only))
    with pytest.raises(FormatError, match="2 predictions are ids, not regions"):
        load(alone, None, Report())
    from PIL import Image

    shot = np.zeros((90, 120, 3), np.uint8)
    shot[10:30, 50:90] = 2  # an object the oracle predicts
    (tmp_path / "shots").mkdir()
    Image.fromarray(shot).save(tmp_path / "shots" / "a.png")
    pre = save_labels(Oracle(masks=False), tmp_path / "shots", "labelstudio", tmp_path / "pre",
                      model_version="v1").dataset
    (tmp_path / "pre" / alone.name).write_text(json.dumps(ids_only))
    report = Report()
    assert len(load(tmp_path / "pre", None, report).images) == len(pre.images)
    assert any("read tasks.json" in n and "0 labelled" in n for n in report.notes)


def test_label_studio_coco_export_without_images_finds_them_under_images_dir_at_any_depth(tmp_path: Path):
    """The server's COCO export (label-studio-sdk's convert_to_coco, images not downloaded): each image named by
    its task's URL, a task annotated twice listed twice (the newer first), an unannotated task's size null; the
    images lie in the user's own folder, split into subfolders, uploads without Label Studio's prefix."""
    for split, name in [("val", "a b.jpg"), ("val", "c.jpg"), ("train", "d.jpg"), ("train", "e.jpg")]:
        make_image(tmp_path / "mine" / split / name, W, H)
    images = [{"width": W, "height": H, "id": 0, "file_name": LOCAL[0]}, {"width": W, "height": H, "id": 1,
              "file_name": LOCAL[1]}, {"width": W, "height": H, "id": 2, "file_name": LOCAL[1]},
              {"width": None, "height": None, "id": 3, "file_name": LOCAL[2]},
              {"width": None, "height": None, "id": 4, "file_name": LOCAL[3]}]
    anns = [{"id": k, "image_id": image_id, "category_id": cat, "segmentation": [], "bbox": [x, 15, 40, 45],
             "ignore": 0, "iscrowd": 0, "area": 1800} for k, (image_id, cat, x) in
            enumerate([(0, 1, 10), (0, 0, 80), (1, 0, 100), (1, 1, 20), (2, 1, 10)])]
    export = tmp_path / "project-3-at-2024-02-01-10-00-4e2b9c1f"
    export.mkdir()
    (export / "result.json").write_text(json.dumps({"images": images, "categories": [
        {"id": 0, "name": "Airplane"}, {"id": 1, "name": "Car"}], "annotations": anns, "info": {
        "year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio", "url": "",
        "date_created": "2024-02-01 10:00:00.000000"}}))
    with pytest.raises(DataLossError):
        load(export / "result.json", None, Report())
    report = Report()
    ds = load(export / "result.json", None, report, images_dir=tmp_path / "mine")
    assert sorted(im.file_name for im in ds.images) == ["a b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    assert all(im.path is not None for im in ds.images) and sum(len(im.annotations) for im in ds.images) == 4
    assert [c.kind for c in report.changes] == ["duplicate_image"]  # the task's older annotation, listed again
    assert any("5 images named by a URL" in n for n in report.notes)


def test_label_studio_yolo_export_without_images(tmp_path: Path):
    """The server's YOLO export without images: classes.txt, notes.json, labels/<image stem>.txt (the stem as the
    task's URL has it: URL-encoded, with the upload prefix; an empty file for an unannotated task), images/ empty.
    Read alone every label is a named loss; with --images-dir the images are found at any depth, their splits
    taken from the folders they lie in."""
    export = tmp_path / "project-3-at-2024-02-01-10-00-4e2b9c1f"
    (export / "images").mkdir(parents=True)
    (export / "labels").mkdir()
    (export / "classes.txt").write_text("Airplane\nCar\n")
    (export / "notes.json").write_text(json.dumps({"categories": [{"id": 0, "name": "Airplane"},
                                                                  {"id": 1, "name": "Car"}],
                                                   "info": {"year": 2024, "version": "1.0",
                                                            "contributor": "Label Studio"}}, indent=2))
    (export / "labels" / "a%20b.txt").write_text("1 0.15 0.25 0.2 0.3\n0 0.5 0.25 0.2 0.3\n")
    (export / "labels" / "c.txt").write_text("1 0.15 0.25 0.2 0.3\n")
    (export / "labels" / "0a1b2c3d-d.txt").write_text("")
    (export / "labels" / "ffff0000-e.txt").write_text("")
    with pytest.raises(DataLossError, match=r"orphan_label \(3 annotation\(s\) in 2 change\(s\).*--images-dir"):
        load(export, None, Report())
    for split, name in [("val", "a b.jpg"), ("val", "c.jpg"), ("train", "d.jpg"), ("train", "e.jpg")]:
        # links to files elsewhere, as a detft output's images/ holds them: the folder the user named is followed
        (tmp_path / "mine" / split).mkdir(parents=True, exist_ok=True)
        (tmp_path / "mine" / split / name).symlink_to(make_image(tmp_path / "elsewhere" / name, W, H))
    report = Report()
    ds = load(export, None, report, images_dir=tmp_path / "mine")
    images = {im.file_name: im for im in ds.images}
    assert {n: (im.split, len(im.annotations)) for n, im in images.items()} == {
        "a b.jpg": ("val", 2), "c.jpg": ("val", 1), "d.jpg": ("train", 0), "e.jpg": ("train", 0)}
    assert images["c.jpg"].annotations[0].bbox == pytest.approx((10.0, 15.0, 50.0, 60.0))
    assert not report.changes and any("4 images paired" in n for n in report.notes)


# ------------------------------------------------------------------------------------------ KITTI
def test_kitti_as_the_benchmark_and_datumaro_lay_it_out(tmp_path: Path):
    """``training/image_2`` + ``training/label_2`` (lines as the devkit and datumaro's assets hold them, DontCare
    included, one with a score), ``testing/image_2`` with no labels: its images are not the training set's negatives."""
    root = tmp_path / "kitti"
    for i in range(3):
        make_image(root / "training" / "image_2" / f"00000{i}.png", 120, 80, seed=i)
    make_image(root / "testing" / "image_2" / "000000.png", 120, 80, seed=9)
    (root / "training" / "label_2").mkdir(parents=True)
    (root / "training" / "label_2" / "000000.txt").write_text(
        "Pedestrian 0.00 0 1.94 33.00 18.00 36.00 24.00 1.87 0.96 0.65 -8.50 2.07 23.02 1.59\n"
        "DontCare -1 -1 -10 60.00 17.00 72.00 28.50 -1 -1 -1 -1000 -1000 -1000 -10\n")
    (root / "training" / "label_2" / "000001.txt").write_text(
        "Truck 1.0 0 -1 0 1 2 3 -1 -1 -1 -1 -1 -1 -1\nVan 0.0 0 -1 0 5 1 8 -1 -1 -1 -1 -1 -1 -1\n"
        "Car 0.12 2 -1.57 10.5 20.25 50.75 60.0 1.5 1.6 3.9 1.0 1.5 20.0 -1.6 0.87\n")
    (root / "training" / "label_2" / "000002.txt").write_text("")
    assert detect(root) == "kitti"
    report = Report()
    ds = load(root, None, report)
    names = {c.id: c.name for c in ds.categories}
    images = {im.file_name: im for im in ds.images}
    assert sorted(images) == ["000000.png", "000001.png", "000002.png"] and {im.split for im in ds.images} == {"train"}
    ped, dont_care = images["000000.png"].annotations
    assert names[ped.category_id] == "Pedestrian" and ped.bbox == (33.0, 18.0, 36.0, 24.0)
    assert ped.attributes == {"truncated": 0.0, "occluded": 0, "alpha": 1.94, "height_3d": 1.87, "width_3d": 0.96,
                              "length_3d": 0.65, "x_3d": -8.5, "y_3d": 2.07, "z_3d": 23.02, "rotation_y": 1.59}
    assert dont_care.iscrowd and names[dont_care.category_id] == "DontCare"
    car = images["000001.png"].annotations[-1]  # datumaro's 1 px wide Van is under 2 px: dropped, reported
    assert [c.annotations_lost for c in report.changes if c.kind == "degenerate_box"] == [1]
    assert car.attributes["score"] == 0.87 and car.attributes["occluded"] == 2 and car.bbox == (10.5, 20.25, 50.75, 60.0)
    assert any(c.kind == "dont_care_regions" for c in report.changes)
    write_dataset("kitti", ds, tmp_path / "again", Report(), image_mode="copy")  # KITTI -> KITTI keeps the lines
    again = (tmp_path / "again" / "label_2" / "000000.txt").read_text().splitlines()
    assert again == ["Pedestrian 0.00 0 1.94 33.00 18.00 36.00 24.00 1.87 0.96 0.65 -8.50 2.07 23.02 1.59",
                     "DontCare -1.00 -1 -10.00 60.00 17.00 72.00 28.50 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 "
                     "-10.00"]


# ------------------------------------------------------------------------------------------ CreateML
def test_createml_as_roboflow_exports_it(tmp_path: Path):
    """``train/`` and ``valid/`` each with ``_annotations.createml.json`` beside its images, centre coordinates."""
    root = tmp_path / "License Plates.v4-resized640.createml"
    for split in ("train", "valid"):
        make_image(root / split / f"car_{split}_jpg.rf.0a1b2c.jpg", 64, 48)
        (root / split / "_annotations.createml.json").write_text(json.dumps([
            {"image": f"car_{split}_jpg.rf.0a1b2c.jpg", "annotations": [
                {"label": "plate", "coordinates": {"x": 32, "y": 24, "width": 20, "height": 10}},
                {"label": "car", "coordinates": {"x": 31.5, "y": 20.5, "width": 61, "height": 39}}]}]))
    assert detect(root) == "createml"
    ds = load(root, None, Report())
    assert sorted(im.split for im in ds.images) == ["train", "val"]
    boxes = sorted(a.bbox for a in ds.images[0].annotations)
    assert boxes == [(1.0, 1.0, 62.0, 40.0), (22.0, 19.0, 42.0, 29.0)]


# ------------------------------------------------------------------------------------------ round trips
def test_the_embedded_data_round_trips_through_each_tool_format(tmp_path: Path):
    """COCO -> labelstudio/kitti/createml -> COCO keeps every annotation: masks exactly in Label Studio, as boxes
    (reported) in KITTI and CreateML."""
    source = load(EMBEDDED_DATA, None, Report())
    for fmt in ("labelstudio", "kitti", "createml"):
        result = convert(EMBEDDED_DATA, tmp_path / fmt, to=fmt, image_mode="copy")
        back = load(tmp_path / fmt, None, Report())
        assert back.num_annotations == source.num_annotations and len(back.images) == len(source.images), fmt
        if fmt != "labelstudio":
            assert result.report.counts()[("converted", "mask_to_box")] == sum(
                a.has_mask for im in source.images for a in im.annotations)
        else:
            assert all(a.has_mask for im in back.images for a in im.annotations)


@st.composite
def datasets(draw):
    images = []
    for i in range(draw(st.integers(1, 3))):
        w, h = draw(st.integers(16, 90)), draw(st.integers(16, 90))
        anns = []
        for _ in range(draw(st.integers(0, 4))):
            x0, y0 = draw(st.floats(0, w - 6)), draw(st.floats(0, h - 6))
            x1, y1 = draw(st.floats(x0 + 3, w)), draw(st.floats(y0 + 3, h))
            kind = draw(st.sampled_from(["box", "polygon", "mask"]))
            if kind == "polygon":
                anns.append(Annotation(draw(st.integers(1, 3)), (x0, y0, x1, y1),
                                       polygons=[[x0, y0, x1, y0, (x0 + x1) / 2, y1]]))
            elif kind == "mask":
                m = np.zeros((h, w), np.uint8)
                m[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = 1
                anns.append(Annotation(draw(st.integers(1, 3)), (int(x0), int(y0), int(np.ceil(x1)),
                                                                 int(np.ceil(y1))), rle=encode_mask(m)))
            else:
                anns.append(Annotation(draw(st.integers(1, 3)), (x0, y0, x1, y1)))
        unique = {(a.category_id, *np.round(a.bbox, 1)): a for a in anns}  # the checker drops exact twins
        images.append(ImageRecord(f"im{i}.png", w, h, annotations=list(unique.values())))
    return Dataset(images, [Category(1, "a"), Category(2, "b c"), Category(3, "ü")])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(), st.sampled_from(["labelstudio", "kitti", "createml"]))
def test_coco_to_each_tool_format_and_back_within_its_precision(ds, fmt: str):
    """Boxes within 0.01 px (KITTI writes 2 decimals), polygons within 1e-6 and masks exact in Label Studio."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k, im in enumerate(ds.images):
            im.path = make_image(root / "src" / im.file_name, im.width, im.height, seed=k)
        write_dataset(fmt, ds, root / "out", Report(), image_mode="copy")
        back = load(root / "out", fmt, Report())
        names = {c.id: c.name.replace("_", " ") for c in back.categories}
        by_name = {im.file_name: im for im in back.images}
        for im in ds.images:
            got = by_name[im.file_name].annotations
            assert len(got) == len(im.annotations)
            for a, b in zip(im.annotations, got):
                assert names[b.category_id] == ds.categories[a.category_id - 1].name
                assert b.bbox == pytest.approx(a.bbox, abs=0.006)
                if fmt == "labelstudio" and a.polygons:
                    assert b.polygons[0] == pytest.approx(a.polygons[0], abs=1e-6)
                if fmt == "labelstudio" and a.rle is not None:
                    assert (decode_mask(b.rle) == decode_mask(a.rle)).all()
