"""What a hostile corpus found on the load and write paths (#28): each case ends in a named error (exit 1) or a
reported change, never the CLI guard's 'unexpected ...' (exit 70), and nothing is left half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import make_image

from detft.annotations.report import Report
from detft.cli import main
from detft.formats import WRITERS
from detft.formats.layout import MAX_NAME_BYTES
from detft.operations.convert import load


def coco_export(folder: Path, name: str = "x.jpg", bbox: str = "[1, 1, 5, 5]") -> Path:
    make_image(folder / name, 20, 20)
    text = ('{"images": [{"id": 1, "file_name": ' + json.dumps(name) + ', "width": 20, "height": 20}], '
            '"categories": [{"id": 1, "name": "a"}], '
            '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": ' + bbox + ', "iscrowd": 0}]}')
    (folder / "ann.json").write_text(text)
    return folder / "ann.json"


def cli(capsys, *args: object) -> tuple[int, str]:
    """Exit code, and what the command printed (stdout, then stderr)."""
    code = main([str(a) for a in args])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


@pytest.mark.parametrize("to", sorted(WRITERS))
def test_an_image_name_near_the_filesystem_limit_is_written_shortened_and_reported(tmp_path: Path, capsys, to: str):
    name = "a" * 250 + ".jpg"  # 254 bytes: fine on disk, but a label beside it or a temp name would pass 255
    src = coco_export(tmp_path / "src", name)
    code, err = cli(capsys, "convert", src, tmp_path / "out", "--to", to)
    assert code == 0, err
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file() or p.is_symlink()]
    assert written and all(len(os.fsencode(p.name)) <= MAX_NAME_BYTES + 4 for p in written)
    report = Report()
    ds = load(tmp_path / "out", to, report)
    assert ds.num_annotations == 1


@pytest.mark.parametrize("to", sorted(WRITERS))
def test_a_latin1_file_name_on_disk_is_written_as_utf8_and_reported(tmp_path: Path, capsys, to: str):
    name = os.fsdecode(b"caf\xe9.jpg")  # how Python sees a name written by a Latin-1 system
    src = coco_export(tmp_path / "src", name)
    code, printed = cli(capsys, "convert", src, tmp_path / "out", "--to", to)
    assert code == 0, printed
    assert "non_utf8_file_name" in printed
    images = [p.name for p in (tmp_path / "out").rglob("café.jpg")]
    assert images == ["café.jpg"]
    assert load(tmp_path / "out", to, Report()).num_annotations == 1


def test_a_5000_digit_number_in_a_coco_bbox_is_a_named_error(tmp_path: Path, capsys):
    src = coco_export(tmp_path / "src", bbox="[1, 1, " + "9" * 5000 + ", 5]")
    code, err = cli(capsys, "inspect", src)
    assert code == 1 and f"{src}: invalid JSON" in err and "4300 digits" in err


def test_a_yolo_class_written_with_a_superscript_digit_is_a_reported_drop(tmp_path: Path):
    make_image(tmp_path / "images" / "x.jpg", 20, 20)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.txt").write_text("\u00b2 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    report = Report()
    ds = load(tmp_path, "yolo", report)
    assert ds.num_annotations == 1 and [c.kind for c in report.changes] == ["bad_line"]
    assert "x.txt:1" in report.changes[0].where


@pytest.mark.parametrize("case", ["parent is a file", "dangling link", "under a dangling link", "out is a file"])
def test_an_output_folder_that_cannot_be_made_is_a_named_error_and_nothing_is_written(tmp_path: Path, capsys, case):
    src = coco_export(tmp_path / "src")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    out = {"parent is a file": tmp_path / "afile" / "out", "dangling link": tmp_path / "gone",
           "under a dangling link": tmp_path / "gone" / "out", "out is a file": tmp_path / "afile"}[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = cli(capsys, "convert", src, out, "--to", "coco", "--overwrite")
    assert code == 1 and "unexpected" not in err and str(out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp folder left beside it
    assert (tmp_path / "afile").read_text() == "x"


def test_eval_compare_on_a_json_that_is_not_an_eval_report_is_a_named_error(tmp_path: Path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"settings": {}}))
    (tmp_path / "b.json").write_text("{not json")
    code, err = cli(capsys, "eval", "--compare", tmp_path / "a.json", tmp_path / "a.json")
    assert code == 1 and "a.json is not an eval.json that detft wrote" in err
    code, err = cli(capsys, "eval", "--compare", tmp_path / "b.json", tmp_path / "a.json")
    assert code == 1 and "b.json:1: invalid JSON" in err


def test_eval_dets_against_ground_truth_without_annotations_is_a_named_error(tmp_path: Path, capsys):
    (tmp_path / "gt.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "x.jpg", "width": 20,
                                                              "height": 20}], "categories": [{"id": 1, "name": "a"}]}))
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3],
                                                     "score": 0.9}]))
    code, err = cli(capsys, "eval", "--data", tmp_path / "gt.json", "--dets", tmp_path / "dets.json")
    assert code == 1 and "needs a 'annotations' list" in err


def test_predict_and_video_outputs_that_are_the_wrong_kind_of_path_are_named_errors(tmp_path: Path):
    from detft.errors import DetftError
    from detft.inference.video import VIDEO_SUFFIX, check_output_file, predict_images

    (tmp_path / "afile.txt").write_text("x")
    with pytest.raises(DetftError, match="is a file: predict writes a folder"):
        predict_images(None, tmp_path, tmp_path / "afile.txt")  # refused before any model is needed
    with pytest.raises(DetftError, match="the annotated video is an MP4; name it afile.mp4"):
        check_output_file(tmp_path / "afile.txt", True, VIDEO_SUFFIX)
    with pytest.raises(DetftError, match="afile.txt is a file, not a folder"):
        check_output_file(tmp_path / "afile.txt" / "o.mp4", True, VIDEO_SUFFIX)
