"""Real export layouts load whole: each fixture is written in the shape the exporting tool writes it
(Roboflow's COCO/YOLO/VOC/CSV downloads, CVAT's project, video and YOLO 1.1 exports as
cvat/apps/dataset_manager/formats and datumaro's yolo exporter write them, the Matterport "balloon"
VIA layout, labelme's JSON, VOC's SegmentationObject palette PNGs, the official COCO download), and
what detft reads is compared with what the export holds: counts, boxes within 1 px, classes, splits."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image
from PIL import Image

from detft.annotations.geometry import polygons_to_mask
from detft.annotations.report import Report
from detft.cli import main
from detft.errors import DataLossError, DetftError, FormatError
from detft.formats import detect
from detft.operations.convert import convert, load

CLASSES = ["Platelets", "RBC", "WBC"]
# split folder as Roboflow names it -> [(image name, w, h, [(class, x0, y0, x1, y1)])]
TRUTH = {
    "train": [("BloodImage_00001_jpg.rf.0a1b.jpg", 64, 48, [("RBC", 4, 5, 30, 40), ("WBC", 33, 2, 63, 20)]),
              ("BloodImage_00002_jpg.rf.9f8e.jpg", 64, 48, [("Platelets", 10, 10, 20, 22)])],
    "valid": [("BloodImage_00003_jpg.rf.77aa.jpg", 64, 48, [("RBC", 0, 0, 64, 48)]),
              ("BloodImage_00004_jpg.rf.1234.jpg", 64, 48, [])],
    "test": [("BloodImage_00005_jpg.rf.5555.jpg", 64, 48, [("WBC", 7, 8, 40, 30), ("RBC", 1, 2, 12, 14)])],
}
SPLIT = {"train": "train", "valid": "val", "test": "test"}


def expected() -> dict[tuple[str, str], list[tuple]]:
    return {(SPLIT[s], name): sorted(boxes) for s, items in TRUTH.items() for name, _, _, boxes in items}


def read_back(ds) -> dict[tuple[str, str], list[tuple]]:
    names = {c.id: c.name for c in ds.categories}
    return {((im.split or "train"), Path(im.file_name).name):
            sorted((names[a.category_id], *a.bbox) for a in im.annotations) for im in ds.images}


def assert_same(ds, truth: dict | None = None) -> None:
    truth = truth or expected()
    got = read_back(ds)
    assert set(got) == set(truth)
    for key, boxes in truth.items():
        assert [b[0] for b in got[key]] == [b[0] for b in boxes], key
        assert np.allclose([b[1:] for b in got[key]], [b[1:] for b in boxes], atol=1.0) if boxes else not got[key]


def roboflow_images(root: Path) -> None:
    for s, items in TRUTH.items():
        for k, (name, w, h, _) in enumerate(items):
            make_image(root / s / name, w, h, seed=k)


def roboflow_coco(root: Path) -> Path:
    """Roboflow "COCO" download: <split>/_annotations.coco.json with the images beside it; category 0 is the
    project's own super-category, which no annotation uses; ids from 0."""
    roboflow_images(root)
    cats = [{"id": 0, "name": "cells", "supercategory": "none"}] + [
        {"id": i + 1, "name": n, "supercategory": "cells"} for i, n in enumerate(CLASSES)]
    for s, items in TRUTH.items():
        images, anns = [], []
        for i, (name, w, h, boxes) in enumerate(items):
            images.append({"id": i, "license": 1, "file_name": name, "height": h, "width": w,
                           "date_captured": "2023-01-01T00:00:00+00:00"})
            for c, x0, y0, x1, y1 in boxes:
                anns.append({"id": len(anns), "image_id": i, "category_id": CLASSES.index(c) + 1,
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                             "segmentation": [], "iscrowd": 0})
        (root / s / "_annotations.coco.json").write_text(json.dumps({
            "info": {"year": "2023", "version": "1", "description": "Exported from roboflow.com"},
            "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
            "categories": cats, "images": images, "annotations": anns}))
    return root


def roboflow_yolo(root: Path) -> Path:
    """Roboflow "YOLOv8" download: data.yaml whose paths start with ../ (ultralytics strips it when the path
    does not exist), <split>/images and <split>/labels."""
    for s, items in TRUTH.items():
        for k, (name, w, h, boxes) in enumerate(items):
            make_image(root / s / "images" / name, w, h, seed=k)
            lines = [f"{CLASSES.index(c)} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} "
                     f"{(y1 - y0) / h:.6f}" for c, x0, y0, x1, y1 in boxes]
            (root / s / "labels").mkdir(parents=True, exist_ok=True)
            (root / s / "labels" / (Path(name).stem + ".txt")).write_text("".join(ln + "\n" for ln in lines))
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
        f"nc: {len(CLASSES)}\nnames: {CLASSES!r}\n\nroboflow:\n  workspace: ws\n  project: bccd\n  version: 1\n"
        "  license: MIT\n  url: https://universe.roboflow.com/ws/bccd/dataset/1\n")
    return root


