"""Property tests: random datasets survive COCO->COCO, COCO->YOLO->COCO, VOC->COCO->VOC and COCO->(LabelMe, CVAT,
VIA)->COCO.

Every box must come back within 1 px and every polygon vertex within 1 px; what a format cannot
hold (crowd regions in YOLO) must be listed in the report, never lost silently."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from helpers import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.geometry import encode_mask
from detft.annotations.report import Report
from detft.formats import coco, cvat, labelme, via, voc, yolo
from detft.operations.convert import load

TOL = 1.0
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def annotations(draw, w: int, h: int, ncls: int, allow_crowd: bool):
    x0 = draw(st.floats(0, w - 3))
    y0 = draw(st.floats(0, h - 3))
    x1 = draw(st.floats(x0 + 2.5, w))
    y1 = draw(st.floats(y0 + 2.5, h))
    cat = draw(st.integers(1, ncls))
    kind = draw(st.sampled_from(["box", "polygon", "crowd"] if allow_crowd else ["box", "polygon"]))
    if kind == "polygon":
        return Annotation(cat, (x0, y0, x1, y1), polygons=[[x0, y0, x1, y0, (x0 + x1) / 2, y1]])
    if kind == "crowd":
        xi0, yi0, xi1, yi1 = int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))
        mask = np.zeros((h, w), np.uint8)
        mask[yi0:yi1, xi0:xi1] = 1
        return Annotation(cat, (float(xi0), float(yi0), float(xi1), float(yi1)), rle=encode_mask(mask), iscrowd=True)
    return Annotation(cat, (x0, y0, x1, y1))


@st.composite
def datasets(draw, allow_crowd: bool = True):
    ncls = draw(st.integers(1, 40))
    names = [f"class_{i}" for i in range(ncls)]
    images = []
    for i in range(draw(st.integers(1, 4))):
        w, h = draw(st.integers(8, 120)), draw(st.integers(8, 120))
        anns = draw(st.lists(annotations(w, h, ncls, allow_crowd), max_size=6,
                                unique_by=lambda a: (a.category_id, tuple(round(v, 2) for v in a.bbox), a.iscrowd)))
        images.append(ImageRecord(f"sub/im{i}.png", w, h, annotations=anns))
    return Dataset(images, [Category(i + 1, n) for i, n in enumerate(names)])


def _materialise(ds: Dataset, root: Path) -> Dataset:
    for k, im in enumerate(ds.images):
        im.path = make_image(root / im.file_name, im.width, im.height, seed=k)
    ds.root = root
    return ds


def _assert_same(a: Dataset, b: Dataset, skip_crowd: bool = False) -> None:
    name_a = {c.id: c.name for c in a.categories}
    name_b = {c.id: c.name for c in b.categories}
    by_name = {im.file_name: im for im in b.images}
    assert len(a.images) == len(b.images)
    for im in a.images:
        other = by_name[im.file_name]
        assert (other.width, other.height) == (im.width, im.height)
        expected = [x for x in im.annotations if not (skip_crowd and x.iscrowd)]
        assert len(other.annotations) == len(expected), im.file_name
        for x, y in zip(expected, other.annotations):
            assert name_a[x.category_id] == name_b[y.category_id]
            assert np.allclose(x.bbox, y.bbox, atol=TOL), (x.bbox, y.bbox)
            if x.polygons:
                assert y.polygons and np.allclose(np.concatenate(x.polygons), np.concatenate(y.polygons), atol=TOL)
            if x.rle is not None:
                assert y.rle == x.rle and y.iscrowd


@SETTINGS
@given(datasets())
def test_coco_roundtrip_is_lossless(ds):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        _materialise(ds, d / "src")
        report = Report()
        coco.write(ds, d / "out", report)
        back = load(d / "out", "coco", Report())
        assert not report.changes
        _assert_same(ds, back)


@SETTINGS
@given(datasets())
def test_coco_yolo_coco_keeps_boxes_and_polygons(ds):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        _materialise(ds, d / "src")
        r1 = Report()
        coco.write(ds, d / "coco", r1)
        first = load(d / "coco", "coco", r1)
        yolo.write(first, d / "yolo", r1)
        second = load(d / "yolo", "yolo", r1)
        coco.write(second, d / "coco2", r1)
        back = load(d / "coco2", "coco", r1)
        _assert_same(ds, back, skip_crowd=True)
        crowd = sum(a.iscrowd for im in ds.images for a in im.annotations)
        assert sum(c.kind == "crowd_in_yolo" for c in r1.changes) == crowd
        assert r1.annotations_lost == crowd


@SETTINGS
@given(datasets(allow_crowd=False), st.sampled_from(["labelme", "cvat", "via"]))
def test_coco_to_the_drawing_tools_and_back_keeps_boxes_and_polygons(ds, tool: str):
    writer = {"labelme": labelme.write, "cvat": cvat.write, "via": via.write}[tool]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        _materialise(ds, d / "src")
        report = Report()
        writer(ds, d / tool, report)
        assert not report.changes, report.summary()
        coco.write(load(d / tool, tool, report), d / "coco", report)
        _assert_same(ds, load(d / "coco", "coco", report))


@st.composite
def voc_objects(draw):
    w, h = draw(st.integers(8, 300)), draw(st.integers(8, 300))
    objs = []
    for _ in range(draw(st.integers(0, 6))):
        xmin = draw(st.integers(1, w - 2))
        ymin = draw(st.integers(1, h - 2))
        objs.append((draw(st.sampled_from(["RBC", "WBC", "Platelets", "x y"])), xmin, ymin,
                     draw(st.integers(xmin + 2, w)), draw(st.integers(ymin + 2, h)),
                     draw(st.integers(0, 1)), draw(st.integers(0, 1))))
    return w, h, objs


def _write_voc(root: Path, items) -> None:
    (root / "Annotations").mkdir(parents=True)
    for i, (w, h, objs) in enumerate(items):
        make_image(root / "JPEGImages" / f"{i:05d}.jpg", w, h, seed=i)
        xml = [f"<annotation><filename>{i:05d}.jpg</filename><size><width>{w}</width><height>{h}</height>"
               "<depth>3</depth></size>"]
        for name, x0, y0, x1, y1, diff, trunc in objs:
            xml.append(f"<object><name>{name}</name><truncated>{trunc}</truncated><difficult>{diff}</difficult>"
                       f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
        (root / "Annotations" / f"{i:05d}.xml").write_text("".join(xml) + "</annotation>")


@SETTINGS
@given(st.lists(voc_objects(), min_size=1, max_size=3))
def test_voc_coco_voc_is_exact(items):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        _write_voc(d / "voc", items)
        report = Report()
        original = load(d / "voc", "voc", report)
        coco.write(original, d / "coco", report)
        voc.write(load(d / "coco", "coco", report), d / "voc2", report)
        back = load(d / "voc2", "voc", report)
        assert not report.changes, report.summary()
        _assert_same(original, back)
        for im in original.images:
            other = next(o for o in back.images if o.file_name == im.file_name)
            for x, y in zip(im.annotations, other.annotations):
                assert x.bbox == y.bbox  # integer VOC coordinates come back exactly
                assert x.attributes == y.attributes
