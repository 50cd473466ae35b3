"""Each reader on a small file written the way the real tool writes it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import make_image

from detft.annotations.geometry import decode_mask, polygons_to_mask
from detft.annotations.report import Report
from detft.errors import DetftError
from detft.formats import detect
from detft.operations.convert import load


def kinds(report: Report) -> list[str]:
    return [c.kind for c in report.changes]


def names(ds) -> dict[int, str]:
    return {c.id: c.name for c in ds.categories}


def test_labelme_rectangle_polygon_circle_group_and_unsupported(tmp_path: Path):
    make_image(tmp_path / "images" / "a.jpg", 100, 80)
    shapes = [
        {"label": "car", "points": [[50, 40], [10, 5]], "shape_type": "rectangle", "group_id": None, "flags": {}},
        {"label": "dog", "points": [[10, 10], [40, 10], [25, 30]], "shape_type": "polygon", "group_id": 1},
        {"label": "dog", "points": [[60, 10], [90, 10], [75, 30]], "shape_type": "polygon", "group_id": 1},
        {"label": "ball", "points": [[50, 50], [60, 50]], "shape_type": "circle"},
        {"label": "car", "points": [[1, 1]], "shape_type": "point"},
        {"label": "car", "points": [[1, 1], [5, 5]], "shape_type": "line"},
    ]
    doc = {"version": "5.4.1", "shapes": shapes, "imagePath": "../images/a.jpg", "imageData": None,
           "imageHeight": 80, "imageWidth": 100}
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.json").write_text(json.dumps(doc))
    assert detect(tmp_path / "ann") == "labelme"
    report = Report()
    ds = load(tmp_path / "ann", None, report)
    anns = ds.images[0].annotations
    assert [names(ds)[a.category_id] for a in anns] == ["car", "dog", "ball"]
    assert anns[0].bbox == (10, 5, 50, 40)  # corners dragged either way
    assert len(anns[1].polygons) == 2 and anns[1].bbox == (10, 10, 90, 30)  # group_id joins parts
    assert np.allclose(anns[2].bbox, (40, 40, 60, 60), atol=0.5)  # circle radius 10
    assert kinds(report).count("unsupported_shape") == 2
    assert "circle_to_polygon" in kinds(report)
    assert report.annotations_lost == 2


def test_cvat_box_polygon_mask_rotated_and_polyline(tmp_path: Path):
    make_image(tmp_path / "images" / "f1.png", 40, 30)
    xml = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>
<meta><task><labels><label><name>cat</name></label><label><name>dog</name></label></labels></task></meta>
<image id="0" name="f1.png" width="40" height="30" subset="train">
  <box label="cat" occluded="1" xtl="2" ytl="3" xbr="20.5" ybr="25" z_order="0"><attribute name="color">black</attribute></box>
  <box label="dog" occluded="0" xtl="10" ytl="10" xbr="20" ybr="20" rotation="45"></box>
  <polygon label="dog" occluded="0" points="1.0,1.0;10.0,1.0;5.0,8.0"></polygon>
  <mask label="cat" occluded="0" rle="2, 2, 2, 2" left="5" top="6" width="4" height="2"></mask>
  <polyline label="dog" occluded="0" points="1,1;5,5"></polyline>
  <tag label="cat"></tag>
</image></annotations>"""
    (tmp_path / "annotations.xml").write_text(xml)
    assert detect(tmp_path) == "cvat"
    report = Report()
    ds = load(tmp_path, None, report)
    im = ds.images[0]
    assert im.split == "train"
    box, rot, poly, mask = im.annotations
    assert box.bbox == (2, 3, 20.5, 25) and box.attributes == {"color": "black", "occluded": 1}
    assert rot.polygons and np.allclose(rot.bbox, (15 - 7.0711, 15 - 7.0711, 15 + 7.0711, 15 + 7.0711), atol=1e-3)
    assert poly.polygons == [[1.0, 1.0, 10.0, 1.0, 5.0, 8.0]]
    m = decode_mask(mask.rle)
    expected = np.zeros((30, 40), np.uint8)
    expected[6, 7:9] = 1
    expected[7, 7:9] = 1  # runs 2 off, 2 on, 2 off, 2 on over a 4x2 crop at (5, 6)
    assert (m == expected).all()
    assert kinds(report) == ["rotated_box_to_polygon", "unsupported_shape"]