def roboflow_voc(root: Path) -> Path:
    """Roboflow "Pascal VOC" download: <split>/<image>.xml beside <split>/<image>.jpg."""
    roboflow_images(root)
    for s, items in TRUTH.items():
        for name, w, h, boxes in items:
            objs = "".join(
                f"<object><name>{c}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
                f"<occluded>0</occluded><bndbox><xmin>{x0 + 1}</xmin><xmax>{x1}</xmax><ymin>{y0 + 1}</ymin>"
                f"<ymax>{y1}</ymax></bndbox></object>" for c, x0, y0, x1, y1 in boxes)
            (root / s / (Path(name).stem + ".xml")).write_text(
                f"<annotation><folder></folder><filename>{name}</filename><path>{name}</path><source>"
                f"<database>roboflow.com</database></source><size><width>{w}</width><height>{h}</height>"
                f"<depth>3</depth></size><segmented>0</segmented>{objs}</annotation>")
    return root


def roboflow_csv(root: Path) -> Path:
    """Roboflow "Tensorflow Object Detection CSV": <split>/_annotations.csv, one row per box."""
    roboflow_images(root)
    for s, items in TRUTH.items():
        rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
        rows += [f"{name},{w},{h},{c},{x0},{y0},{x1},{y1}" for name, w, h, boxes in items for c, x0, y0, x1, y1 in boxes]
        (root / s / "_annotations.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("build,fmt", [(roboflow_coco, "coco"), (roboflow_yolo, "yolo"), (roboflow_voc, "voc"),
                                       (roboflow_csv, "csv")])
def test_roboflow_downloads_read_whole_with_splits(tmp_path: Path, build, fmt):
    src = build(tmp_path / "bccd")
    assert detect(src) == fmt
    ds = load(src, None, Report())
    if fmt == "csv":  # a CSV lists only images with boxes
        truth = {k: v for k, v in expected().items() if v}
    else:
        truth = expected()
    assert_same(ds, truth)
    assert sorted(c.name for c in ds.categories if any(a.category_id == c.id for im in ds.images
                                                       for a in im.annotations)) == CLASSES


def test_roboflow_yolo_converts_to_a_yaml_ultralytics_accepts(tmp_path: Path):
    pytest.importorskip("ultralytics")
    from detft.models.yolo import prepare_offline

    prepare_offline()
    from ultralytics.data.utils import check_det_dataset

    convert(roboflow_coco(tmp_path / "src"), tmp_path / "out", to="yolo")
    data = check_det_dataset(str(tmp_path / "out" / "data.yaml"), autodownload=False)
    assert Path(data["train"]).name == "train" and Path(data["val"]).name == "val"


def test_official_coco_download_reads_instances_only(tmp_path: Path):
    """annotations/ holds captions, person_keypoints and instances files for the same images (val2017/)."""
    make_image(tmp_path / "val2017" / "000000000139.jpg", 64, 48)
    make_image(tmp_path / "val2017" / "000000000285.jpg", 64, 48, seed=1)
    images = [{"license": 2, "file_name": n, "coco_url": "http://images.cocodataset.org/val2017/" + n,
               "height": 48, "width": 64, "date_captured": "2013-11-21 01:34:01", "flickr_url": "", "id": i}
              for i, n in ((139, "000000000139.jpg"), (285, "000000000285.jpg"))]
    person = {"supercategory": "person", "id": 1, "name": "person"}
    inst = {"info": {}, "licenses": [], "images": images, "categories": [person, {"supercategory": "animal", "id": 23,
                                                                                 "name": "bear"}],
            "annotations": [{"segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]], "area": 400.0, "iscrowd": 0,
                             "image_id": 139, "bbox": [10, 10, 20, 20], "category_id": 1, "id": 1},
                            {"segmentation": [[5, 5, 40, 5, 40, 40]], "area": 612.5, "iscrowd": 0,
                             "image_id": 285, "bbox": [5, 5, 35, 35], "category_id": 23, "id": 2}]}
    caps = {"info": {}, "licenses": [], "images": images,
            "annotations": [{"image_id": 139, "id": 9, "caption": "A person."}]}
    kps = {**inst, "categories": [{**person, "keypoints": ["nose"], "skeleton": []}],
           "annotations": [{**inst["annotations"][0], "num_keypoints": 1, "keypoints": [20, 20, 2]}]}
    (tmp_path / "annotations").mkdir()
    for name, doc in (("instances_val2017", inst), ("captions_val2017", caps), ("person_keypoints_val2017", kps)):
        (tmp_path / "annotations" / f"{name}.json").write_text(json.dumps(doc))
    report = Report()
    ds = load(tmp_path, None, report)
    assert [(im.file_name, im.split, len(im.annotations)) for im in ds.images] == [
        ("000000000139.jpg", "val", 1), ("000000000285.jpg", "val", 1)]
    assert not report.changes  # no image is a "duplicate" because the caption file lists it too
    assert any("captions_val2017.json" in n for n in report.notes)
    for sidecar in ("captions_val2017", ):
        with pytest.raises(FormatError, match="captions"):
            load(tmp_path / "annotations" / f"{sidecar}.json", None, Report())
    panoptic = {"images": images, "categories": [person], "annotations": [
        {"image_id": 139, "file_name": "000000000139.png", "segments_info": [{"id": 1, "category_id": 1}]}]}
    (tmp_path / "panoptic_val2017.json").write_text(json.dumps(panoptic))
    with pytest.raises(FormatError, match="panoptic"):
        load(tmp_path / "panoptic_val2017.json", None, Report())


