"""Pre-labels (#26): a model's detections written as a dataset in every writable format, each file read back by
detft's own reader with the same classes, boxes, outlines and (where the format has a place for it) scores; the
layouts the tools import (LabelMe JSON beside its image with imageData null, CVAT 1.1 with its labels and the
score attribute declared in the meta, VIA 2 keyed by file name + size); and the bad inputs named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import Oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from detft.annotations.geometry import polygons_bbox
from detft.annotations.report import Report
from detft.errors import DetftError
from detft.formats import WRITERS, read_dataset
from detft.formats.xmlsafe import parse
from detft.inference.detections import Detections
from detft.labelling.prelabels import save_labels

FORMATS = sorted(WRITERS)
KEEP_SCORES = {"coco", "cvat", "labelme", "via", "labelstudio", "kitti"}
W, H = 120, 90


def paint(path: Path, objects: list[tuple[int, tuple[int, int, int, int]]]) -> Path:
    """A lossless image whose grey value k marks class k (what :class:`Oracle` detects)."""
    image = np.zeros((H, W, 3), np.uint8)
    for k, (x0, y0, x1, y1) in objects:
        image[y0:y1, x0:x1] = k
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "shots"
    paint(root / "a.png", [(1, (5, 6, 30, 40)), (2, (50, 10, 90, 30)), (3, (70, 60, 110, 85))])
    paint(root / "b.png", [(2, (10, 50, 40, 80))])
    paint(root / "day2" / "c.png", [])  # nothing found: still an image of the dataset, a negative
    return root


def by_stem(dataset) -> dict[str, list]:
    names = {c.id: c.name for c in dataset.categories}
    out = {}
    for im in dataset.images:
        anns = sorted(im.annotations, key=lambda a: (names[a.category_id], a.bbox))
        out[Path(im.file_name).stem] = [(names[a.category_id], a) for a in anns]
    return out


def assert_same(written, back, fmt: str, tol: float) -> None:
    for stem, anns in by_stem(written).items():
        got = by_stem(back)[stem]
        assert [n for n, _ in got] == [n for n, _ in anns], (fmt, stem)
        for (_, a), (_, b) in zip(anns, got):
            outline = a.polygons if a.polygons and fmt != "voc" else None
            expected_box = polygons_bbox(outline) if outline and fmt != "coco" else a.bbox  # tools keep outlines
            np.testing.assert_allclose(b.bbox, expected_box, atol=tol, err_msg=f"{fmt} {stem}")
            if outline:
                assert b.polygons is not None and len(b.polygons) == len(outline), (fmt, stem)
                for p, q in zip(sorted(outline), sorted(b.polygons)):
                    np.testing.assert_allclose(q, p, atol=tol)
            else:
                assert not b.has_mask
            if fmt in KEEP_SCORES:
                assert b.attributes["score"] == pytest.approx(a.attributes["score"], abs=1e-4), (fmt, stem)
            else:
                assert "score" not in b.attributes


TOLERANCE = {"cvat": 0.005, "kitti": 0.005, "yolo": 1e-3}  # CVAT and KITTI write 2 decimals as they do; YOLO
# normalised, 6 decimals


@pytest.mark.parametrize("masks", [False, True], ids=["boxes", "masks"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_back_the_labels_it_was_written_with(fmt: str, masks: bool, source: Path, tmp_path: Path):
    saved = save_labels(Oracle(masks=masks), source, fmt, tmp_path / "out")
    assert [Path(im.file_name).as_posix() for im in saved.dataset.images] == ["a.png", "b.png", "day2/c.png"]
    if not masks:  # the detections themselves, exactly (Oracle: each blob's box, score = area / 1e4)
        a = {n: ann for n, ann in by_stem(saved.dataset)["a"]}
        assert a["a"].bbox == (5.0, 6.0, 30.0, 40.0) and a["a"].attributes["score"] == pytest.approx(0.085)
    back = read_dataset(tmp_path / "out", fmt, Report())
    assert {c.name for c in back.categories} >= {"a", "b"}
    assert_same(saved.dataset, back, fmt, TOLERANCE.get(fmt, 1e-6))
    assert (tmp_path / "out" / "labels_report.json").is_file()
    if fmt not in KEEP_SCORES:
        assert any("hold no scores" in n for n in saved.report.notes)


class Fixed:
    """A predictor that returns the same detections for every image (hypothesis draws them)."""

    def __init__(self, dets: Detections):
        self.dets, self.labels, self.masks = dets, Oracle().labels, dets.masks is not None

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        pass

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        return [self.dets for _ in images]


box = st.tuples(st.integers(0, W - 12), st.integers(0, H - 12), st.integers(4, 40), st.integers(4, 40),
                st.integers(1, 3), st.floats(0.001, 1.0)).map(
    lambda t: ((t[0] + 0.25, t[1] + 0.5, min(t[0] + t[2], W) - 0.75, min(t[1] + t[3], H)), t[4], round(t[5], 4)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boxes=st.lists(box, max_size=6), fmt=st.sampled_from(FORMATS))
def test_any_boxes_and_scores_round_trip(boxes, fmt: str, source: Path, tmp_path_factory):
    dets = Detections(np.array([b for b, _, _ in boxes], np.float32).reshape(-1, 4),
                      np.array([s for _, _, s in boxes], np.float32), np.array([k for _, k, _ in boxes], np.int64))
    out = tmp_path_factory.mktemp("rt") / "out"
    saved = save_labels(Fixed(dets), source / "b.png", fmt, out)
    assert len(saved.dataset.images[0].annotations) == len(boxes)
    assert_same(saved.dataset, read_dataset(out, fmt, Report()), fmt, TOLERANCE.get(fmt, 1e-4))


def two_part_mask() -> Detections:
    mask = np.zeros((1, H, W), bool)
    mask[0, 10:30, 10:30] = mask[0, 50:80, 60:100] = True  # one object seen as two pieces (an occluder between)
    return Detections(np.array([[10, 10, 100, 80]], np.float32), np.array([0.9], np.float32),
                      np.array([1], np.int64), mask)


@pytest.mark.parametrize("fmt", ["coco", "cvat", "labelme", "yolo"])
def test_a_mask_in_pieces_is_one_instance_again(fmt: str, source: Path, tmp_path: Path):
    save_labels(Fixed(two_part_mask()), source / "b.png", fmt, tmp_path / "out")
    (image,) = read_dataset(tmp_path / "out", fmt, Report()).images
    parts = 1 if fmt == "yolo" else 2  # a YOLO line is one outline: the pieces joined, as ultralytics joins them
    assert len(image.annotations) == 1 and len(image.annotations[0].polygons) == parts


def test_via_has_no_groups_and_says_it_splits_the_pieces(source: Path, tmp_path: Path):
    saved = save_labels(Fixed(two_part_mask()), source / "b.png", "via", tmp_path / "out")
    assert saved.report.counts()[("converted", "instance_split")] == 1
    (image,) = read_dataset(tmp_path / "out", "via", Report()).images
    assert len(image.annotations) == 2


def test_the_files_have_the_layout_each_tool_imports(source: Path, tmp_path: Path):
    save_labels(Oracle(), source, "labelme", tmp_path / "lm")
    doc = json.loads((tmp_path / "lm" / "day2" / "c.json").read_text())
    assert doc["imagePath"] == "c.png" and doc["imageData"] is None and doc["shapes"] == []  # labelme reads the key
    shape = json.loads((tmp_path / "lm" / "a.json").read_text())["shapes"][0]
    assert {"label", "points", "group_id", "shape_type", "flags", "score"} <= set(shape)
    assert (tmp_path / "lm" / "a.png").is_symlink()  # beside its JSON, as labelme opens a folder

    save_labels(Oracle(masks=False), source, "cvat", tmp_path / "cvat")
    root = parse(tmp_path / "cvat" / "annotations.xml")
    assert root.findtext("version") == "1.1"
    labels = root.findall("meta/task/labels/label")  # datumaro's CVAT importer takes the labels from here
    assert [el.findtext("name") for el in labels] == ["a", "b", "c"]
    assert labels[0].findtext("attributes/attribute/name") == "score"
    assert labels[0].findtext("attributes/attribute/input_type") == "number"
    names = [el.get("name") for el in root.iter("image")]
    assert names == ["a.png", "b.png", "day2/c.png"] and (tmp_path / "cvat" / "images" / "day2" / "c.png").exists()
    box = root.find("image/box")
    assert box.get("source") == "auto" and box.find("attribute").get("name") == "score"

    save_labels(Oracle(masks=False), source, "via", tmp_path / "via")
    records = json.loads((tmp_path / "via" / "via_region_data.json").read_text())
    size = (source / "a.png").stat().st_size
    assert f"a.png{size}" in records  # VIA 2 discards an entry whose key is not filename + size
    region = records[f"a.png{size}"]["regions"][0]
    assert list(region["region_attributes"]) == ["label", "score"] and region["shape_attributes"]["name"] == "rect"


def test_voc_asked_for_masks_writes_boxes_and_says_so(source: Path, tmp_path: Path):
    saved = save_labels(Oracle(masks=True), source, "voc", tmp_path / "out")
    assert any("boxes only" in n for n in saved.report.notes)
    assert not any(a.has_mask for im in saved.dataset.images for a in im.annotations)


def test_bad_targets_and_sources_are_named(source: Path, tmp_path: Path):
    with pytest.raises(DetftError, match="inside the input"):
        save_labels(Oracle(), source, "coco", source / "labels")
    with pytest.raises(DetftError, match="would replace input data"):
        save_labels(Oracle(), source, "coco", source)
    with pytest.raises(DetftError, match="writable formats are"):
        save_labels(Oracle(), source, "labelbox", tmp_path / "out")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(DetftError, match="clip.mp4: this command takes images"):
        save_labels(Oracle(), tmp_path / "clip.mp4", "coco", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DetftError, match="no images in"):
        save_labels(Oracle(), tmp_path / "empty", "coco", tmp_path / "out")
    with pytest.raises(DetftError, match="not videos or streams"):
        save_labels(Oracle(), Path("rtsp://camera/1"), "coco", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (source / "labels").exists()


@pytest.mark.parametrize("fmt", ["cvat", "labelme", "via"])
def test_bccd_goes_to_each_drawing_tool_and_back_with_its_boxes_and_flags(bccd: Path, fmt: str, tmp_path: Path):
    """Real data: BCCD's VOC (with difficult/truncated flags) written for the tool and read back unchanged."""
    from detft.operations.convert import convert, load

    result = convert(bccd, tmp_path / fmt, to=fmt, fmt="voc")
    assert not [c for c in result.report.changes if c.kind == "attributes_not_kept"]
    source = {Path(im.file_name).name: im for im in result.dataset.images}
    back = load(tmp_path / fmt, fmt, Report())
    assert len(back.images) == len(source) == 364 and back.num_annotations == result.written
    names_a = {c.id: c.name for c in result.dataset.categories}
    names_b = {c.id: c.name for c in back.categories}
    for im in back.images:
        orig = source[Path(im.file_name).name]
        got = sorted((names_b[a.category_id], a.bbox, bool(a.attributes.get("truncated"))) for a in im.annotations)
        want = sorted((names_a[a.category_id], a.bbox, bool(a.attributes.get("truncated"))) for a in orig.annotations)
        assert [(n, t) for n, _, t in got] == [(n, t) for n, _, t in want], im.file_name
        np.testing.assert_allclose([b for _, b, _ in got], [b for _, b, _ in want], atol=0.005)