def test_via2_project_rect_polygon_ellipse_with_class_attribute(tmp_path: Path):
    make_image(tmp_path / "p.jpg", 60, 50)
    regions = [
        {"shape_attributes": {"name": "rect", "x": 5, "y": 6, "width": 10, "height": 12},
         "region_attributes": {"type": "cell", "note": "x"}},
        {"shape_attributes": {"name": "polygon", "all_points_x": [1, 20, 10], "all_points_y": [1, 1, 15]},
         "region_attributes": {"type": {"nucleus": True}}},
        {"shape_attributes": {"name": "ellipse", "cx": 30, "cy": 25, "rx": 8, "ry": 4, "theta": 0},
         "region_attributes": {"type": "cell"}},
        {"shape_attributes": {"name": "point", "cx": 3, "cy": 3}, "region_attributes": {"type": "cell"}},
        {"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 5, "height": 5},
         "region_attributes": {"type": ""}},
    ]
    project = {"_via_settings": {}, "_via_img_metadata": {
        "p.jpg123": {"filename": "p.jpg", "size": 123, "regions": regions, "file_attributes": {}}}}
    (tmp_path / "via_project.json").write_text(json.dumps(project))
    report = Report()
    ds = load(tmp_path / "via_project.json", None, report, class_attr="type")
    anns = ds.images[0].annotations
    assert (ds.images[0].width, ds.images[0].height) == (60, 50)  # VIA has no size: read from the image
    assert [names(ds)[a.category_id] for a in anns] == ["cell", "nucleus", "cell"]
    assert anns[0].bbox == (5, 6, 15, 18)
    assert np.allclose(anns[2].bbox, (22, 21, 38, 29), atol=0.2)
    assert sorted(kinds(report)) == ["ellipse_to_polygon", "unlabelled_region", "unsupported_shape"]


def test_via1_regions_as_dict(tmp_path: Path):
    make_image(tmp_path / "q.png", 30, 30)
    doc = {"q.png1": {"filename": "q.png", "size": 1, "file_attributes": {},
                      "regions": {"0": {"shape_attributes": {"name": "circle", "cx": 15, "cy": 15, "r": 5},
                                        "region_attributes": {"name": "blob"}}}}}
    (tmp_path / "via.json").write_text(json.dumps(doc))
    assert detect(tmp_path / "via.json") == "via"
    ds = load(tmp_path / "via.json", "via", Report())
    assert np.allclose(ds.images[0].annotations[0].bbox, (10, 10, 20, 20), atol=0.1)


def test_csv_custom_columns_negative_rows_and_bad_values(tmp_path: Path):
    make_image(tmp_path / "a.jpg", 50, 40)
    make_image(tmp_path / "b.jpg", 50, 40)
    (tmp_path / "boxes.csv").write_text(
        "image,label,x1,y1,x2,y2\n"
        "a.jpg,cat,1,2,30,20\n"
        "a.jpg,dog,5,5,nan,9\n"
        "b.jpg,,,,,\n"
        "a.jpg,dog,10,10,40,30\n")
    from detft.formats.csv import parse_columns

    report = Report()
    cols = parse_columns("filename=image,class=label,xmin=x1,ymin=y1,xmax=x2,ymax=y2")
    ds = load(tmp_path / "boxes.csv", None, report, columns=cols)
    by = {im.file_name: im for im in ds.images}
    assert len(by["a.jpg"].annotations) == 2 and by["b.jpg"].annotations == []
    assert report.changes[0].where.endswith("boxes.csv:3") and report.changes[0].kind == "bad_bbox"