def cvat_xml(body: str, meta: str = "") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  <meta>{meta}'
            "<labels><label><name>car</name><type>any</type></label><label><name>person</name><type>any</type>"
            f"</label></labels></meta>\n{body}</annotations>\n")


def test_cvat_project_export_subsets_with_the_same_image_names(tmp_path: Path):
    """CVAT project export: <image subset=...> and images/<subset>/<name>; both subsets hold a.jpg."""
    make_image(tmp_path / "images" / "Train" / "a.jpg", 64, 48)
    make_image(tmp_path / "images" / "Validation" / "a.jpg", 64, 48, seed=1)
    body = ('<image id="0" name="a.jpg" subset="Train" task_id="1" width="64" height="48">'
            '<box label="car" source="manual" occluded="0" xtl="1.00" ytl="2.00" xbr="30.00" ybr="20.00" z_order="0">'
            '</box></image>\n<image id="1" name="a.jpg" subset="Validation" task_id="2" width="64" height="48">'
            '<box label="person" source="manual" occluded="1" xtl="5.00" ytl="6.00" xbr="40.00" ybr="44.00" '
            'z_order="0"></box></image>\n')
    (tmp_path / "annotations.xml").write_text(cvat_xml(body))
    ds = load(tmp_path, None, Report())
    assert [(im.split, im.path.parent.name, len(im.annotations)) for im in ds.images] == [
        ("train", "Train", 1), ("val", "Validation", 1)]
    out = convert(tmp_path, tmp_path.parent / f"{tmp_path.name}-yolo", to="yolo")  # outside the data it reads
    text = (out.out / "data.yaml").read_text()
    assert "train: images/train" in text and "val: images/val" in text


def test_cvat_for_video_tracks_become_frames(tmp_path: Path):
    """CVAT for video 1.1: <track> with one shape per frame (keyframe 0 = interpolated), an outside shape
    ending it; a second track lists keyframes only, which CVAT interpolates."""
    for k in range(7):
        make_image(tmp_path / "images" / f"frame_{k:06d}.PNG", 64, 48, seed=k)
    meta = ("<task><id>3</id><size>7</size><mode>interpolation</mode><start_frame>0</start_frame>"
            "<stop_frame>6</stop_frame><original_size><width>64</width><height>48</height></original_size></task>")
    full = "".join(
        f'<box frame="{f}" keyframe="{int(f in (0, 3))}" outside="{int(f == 4)}" occluded="0" xtl="{10 + f}.00" '
        f'ytl="10.00" xbr="{30 + f}.00" ybr="20.00" z_order="0"></box>' for f in range(5))
    sparse = ('<polygon frame="0" keyframe="1" outside="0" occluded="0" points="0.00,0.00;20.00,0.00;20.00,20.00" '
              'z_order="0"></polygon><polygon frame="4" keyframe="1" outside="0" occluded="0" '
              'points="20.00,0.00;40.00,0.00;40.00,20.00" z_order="0"></polygon>'
              '<polygon frame="6" keyframe="1" outside="1" occluded="0" points="20.00,0.00;40.00,0.00;40.00,20.00" '
              'z_order="0"></polygon>')
    (tmp_path / "annotations.xml").write_text(cvat_xml(
        f'<track id="0" label="car" source="manual">{full}</track>\n'
        f'<track id="1" label="person" source="manual">{sparse}</track>\n', meta))
    report = Report()
    ds = load(tmp_path, None, report)
    by_frame = {im.file_name: im for im in ds.images}
    assert sorted(by_frame) == [f"frame_{k:06d}.PNG" for k in range(7)]
    names = {c.id: c.name for c in ds.categories}
    counts = [sorted(names[a.category_id] for a in by_frame[f"frame_{k:06d}.PNG"].annotations) for k in range(7)]
    assert counts == [["car", "person"]] * 4 + [["person"]] * 2 + [[]]
    car2 = next(a for a in by_frame["frame_000002.PNG"].annotations if names[a.category_id] == "car")
    assert car2.bbox == (12, 10, 32, 20)
    person2 = next(a for a in by_frame["frame_000002.PNG"].annotations if names[a.category_id] == "person")
    assert np.allclose(person2.polygons[0], [10, 0, 30, 0, 30, 20])  # halfway between the keyframes 0 and 4
    assert report.annotations_lost == 0


