"""Bad input gets a named error or a reported fix, and never a half-written output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image

from detft.annotations.report import Report
from detft.cli import main
from detft.errors import DataLossError, DetftError, FormatError, StrictError
from detft.operations.convert import convert, load


def voc_xml(filename: str, w: int, h: int, boxes: list[tuple], extra: str = "") -> str:
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
                   f"<ymax>{d}</ymax></bndbox></object>" for n, a, b, c, d in boxes)
    return (f"{extra}<annotation><filename>{filename}</filename><size><width>{w}</width><height>{h}</height>"
            f"</size>{objs}</annotation>")


def voc_dataset(root: Path, files: dict[str, str], images: dict[str, tuple[int, int]]) -> Path:
    (root / "Annotations").mkdir(parents=True)
    for name, xml in files.items():
        (root / "Annotations" / name).write_text(xml)
    for name, (w, h) in images.items():
        make_image(root / "JPEGImages" / name, w, h)
    return root


def test_truncated_json_names_file_and_line(tmp_path: Path):
    f = tmp_path / "instances.json"
    f.write_text('{"images": [{"id": 1,\n "file_name": "a.jpg",\n')
    with pytest.raises(FormatError, match=r"instances\.json:3: invalid JSON"):
        load(f, "coco", Report())


def test_truncated_xml_names_file_and_line(tmp_path: Path):
    voc_dataset(tmp_path, {"a.xml": "<annotation>\n<filename>a.jpg</filename>\n<object><name>x"}, {})
    with pytest.raises(FormatError, match=r"a\.xml:3: invalid XML"):
        load(tmp_path, "voc", Report())


def test_xml_external_entity_is_rejected(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file://{secret}">]>'
           "<annotation><filename>&xxe;</filename></annotation>")
    voc_dataset(tmp_path, {"a.xml": xxe}, {})
    with pytest.raises(FormatError, match="unsafe XML rejected"):
        load(tmp_path, "voc", Report())


def test_billion_laughs_is_rejected(tmp_path: Path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            "<annotations><image name='&lol2;'/></annotations>")
    (tmp_path / "annotations.xml").write_text(bomb)
    with pytest.raises(FormatError, match="unsafe XML rejected"):
        load(tmp_path, "cvat", Report())


@pytest.mark.parametrize("to", ["coco", "yolo", "voc"])
def test_path_traversal_in_file_name_never_escapes_out(tmp_path: Path, to: str):
    src = tmp_path / "data" / "ann"
    make_image(tmp_path / "data" / "x.jpg", 40, 30)  # ../../x.jpg climbs out of data/: found by its name inside
    src.mkdir(parents=True)
    doc = {"images": [{"id": 1, "file_name": "../../x.jpg", "width": 40, "height": 30}],
           "categories": [{"id": 1, "name": "a"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "iscrowd": 0}]}
    (src / "instances.json").write_text(json.dumps(doc))
    out = tmp_path / "work" / "out"
    result = convert(src / "instances.json", out, to=to, images_dir=src, image_mode="copy")
    before = {p for p in tmp_path.rglob("*")}
    written = {p for p in before if out in p.parents or p == out}
    outside_new = [p for p in before - written if p.name == "x.jpg" and p != tmp_path / "data" / "x.jpg"]
    assert not outside_new
    assert {"unsafe_file_name", "image_path_outside_dataset"} <= {c.kind for c in result.report.changes}
    assert list(out.rglob("x.jpg"))  # the image is inside OUT


def test_corrupt_and_truncated_jpegs_are_reported_not_fatal(tmp_path: Path):
    files = {f"{n}.xml": voc_xml(f"{n}.jpg", 40, 30, [("a", 2, 2, 20, 20)]) for n in ("good", "garbage", "cut")}
    voc_dataset(tmp_path, files, {"good.jpg": (40, 30), "cut.jpg": (40, 30)})
    (tmp_path / "JPEGImages" / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    data = (tmp_path / "JPEGImages" / "cut.jpg").read_bytes()
    (tmp_path / "JPEGImages" / "cut.jpg").write_bytes(data[: len(data) // 2])
    report = Report()
    ds = load(tmp_path, "voc", report)
    assert [im.file_name for im in ds.images] == ["good.jpg"]
    bad = {Path(c.where).name: c for c in report.changes}
    assert bad["garbage.xml"].kind == "unreadable_image" and bad["garbage.xml"].annotations_lost == 1
    assert bad["cut.xml"].kind == "unreadable_image" and "truncated" in bad["cut.xml"].detail


def test_corrupt_image_is_reported_even_after_ultralytics_patched_pil(tmp_path: Path):
    pytest.importorskip("ultralytics", reason="ultralytics is not installed")
    from detft.models.yolo import prepare_offline

    prepare_offline()  # imports ultralytics, which replaces PIL.Image.open process-wide
    voc_dataset(tmp_path, {"g.xml": voc_xml("g.jpg", 40, 30, [("a", 2, 2, 20, 20)])}, {})
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "JPEGImages" / "g.jpg").write_bytes(b"not an image")
    with pytest.raises(DataLossError, match=r"g\.jpg: unreadable .*the images cannot be decoded"):
        load(tmp_path, "voc", Report())


def test_exif_rotated_jpeg_keeps_boxes_in_displayed_frame(tmp_path: Path):
    # stored 60x20 pixels, EXIF orientation 6 (rotate 90 CW): displayed as 20 wide, 60 tall
    make_image(tmp_path / "JPEGImages" / "r.jpg", 60, 20, exif_orientation=6)
    # the annotator saw the displayed 20x60 image; the XML declares the stored size
    voc_dataset(tmp_path, {"r.xml": voc_xml("r.jpg", 60, 20, [("a", 3, 41, 15, 55)])}, {})
    report = Report()
    ds = load(tmp_path, "voc", report)
    im = ds.images[0]
    assert (im.width, im.height) == (20, 60)
    assert im.annotations[0].bbox == (2, 40, 15, 55)  # unchanged, not clipped to a 60x20 frame
    assert [c.kind for c in report.changes] == ["image_size"] and "EXIF" in report.changes[0].detail
    out = tmp_path.parent / f"{tmp_path.name}-yolo"  # outside the dataset it reads
    convert(tmp_path, out, fmt="voc", to="yolo")
    line = (out / "labels" / "train" / "r.txt").read_text().split()
    assert np.allclose([float(v) for v in line[1:]], [8.5 / 20, 47.5 / 60, 13 / 20, 15 / 60])


def test_clipping_and_degenerate_boxes_are_reported_with_object_index(tmp_path: Path):
    xml = voc_xml("a.jpg", 40, 30, [("a", 5, 5, 60, 20), ("a", 10, 10, 10, 10), ("b", 3, 3, 9, 9)])
    voc_dataset(tmp_path, {"a.xml": xml}, {"a.jpg": (40, 30)})
    report = Report()
    ds = load(tmp_path, "voc", report, classes=["a"])
    assert len(ds.images[0].annotations) == 1
    by_kind = {c.kind: c for c in report.changes}
    assert by_kind["box_outside_image"].where.endswith("a.xml object 0")
    assert by_kind["degenerate_box"].where.endswith("a.xml object 1")
    assert by_kind["unknown_class"].where.endswith("a.xml object 2")


def test_strict_fails_and_leaves_no_output(tmp_path: Path):
    xml = voc_xml("a.jpg", 40, 30, [("a", 5, 5, 60, 20)])
    voc_dataset(tmp_path / "src", {"a.xml": xml}, {"a.jpg": (40, 30)})
    out = tmp_path / "out"
    with pytest.raises(StrictError, match="box_outside_image"):
        convert(tmp_path / "src", out, strict=True)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temp folder left behind


def test_failed_write_leaves_previous_output_intact(tmp_path: Path, monkeypatch):
    voc_dataset(tmp_path / "src", {"a.xml": voc_xml("a.jpg", 40, 30, [("a", 5, 5, 20, 20)])}, {"a.jpg": (40, 30)})
    out = tmp_path / "out"
    convert(tmp_path / "src", out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("detft.formats.coco.atomic_write_text", boom)
    with pytest.raises(OSError):
        convert(tmp_path / "src", out, overwrite=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


def test_existing_output_needs_overwrite(tmp_path: Path):
    voc_dataset(tmp_path / "src", {"a.xml": voc_xml("a.jpg", 40, 30, [("a", 5, 5, 20, 20)])}, {"a.jpg": (40, 30)})
    (tmp_path / "out").mkdir()
    with pytest.raises(DetftError, match="already exists"):
        convert(tmp_path / "src", tmp_path / "out")


def test_cli_prints_one_line_error_without_traceback(tmp_path: Path, capsys):
    (tmp_path / "bad.json").write_text("{")
    assert main(["convert", str(tmp_path / "bad.json"), str(tmp_path / "out"), "--from", "coco"]) == 1
    err = capsys.readouterr().err
    assert "bad.json:1: invalid JSON" in err and "Traceback" not in err


def test_duplicates_are_found_among_thousands_of_objects_and_near_misses_kept():
    """A dense image (cells, shelves, crowds): exact twins and twins within the tolerance dropped and reported,
    a box one tolerance further, another class or a crowd region of the same box kept."""
    from detft.annotations.check import DUPLICATE_TOL, check
    from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord

    rng = np.random.default_rng(0)
    anns = [Annotation(1, (float(x), float(y), float(x) + 6.5, float(y) + 4.25))
            for x, y in {(int(a), int(b)) for a, b in rng.integers(0, 990, (20_000, 2))}]
    n = len(anns)
    base = anns[17].bbox
    anns += [Annotation(1, base),  # an exact twin
             Annotation(1, tuple(v + DUPLICATE_TOL / 2 for v in base)),  # a twin within the tolerance
             Annotation(1, tuple(v - DUPLICATE_TOL / 2 for v in anns[99].bbox)),  # across a cell edge below
             Annotation(1, (base[0] + 3 * DUPLICATE_TOL, *base[1:])),  # not a twin: too far
             Annotation(2, base),  # another class
             Annotation(1, base, iscrowd=True)]  # a crowd region is not an object
    ds = Dataset([ImageRecord("dense.jpg", 1000, 1000, annotations=anns)], [Category(1, "cell"), Category(2, "debris")])
    report = Report()
    out = check(ds, report, verify_images=False)
    kept = out.images[0].annotations
    assert len(kept) == n + 3
    dropped = [c for c in report.changes if c.kind == "duplicate_annotation"]
    assert sum(c.annotations_lost for c in dropped) == 3 and len(dropped) == 3


def test_negatives_whose_images_are_all_missing_are_a_loss_not_an_empty_dataset(tmp_path: Path):
    """A COCO file of images without objects, none of them found: nothing is left, so nothing is written."""
    (tmp_path / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
                   {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10}],
        "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    with pytest.raises(DataLossError, match=r"lists 2 image\(s\) and none could be kept.*'a\.jpg' not found"):
        load(tmp_path, None, Report())
    assert main(["convert", str(tmp_path), str(tmp_path.parent / "out")]) == 1
    assert not (tmp_path.parent / "out").exists()