def test_csv_missing_column_names_file_and_header(tmp_path: Path):
    (tmp_path / "x.csv").write_text("file,class\na.jpg,cat\n")
    with pytest.raises(DetftError, match=r"x\.csv:1.*missing column"):
        load(tmp_path / "x.csv", "csv", Report())


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_instance_mask_pngs(tmp_path: Path, dtype):
    make_image(tmp_path / "images" / "m1.jpg", 32, 24)
    m = np.zeros((24, 32), dtype)
    m[2:10, 3:9] = 1
    m[12:20, 10:30] = 300 if dtype == np.uint16 else 2
    m[0, 0] = 7  # a value with no class
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "m1.png"), m)
    v2 = "300" if dtype == np.uint16 else "2"
    (tmp_path / "classes.json").write_text(json.dumps({"default": {"1": "cell", v2: "nucleus"}}))
    assert detect(tmp_path) == "masks"
    report = Report()
    ds = load(tmp_path, None, report, min_size=1)
    anns = ds.images[0].annotations
    assert [names(ds)[a.category_id] for a in anns] == ["cell", "nucleus"]
    assert anns[0].bbox == (3, 2, 9, 10) and (decode_mask(anns[1].rle) == (m == m[15, 15])).all()
    assert kinds(report) == ["unknown_class"]


def test_yolo_det_and_seg_lines_with_bad_lines(tmp_path: Path):
    make_image(tmp_path / "images" / "train" / "a.jpg", 100, 50)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.4\n"
        "1 0.1 0.1 0.3 0.1 0.2 0.5\n"
        "7 0.5 0.5 0.1 0.1\n"
        "0 0.5 0.5\n"
        "x 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/train\nnames: {0: a, 1: b}\n")
    report = Report()
    ds = load(tmp_path, None, report)
    a0, a1, a7 = ds.images[0].annotations
    assert np.allclose(a0.bbox, (40, 15, 60, 35))
    assert np.allclose(a1.polygons[0], [10, 5, 30, 5, 20, 25])
    assert a7.category_id == 7 and ds.category_by_id()[7].name == "class7"  # past the names: kept, named, said
    assert [c.kind for c in report.changes if c.action == "fixed"] == ["undeclared_class"]
    dropped = [c for c in report.changes if c.action == "dropped"]
    assert [c.where.rsplit(":", 1)[1] for c in dropped] == ["4", "5"]
    assert [c.kind for c in dropped] == ["bad_line", "bad_line"]


def test_coco_uncompressed_rle_and_missing_bbox(tmp_path: Path):
    make_image(tmp_path / "x.png", 10, 10)
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 3:7] = 1
    counts, flat, cur, run = [], mask.flatten(order="F"), 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    doc = {"images": [{"id": 5, "file_name": "x.png", "width": 10, "height": 10}],
           "categories": [{"id": 3, "name": "thing"}],
           "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "iscrowd": 1,
                            "segmentation": {"size": [10, 10], "counts": counts}, "area": 12},
                           {"id": 2, "image_id": 5, "category_id": 3, "bbox": [1, 1, 4, 4],
                            "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "iscrowd": 0, "area": 16},
                           {"id": 3, "image_id": 99, "category_id": 3, "bbox": [1, 1, 2, 2]}]}
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    report = Report()
    ds = load(tmp_path / "instances.json", None, report)
    crowd, poly = ds.images[0].annotations
    assert crowd.iscrowd and crowd.bbox == (3, 2, 7, 5) and (decode_mask(crowd.rle) == mask).all()
    assert (polygons_to_mask(poly.polygons, 10, 10).sum()) == 16
    assert kinds(report) == ["unknown_image", "missing_bbox"] or kinds(report) == ["missing_bbox", "unknown_image"]
    assert ds.categories[0].id == 3  # COCO ids are kept


def test_detect_ambiguous_folder_names_both(tmp_path: Path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    with pytest.raises(DetftError, match="ambiguous.*yolo.*voc"):
        detect(tmp_path)
    with pytest.raises(DetftError, match="no known annotation format"):
        detect(tmp_path / "Annotations")


def test_coco_category_id_given_as_a_numeric_string_is_a_reported_fix(tmp_path: Path):
    make_image(tmp_path / "x.png", 10, 10)
    doc = {"images": [{"id": 1, "file_name": "x.png", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": "2", "bbox": [1, 1, 4, 4], "iscrowd": 0},
                           {"id": 2, "image_id": 1, "category_id": 1, "bbox": [2, 2, 4, 4], "iscrowd": 0}]}
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    report = Report()
    ds = load(tmp_path / "instances.json", None, report)
    assert [a.category_id for a in ds.images[0].annotations] == [2, 1]
    assert kinds(report) == ["category_id_string"] and "'2' is a string" in report.changes[0].detail