def test_cvat_ellipse_skeleton_points_and_groups(tmp_path: Path):
    make_image(tmp_path / "images" / "a.jpg", 100, 80)
    body = ('<image id="0" name="a.jpg" width="100" height="80">'
            '<ellipse label="car" source="manual" occluded="0" cx="50.00" cy="40.00" rx="20.00" ry="10.00" '
            'z_order="0"></ellipse>'
            '<polygon label="person" source="manual" occluded="0" points="1.00,1.00;10.00,1.00;10.00,10.00" '
            'z_order="0" group_id="1"></polygon>'
            '<polygon label="person" source="manual" occluded="0" points="20.00,20.00;30.00,20.00;30.00,30.00" '
            'z_order="0" group_id="1"></polygon>'
            '<points label="person" source="manual" occluded="0" points="5.00,5.00" z_order="0"></points>'
            '<skeleton label="person" source="manual" z_order="0"><points label="nose" source="manual" '
            'outside="0" occluded="0" points="3.00,3.00"></points></skeleton></image>')
    (tmp_path / "task_12_annotations.xml").write_text(cvat_xml(body))  # not named annotations.xml
    report = Report()
    ds = load(tmp_path, None, report)
    anns = ds.images[0].annotations
    assert len(anns) == 2
    assert np.allclose(anns[0].bbox, (30, 30, 70, 50), atol=0.5)
    assert len(anns[1].polygons) == 2 and anns[1].bbox == (1, 1, 30, 30)
    lost = {c.kind: c.annotations_lost for c in report.changes if c.annotations_lost}
    assert lost == {"unsupported_shape": 1} and report.annotations_lost == 2  # the points and the skeleton


def test_cvat_yolo_1_1_export(tmp_path: Path):
    """datumaro's YOLO exporter as CVAT runs it: obj.data, obj.names, train.txt listing data/obj_train_data/*."""
    make_image(tmp_path / "obj_train_data" / "a.jpg", 64, 48)
    make_image(tmp_path / "obj_train_data" / "b.jpg", 64, 48, seed=1)
    (tmp_path / "obj_train_data" / "a.txt").write_text("0 0.500000 0.500000 0.500000 0.500000\n"
                                                       "1 0.250000 0.250000 0.250000 0.250000\n")
    (tmp_path / "obj_train_data" / "b.txt").write_text("")
    (tmp_path / "obj.names").write_text("car\nperson\n")
    (tmp_path / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    (tmp_path / "train.txt").write_text("data/obj_train_data/a.jpg\ndata/obj_train_data/b.jpg\n")
    assert detect(tmp_path) == "yolo"
    ds = load(tmp_path, None, Report())
    assert [c.name for c in ds.categories] == ["car", "person"]
    a = next(im for im in ds.images if im.file_name == "a.jpg")
    assert [x.bbox for x in a.annotations] == [(16, 12, 48, 36), (8, 6, 24, 18)]


def balloon(root: Path) -> Path:
    """The Matterport Mask R-CNN / Detectron2 tutorial layout: <split>/via_region_data.json (VIA 1.x, regions a
    dict, no region attributes) with the images beside it."""
    for s, n in (("train", 2), ("val", 1)):
        recs = {}
        for k in range(n):
            name = f"{s}{k}_balloon.jpg"
            make_image(root / s / name, 80, 60, seed=k)
            size = (root / s / name).stat().st_size
            recs[f"{name}{size}"] = {"fileref": "", "size": size, "filename": name, "base64_img_data": "",
                                     "file_attributes": {}, "regions": {"0": {"shape_attributes": {
                                         "name": "polygon", "all_points_x": [10, 40, 40, 10],
                                         "all_points_y": [10, 10, 50, 50]}, "region_attributes": {}}}}
        (root / s / "via_region_data.json").write_text(json.dumps(recs))
    return root


def test_via_balloon_layout_one_class_named_by_folder(tmp_path: Path):
    src = balloon(tmp_path / "balloon")
    report = Report()
    ds = load(src, None, report)
    assert [c.name for c in ds.categories] == ["balloon"]
    assert sorted((im.split, len(im.annotations)) for im in ds.images) == [("train", 1), ("train", 1), ("val", 1)]
    assert any("'balloon'" in n and "--via-default-class" in n for n in report.notes)
    ds = load(src, None, Report(), default_class="toy")
    assert [c.name for c in ds.categories] == ["toy"]


def test_via_closed_polyline_and_images_in_a_sibling_folder(tmp_path: Path):
    make_image(tmp_path / "IMAGES" / "x.jpg", 80, 60)
    rec = {"filename": "x.jpg", "size": 1, "file_attributes": {}, "regions": [
        {"shape_attributes": {"name": "polyline", "all_points_x": [5, 30, 30, 5], "all_points_y": [5, 5, 40, 5]},
         "region_attributes": {"type": "cell"}},
        {"shape_attributes": {"name": "polyline", "all_points_x": [1, 9, 20], "all_points_y": [1, 9, 3]},
         "region_attributes": {"type": "cell"}}]}
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "project.json").write_text(json.dumps({"_via_img_metadata": {"x.jpg1": rec}}))
    report = Report()
    ds = load(tmp_path / "ann" / "project.json", None, report)
    assert ds.images[0].path == tmp_path / "IMAGES" / "x.jpg"
    assert [a.bbox for a in ds.images[0].annotations] == [(5, 5, 30, 40)]
    assert [c.kind for c in report.changes] == ["closed_polyline_to_polygon", "unsupported_shape"]


# an outline drawn with the line tool (ends 1.2% of its size short of its start), one drawn closed, one open line
OUTLINES = [[(10, 10), (50, 10), (50, 40), (10, 40), (10, 10.5)],
            [(60, 5), (75, 5), (75, 20), (60, 5)],
            [(5, 50), (40, 52), (70, 55)]]


def polyline_export(tool: str, root: Path) -> Path:
    """One image with OUTLINES as polylines, in the file each tool writes."""
    make_image(root / "img.jpg", 80, 60)
    if tool == "via":  # VIA 2.x project export
        regions = [{"shape_attributes": {"name": "polyline", "all_points_x": [x for x, _ in line],
                                         "all_points_y": [y for _, y in line]}, "region_attributes": {"type": "cell"}}
                   for line in OUTLINES]
        doc = {"_via_settings": {}, "_via_img_metadata": {"img.jpg1234": {"filename": "img.jpg", "size": 1234,
                                                                         "regions": regions, "file_attributes": {}}}}
        path = root / "via_project.json"
        path.write_text(json.dumps(doc))
    elif tool == "labelme":
        shapes = [{"label": "cell", "points": [list(p) for p in line], "group_id": None, "description": "",
                   "shape_type": "linestrip", "flags": {}, "mask": None} for line in OUTLINES]
        path = root / "img.json"
        path.write_text(json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "img.jpg",
                                    "imageData": None, "imageHeight": 60, "imageWidth": 80}))
    else:  # CVAT for images 1.1
        lines = "".join(f'    <polyline label="cell" source="manual" occluded="0" points="'
                        f'{";".join(f"{x:.2f},{y:.2f}" for x, y in line)}" z_order="0">\n    </polyline>\n'
                        for line in OUTLINES)
        path = root / "annotations.xml"
        path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
                        f'  <image id="0" name="img.jpg" width="80" height="60">\n{lines}  </image>\n</annotations>\n')
    return path


@pytest.mark.parametrize("tool", ["via", "labelme", "cvat"])
def test_polylines_that_return_to_their_start_are_outlines_and_open_ones_are_dropped(tmp_path: Path, tool: str):
    report = Report()
    ds = load(polyline_export(tool, tmp_path), None, report)
    anns = ds.images[0].annotations
    assert [tuple(round(v, 1) for v in a.bbox) for a in anns] == [(10, 10, 50, 40), (60, 5, 75, 20)]
    assert [len(a.polygons[0]) // 2 for a in anns] == [5, 3]  # the repeated closing vertex dropped, the near one kept
    assert [c.kind for c in report.changes] == ["nearly_closed_polyline_to_polygon", "closed_polyline_to_polygon",
                                                "unsupported_shape"]
    assert "1.2% of its size" in report.changes[0].detail


def test_labelme_ignore_labels_embedded_image_and_late_image_path(tmp_path: Path):
    make_image(tmp_path / "src.png", 40, 30)
    data = base64.b64encode((tmp_path / "src.png").read_bytes()).decode()
    many = [{"label": "cell", "points": [[1 + i % 20, 1], [10 + i % 20, 1], [10 + i % 20, 10]], "group_id": None,
             "shape_type": "polygon", "flags": {}} for i in range(600)]  # pushes imagePath past 64 KiB
    shapes = many + [{"label": "__ignore__", "points": [[0, 0], [5, 5]], "group_id": None,
                      "shape_type": "rectangle", "flags": {}}]
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": "../gone/photo.png", "imageData": data,
           "imageHeight": 30, "imageWidth": 40}
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "photo.json").write_text(json.dumps(doc))
    assert json.dumps(doc).index('"imagePath"') > 65536
    assert detect(tmp_path / "lm") == "labelme"
    report = Report()
    ds = load(tmp_path / "lm", None, report)
    im = ds.images[0]
    assert im.path is None and (im.width, im.height) == (40, 30) and [c.name for c in ds.categories] == ["cell"]
    assert report.shapes_held == 600  # __ignore__ is not an object
    out = convert(tmp_path / "lm", tmp_path / "out", to="coco")
    assert (out.out / "images" / "train" / "photo.png").read_bytes() == (tmp_path / "src.png").read_bytes()


def test_labelme_uses_image_data_when_the_image_file_beside_it_does_not_decode(tmp_path: Path):
    """labelme opens imageData first; a file that is there but is no image (an interrupted copy, a placeholder)
    must not cost the annotations when the JSON carries the picture itself."""
    make_image(tmp_path / "src.jpg", 40, 30)
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "photo.jpg").write_bytes(b"")  # the copy failed
    doc = {"version": "5.5.0", "flags": {}, "imagePath": "photo.jpg", "imageHeight": 30, "imageWidth": 40,
           "imageData": base64.b64encode((tmp_path / "src.jpg").read_bytes()).decode(),
           "shapes": [{"label": "cell", "points": [[2, 2], [20, 2], [20, 20]], "group_id": None,
                       "shape_type": "polygon", "flags": {}}]}
    (tmp_path / "lm" / "photo.json").write_text(json.dumps(doc))
    report = Report()
    ds = load(tmp_path / "lm", None, report)
    im = ds.images[0]
    assert im.path is None and im.data == (tmp_path / "src.jpg").read_bytes() and len(im.annotations) == 1
    assert [c.kind for c in report.changes] == ["image_from_imageData"]
    assert "photo.jpg" in report.changes[0].detail


def test_palette_instance_masks_read_by_index_with_void_border(tmp_path: Path):
    """VOC SegmentationObject: a palette PNG, instance k = index k, 255 = the void border around objects."""
    make_image(tmp_path / "images" / "2007_000032.jpg", 50, 40)
    m = np.zeros((40, 50), np.uint8)
    m[5:15, 5:20], m[20:35, 25:45] = 1, 2
    m[4, 5:20] = 255  # border
    png = Image.fromarray(m, mode="P")
    png.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 753 + [224, 224, 192])
    (tmp_path / "masks").mkdir()
    png.save(tmp_path / "masks" / "2007_000032.png")
    (tmp_path / "classes.json").write_text(json.dumps({"default": {"1": "aeroplane", "2": "person"}}))
    report = Report()
    ds = load(tmp_path, "masks", report)
    assert sorted(a.bbox for a in ds.images[0].annotations) == [(5, 5, 20, 15), (25, 20, 45, 35)]
    assert not report.changes


def test_colour_mask_counts_its_objects_as_lost(tmp_path: Path):
    make_image(tmp_path / "images" / "a.jpg", 20, 20)
    make_image(tmp_path / "images" / "b.jpg", 20, 20)
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[2:8, 2:8], rgb[10:18, 10:18] = (255, 0, 0), (0, 255, 0)
    (tmp_path / "masks").mkdir()
    Image.fromarray(rgb).save(tmp_path / "masks" / "a.png")
    Image.fromarray(np.pad(np.ones((4, 4), np.uint8), 8)).save(tmp_path / "masks" / "b.png")
    (tmp_path / "classes.json").write_text(json.dumps({"default": {"1": "x"}}))
    report = Report()
    load(tmp_path, "masks", report)
    assert [(c.kind, c.annotations_lost) for c in report.changes] == [("color_mask", 2)]
    assert "2 of 3 annotation(s) lost (66.7%)" in report.summary()


def test_yolo_boxes_on_the_border_by_rounding_are_not_clipped(tmp_path: Path):
    make_image(tmp_path / "images" / "train" / "a.jpg", 640, 480)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.500000 0.500000 1.000001 1.000001\n"
                                                         "0 0.100000 0.100000 0.200003 0.200000\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [a]\n")
    report = Report()
    ds = load(tmp_path, None, report)
    assert not report.changes and ds.images[0].annotations[0].bbox == (0, 0, 640, 480)


def test_coco_multipart_polygons_join_like_ultralytics_not_traced(tmp_path: Path):
    from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord

    p = make_image(tmp_path / "a.png", 100, 80)
    parts = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0], [40.0, 20.0, 70.0, 20.0, 70.0, 60.0, 40.0, 60.0]]
    ds = Dataset([ImageRecord("a.png", 100, 80, path=p, annotations=[Annotation(1, (10, 10, 70, 60), polygons=parts)])],
                 [Category(1, "x")])
    from detft.formats import yolo

    report = Report()
    yolo.write(ds, tmp_path / "y", report, task="segment")
    vals = [float(v) for v in (tmp_path / "y" / "labels" / "train" / "a.txt").read_text().split()[1:]]
    poly = [v * (100 if i % 2 == 0 else 80) for i, v in enumerate(vals)]
    a, b = polygons_to_mask([poly], 80, 100).astype(bool), polygons_to_mask(parts, 80, 100).astype(bool)
    assert (a & b).sum() / (a | b).sum() >= 0.97
    assert not any(c.kind == "overlapping_parts_traced" for c in report.changes)
    try:
        from ultralytics.data.converter import merge_multi_segment
    except ImportError:
        return
    ref = np.concatenate(merge_multi_segment(parts)).reshape(-1).tolist()
    r = polygons_to_mask([ref], 80, 100).astype(bool)
    assert abs(int(r.sum()) - int(a.sum())) <= 0.01 * r.sum()


def test_voc_id_listed_in_imagesets_without_xml_is_reported(tmp_path: Path):
    make_image(tmp_path / "JPEGImages" / "a.jpg", 40, 30)
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height></size><object><name>c"
        "</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>")
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    report = Report()
    load(tmp_path, None, report)
    assert [(c.kind, "'b'" in c.detail) for c in report.changes] == [("missing_annotation_file", True)]


# --- a loss is never a success ---

def test_convert_refuses_when_nothing_survives_and_names_the_fix(tmp_path: Path, capsys):
    src = balloon(tmp_path / "balloon")
    (tmp_path / "moved").mkdir()
    for p in src.rglob("*.jpg"):
        p.rename(tmp_path / "moved" / p.name)  # images moved away: every region's image is missing
    out = tmp_path / "out"
    assert main(["convert", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert "3 annotation(s)" in err and "missing_image" in err and "--images-dir" in err
    assert not out.exists()
    assert main(["convert", str(src), str(out), "--images-dir", str(tmp_path / "moved")]) == 0
    assert "annotations read/kept" in capsys.readouterr().out


def test_one_collection_file_that_keeps_nothing_is_an_error(tmp_path: Path):
    src = roboflow_coco(tmp_path / "bccd")
    for p in (src / "valid").glob("*.jpg"):
        p.unlink()
    with pytest.raises(DataLossError, match=r"valid/_annotations\.coco\.json: holds 1 annotation.*--images-dir"):
        load(src, None, Report())
    for cmd in (["inspect", str(src)], ["convert", str(src), str(tmp_path / "o")]):
        assert main(cmd) == 1
    assert not (tmp_path / "o").exists()


def test_partial_loss_is_written_and_its_fraction_reported(tmp_path: Path, capsys):
    src = roboflow_voc(tmp_path / "bccd")
    (src / "test" / "BloodImage_00005_jpg.rf.5555.jpg").unlink()
    assert main(["convert", str(src), str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "2 of 6 annotation(s) lost (33.3%)" in out


def test_an_option_the_reader_cannot_use_is_an_error(tmp_path: Path):
    src = roboflow_coco(tmp_path / "bccd")
    with pytest.raises(DetftError, match="--classes cannot be used with the coco reader"):
        load(src, None, Report(), classes=["RBC"])
    with pytest.raises(DetftError, match="--via-default-class cannot be used with the yolo reader"):
        load(roboflow_yolo(tmp_path / "y"), None, Report(), default_class="x")


# --- a second reader on the same exports ---

def sv_boxes(dataset) -> dict[str, list[tuple]]:
    out = {}
    for path, _, det in dataset:
        out[Path(path).name] = sorted((dataset.classes[c], *map(float, b)) for b, c in zip(det.xyxy, det.class_id))
    return out


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_supervision_reads_the_same_boxes(tmp_path: Path, fmt: str):
    sv = pytest.importorskip("supervision")
    if fmt == "coco":
        src = roboflow_coco(tmp_path / "r")
        theirs = sv.DetectionDataset.from_coco(str(src / "train"), str(src / "train" / "_annotations.coco.json"))
    elif fmt == "voc":
        src = roboflow_voc(tmp_path / "r")
        theirs = sv.DetectionDataset.from_pascal_voc(str(src / "train"), str(src / "train"))
    else:
        src = roboflow_yolo(tmp_path / "r")
        theirs = sv.DetectionDataset.from_yolo(str(src / "train" / "images"), str(src / "train" / "labels"),
                                               str(src / "data.yaml"))
    ours = {name: boxes for (split, name), boxes in read_back(load(src, None, Report())).items() if split == "train"}
    got = sv_boxes(theirs)
    assert set(got) == set(ours)
    for name in ours:
        assert [b[0] for b in got[name]] == [b[0] for b in ours[name]]
        assert np.allclose([b[1:] for b in got[name]], [b[1:] for b in ours[name]], atol=1.0)


def test_cvat_images_in_another_folder_of_the_root_pair_through_the_image_index(tmp_path: Path):
    """A CVAT for images 1.1 XML at the root whose images sit in data/<group>/ (as a team's repository keeps them):
    `--from cvat` finds each through the image index (the name the XML gives, anywhere under the root) instead of
    losing every object to missing_image, and says how they were found."""
    for i, group in enumerate(("site_a", "site_b")):
        make_image(tmp_path / "data" / group / f"frame_{i:06d}.PNG", 64, 48, seed=i)
    body = "".join(
        f'<image id="{i}" name="frame_{i:06d}.PNG" width="64" height="48">'
        f'<box label="car" source="manual" occluded="0" xtl="1.00" ytl="2.00" xbr="30.00" ybr="20.00" z_order="0">'
        "</box></image>\n" for i in range(2))
    (tmp_path / "annotations.xml").write_text(cvat_xml(body))
    report = Report()
    ds = load(tmp_path, "cvat", report)
    assert [(im.path.parent.name, len(im.annotations)) for im in ds.images] == [("site_a", 1), ("site_b", 1)]
    assert report.annotations_lost == 0
    assert any("2 images paired (2 by the name in the file)" in n for n in report.notes), report.notes


def test_a_cvat_xml_beside_a_yolo_export_of_the_same_images_reads_the_fuller_one(tmp_path: Path):
    """Two annotation sets over one root (the CVAT task XML with its images in data/<group>/, and a YOLO 1.1 export
    of the same frames that lost a label): with no --from, both are read and the one keeping more objects is used,
    said with both counts; sets that describe different images stay an error naming both."""
    body = ""
    for i in range(3):
        make_image(tmp_path / "data" / "group1" / f"frame_{i:06d}.PNG", 64, 48, seed=i)
        body += (f'<image id="{i}" name="frame_{i:06d}.PNG" width="64" height="48"><box label="car" source="manual" '
                 'occluded="0" xtl="1.00" ytl="2.00" xbr="30.00" ybr="20.00" z_order="0"></box></image>\n')
    (tmp_path / "annotations.xml").write_text(cvat_xml(body))
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/train\nnames: ['car', 'person']\n")
    for i in range(3):
        make_image(tmp_path / "images" / "train" / f"frame_{i:06d}.PNG", 64, 48, seed=i)
        (tmp_path / "labels" / "train").mkdir(parents=True, exist_ok=True)
        if i:  # the export lost frame 0's label
            (tmp_path / "labels" / "train" / f"frame_{i:06d}.txt").write_text("0 0.24 0.23 0.45 0.375\n")
    report = Report()
    ds = load(tmp_path, None, report)
    assert ds.format == "cvat" and sum(len(im.annotations) for im in ds.images) == 3
    assert any("read cvat, which keeps the most objects" in n and "yolo: 2 objects on 3 images" in n
               for n in report.notes), report.notes
    for i in range(3):  # now the YOLO set describes other images
        for p in (tmp_path / "images" / "train" / f"frame_{i:06d}.PNG", tmp_path / "labels" / "train" / f"frame_{i:06d}.txt"):
            if p.exists():
                p.rename(p.with_name(f"other_{i}{p.suffix}"))
    with pytest.raises(DetftError, match="of different images"):
        load(tmp_path, None, Report())
