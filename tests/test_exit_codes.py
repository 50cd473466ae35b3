"""One exit-code convention for every command (#50): 0 success, 1 a named error, 2 a command line the parser
refuses, 70 an unexpected error (a bug, said so, with how to report it), 130 Ctrl-C; the table in docs/safety.md
and ``detft --help`` say the same. And the cases of #50 that ended as unexpected errors or silently wrong numbers:
``eval --dets`` on ground truth with images without objects and on malformed ground truth, garbage segmentations
in the detections, and a COCO image named by a path no filesystem can hold."""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eval_reference import reference_confusion, reference_error_breakdown, reference_match
from helpers import make_image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detft.cli import build_parser, main
from detft.errors import EXIT_CODES, DetftError, ExitCode
from detft.evaluation import BACKENDS, evaluate
from detft.evaluation.thresholds import match
from detft.evaluation.validate import rle_runs, usable_segmentation

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv: object) -> tuple[int, str, str]:
    """Exit code of ``detft ARGV`` run in this process (argparse's SystemExit included), its stdout and stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


# Each command as it is typed, and a library function it calls (module:name): what the injected exceptions
# replace.
CALLS: dict[str, tuple[list[str], str]] = {
    "convert": (["convert", "src", "out"], "detft.operations.convert:convert"),
    "merge": (["merge", "a", "b", "out"], "detft.operations.convert:convert"),
    "split": (["split", "src", "out"], "detft.operations.convert:convert"),
    "inspect": (["inspect", "data"], "detft.operations.convert:load"),
    "train": (["train", "--data", "data"], "detft.api:train"),
    "eval": (["eval", "--compare", "a", "b"], "detft.evaluation.report:load_eval"),
    "predict": (["predict", "--weights", "w", "--source", "s"], "detft.api:load"),
    "rank": (["rank", "--weights", "w", "--source", "s"], "detft.api:load"),
    "pseudo": (["pseudo", "--weights", "w", "--source", "s", "--out", "o"], "detft.api:load"),
    "audit": (["audit", "--weights", "w"], "detft.api:load"),
    "serve": (["serve", "--weights", "w"], "detft.api:load"),
    "video": (["video", "--weights", "w", "--source", "s"], "detft.api:load"),
    "export": (["export", "--weights", "w"], "detft.api:load"),
    "benchmark": (["benchmark"], "detft.benchmark:benchmark"),
    "runs": (["runs", "d"], "detft.api:list_runs"),
}


def test_every_command_is_covered():
    assert sorted(CALLS) == subcommands()


def test_the_codes_are_distinct_and_usage_is_argparse_own():
    assert len(set(EXIT_CODES)) == len(ExitCode) == 5
    with pytest.raises(SystemExit) as e:
        argparse.ArgumentParser().error("x")
    assert e.value.code == ExitCode.USAGE


@pytest.mark.parametrize("command", sorted(CALLS))
def test_an_unknown_option_exits_2(command: str, capsys):
    code, _, err = run(capsys, *CALLS[command][0], "--no-such-option")
    assert code == ExitCode.USAGE and "usage: detft" in err and "--no-such-option" in err, err


@pytest.mark.parametrize("argv,flag", [
    ([], "command"), (["no-such-command"], "no-such-command"),
    (["--no-such-option", "inspect", "d"], "--no-such-option"),
    (["convert", "src"], "out"), (["predict", "--source", "s"], "--weights"),
    (["convert", "a", "b", "--tile", "0"], "--tile"), (["inspect", "d", "-n", "0"], "-n"),
    (["eval", "--dets", "d", "--max-dets", "0"], "--max-dets"),
    (["predict", "--weights", "w", "--source", "s", "--conf", "2"], "--conf"),
    (["video", "--weights", "w", "--source", "s", "--timeout", "-1"], "--timeout"),
    (["train", "--epochs", "nan"], "--epochs"), (["convert", "a", "b", "--to", "nothing"], "--to"),
])
def test_missing_arguments_and_values_out_of_range_exit_2(argv: list[str], flag: str, capsys):
    code, _, err = run(capsys, *argv)
    assert code == ExitCode.USAGE and "usage: detft" in err and flag in err, err


@pytest.mark.parametrize("command", sorted(CALLS))
@pytest.mark.parametrize("raised,code", [(DetftError("a named problem"), ExitCode.ERROR),
                                         (RuntimeError("nobody expected this"), ExitCode.BUG),
                                         (KeyboardInterrupt(), ExitCode.INTERRUPTED)])
def test_every_command_exits_with_the_code_of_what_it_raised(command: str, raised: BaseException, code: int,
                                                             monkeypatch, capsys):
    argv, target = CALLS[command]

    def fail(*args, **kwargs):
        raise raised

    module, name = target.split(":")
    monkeypatch.setattr(importlib.import_module(module), name, fail)  # detft.benchmark the package's function hides
    got, _, err = run(capsys, *argv)
    assert got == code, err
    last = err.strip().splitlines()[-1]
    if code == ExitCode.ERROR:
        assert last == "detft: error: a named problem"
    elif code == ExitCode.BUG:
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert last.startswith(f"detft {command}: unexpected RuntimeError on ") and "nobody expected this" in last
        assert "this is a bug in detft" in last and "please report it" in last and f"detft --debug {command}" in last
    else:
        assert last == "detft: interrupted"


def test_debug_prints_the_traceback_of_a_bug(monkeypatch, capsys):
    monkeypatch.setattr("detft.operations.convert.load", lambda *a, **k: 1 / 0)
    code, _, err = run(capsys, "--debug", "inspect", "data")
    assert code == ExitCode.BUG and "Traceback" in err and "ZeroDivisionError" in err
    assert "please report it with the command line and the traceback above" in err


INJECTED_BUG = ("import sys, detft.operations.convert as c\n"
                "def boom(*a, **k): raise RuntimeError('injected')\n"
                "c.load = boom\n"
                "from detft.cli import main\n"
                "sys.exit(main(['inspect', 'data']))\n")
PROCESSES = {  # the interpreter's arguments, and what stderr says
    ExitCode.USAGE: (["-m", "detft", "inspect", "d", "-n", "0"], "detft inspect: error: argument -n"),
    ExitCode.ERROR: (["-m", "detft", "inspect", "missing"], "detft: error: "),
    ExitCode.BUG: (["-c", INJECTED_BUG], "this is a bug in detft"),
}


@pytest.mark.parametrize("code", list(PROCESSES))
def test_the_process_exits_with_the_code(tmp_path: Path, code: ExitCode):
    argv, said = PROCESSES[code]
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == code and said in done.stderr, done.stderr


def test_docs_and_help_give_the_same_table():
    page = (ROOT / "docs" / "safety.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", page, re.M))
    assert {int(k): v.replace("`", "") for k, v in rows.items()} == {int(k): v for k, v in EXIT_CODES.items()}
    epilog = " ".join(build_parser().format_help().split("exit codes (every command):")[1].split())
    for code, meaning in EXIT_CODES.items():
        assert f"{int(code)} {meaning}" in epilog


# ------------------------------------------------------------------ eval --dets: ground truth
def ground_truth() -> dict:
    """Four images, two of them without objects."""
    return {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 80} for i in (1, 2, 3, 4)],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [{"id": k, "image_id": image, "category_id": cat, "bbox": box, "area": box[2] * box[3],
                             "iscrowd": 0} for k, (image, cat, box) in enumerate([(1, 1, [10, 10, 30, 20]),
                                                                                 (1, 2, [50, 40, 20, 20]),
                                                                                 (3, 1, [5, 5, 40, 40])], 1)]}


def detections() -> list[dict]:
    """Hits on images 1 and 3, and false detections on 2 and 4, which hold no objects (some scoring higher)."""
    return [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20], "score": 0.9},
            {"image_id": 1, "category_id": 2, "bbox": [52, 41, 20, 20], "score": 0.6},
            {"image_id": 3, "category_id": 1, "bbox": [6, 5, 40, 38], "score": 0.7},
            {"image_id": 2, "category_id": 1, "bbox": [10, 10, 30, 20], "score": 0.95},
            {"image_id": 2, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 0.3},
            {"image_id": 4, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.8}]


def eval_dets(tmp_path: Path, capsys, gt: dict, dets: list, *argv: str) -> tuple[int, str, Path]:
    """``detft eval --data gt.json --dets dets.json``: the exit code, stderr and the output folder."""
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    out = tmp_path / "eval"
    code, _, err = run(capsys, "eval", "--data", tmp_path / "gt.json", "--dets", tmp_path / "dets.json", "--out", out,
                       *argv)
    return code, err, out


def pycocotools_stats(gt: dict, dets: list[dict], iou_type: str = "bbox") -> list[float]:
    """COCO's 12 numbers straight from pycocotools: the reference."""
    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(gt)
    coco_gt.createIndex()
    ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return list(ev.stats)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_dets_with_images_without_objects_matches_the_reference(tmp_path: Path, backend: str, capsys):
    gt, dets = ground_truth(), detections()
    code, err, out = eval_dets(tmp_path, capsys, gt, dets, "--backend", backend)
    assert code == 0, err
    doc = json.loads((out / "eval.json").read_text())
    assert doc["n_images"] == 4 and doc["n_detections"] == 6
    assert list(doc["metrics"]["bbox"]["stats"].values()) == pytest.approx(pycocotools_stats(gt, dets), abs=1e-12)
    ours, ref = match(gt, dets), reference_match(gt, dets)
    assert not ours.tp[np.isin(ours.image, [2, 4])].any()  # every detection on an image without objects is false
    assert sorted(zip(ours.score, ours.image, ours.tp)) == sorted(zip(ref.score, ref.image, ref.tp))
    assert doc["errors"] == reference_error_breakdown(gt, dets)
    assert doc["confusion_matrix"]["rows_predicted"] == reference_confusion(gt, dets)[0].tolist()
    assert sum(r["false_positives"] for r in doc["worst_images"]["images"] if r["image_id"] in (2, 4)) > 0


def test_a_false_detection_on_an_image_without_objects_halves_the_precision(tmp_path: Path, capsys):
    """One object found exactly, below one detection on an empty image: precision 1/2 at every recall."""
    gt = ground_truth()
    gt["annotations"] = gt["annotations"][:1]
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20], "score": 0.5},
            {"image_id": 2, "category_id": 1, "bbox": [10, 10, 30, 20], "score": 0.9}]
    code, err, out = eval_dets(tmp_path, capsys, gt, dets)
    assert code == 0, err
    assert json.loads((out / "eval.json").read_text())["metrics"]["bbox"]["stats"]["AP"] == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ground_truth_without_iscrowd_or_area_is_scored_as_coco_defines_them(tmp_path: Path, backend: str, capsys):
    """pycocotools raised KeyError on such objects; faster-coco-eval read the missing area as 0 (APm, APl -1)."""
    gt, dets = ground_truth(), detections()
    bare = copy.deepcopy(gt)
    for a in bare["annotations"]:
        del a["iscrowd"], a["area"]
    code, err, out = eval_dets(tmp_path, capsys, bare, dets, "--backend", backend)
    assert code == 0, err
    stats = json.loads((out / "eval.json").read_text())["metrics"]["bbox"]["stats"]
    assert list(stats.values()) == pytest.approx(pycocotools_stats(gt, dets), abs=1e-12)


@pytest.mark.parametrize("change,match", [
    (lambda gt: gt["annotations"].append({**gt["annotations"][0], "id": 9, "image_id": 99}),
     "gt.json (annotations[3]): image_id 99 is not an image of 'images'"),
    (lambda gt: gt["annotations"].append({**gt["annotations"][0], "id": 9, "category_id": 7}),
     "gt.json (annotations[3]): category_id 7 is not a category of 'categories'"),
    (lambda gt: gt["images"].append(dict(gt["images"][1])), "gt.json (images[4]): image id 2 is listed twice"),
    (lambda gt: gt["annotations"][0].pop("bbox"), "gt.json (annotations[0]): ground-truth bbox None"),
    (lambda gt: gt["annotations"][0].update(segmentation=[[10, 10, 40, 10, 40, 30]]) or gt["images"][0].pop("width"),
     "gt.json (annotations[0]): polygons on image 1, which has no integer width and height"),
    (lambda gt: gt["annotations"][0].update(segmentation={"size": [80, 100], "counts": "PP3"}),
     "gt.json (annotations[0]): ground-truth segmentation: compressed RLE counts do not decode"),
])
def test_ground_truth_the_evaluators_cannot_index_is_a_named_error(tmp_path: Path, change, match: str, capsys):
    gt = ground_truth()
    change(gt)
    code, err, out = eval_dets(tmp_path, capsys, gt, detections())
    assert code == ExitCode.ERROR and match in err and "unexpected" not in err, err
    assert not out.exists()


# ------------------------------------------------------------------ eval --dets: segmentations
def text_rle(enc: dict) -> dict:
    """A pycocotools RLE as a results file holds it (counts as text)."""
    return {"size": [int(v) for v in enc["size"]], "counts": enc["counts"].decode()}


def rle(x: int, y: int, side: int, shape: tuple[int, int] = (80, 100)) -> dict:
    """A ``side`` px square at (x, y) on an image of ``shape`` (height, width), as compressed RLE."""
    m = np.zeros(shape, np.uint8, order="F")
    m[y:y + side, x:x + side] = 1
    return text_rle(mask_utils.encode(m))


def masked_ground_truth() -> dict:
    gt = ground_truth()
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return gt


def masked_detections() -> list[dict]:
    return [{**d, "segmentation": rle(*d["bbox"][:2], 20)} for d in detections()]


GARBAGE = {
    "odd polygon": [[10, 10, 40, 10, 40]],
    "not numbers": [["a", "b", 1, 2, 3, 4]],
    "RLE of another size": rle(10, 10, 20, (40, 50)),
    "empty list": [],
    "no counts": {"size": [80, 100]},
    "truncated RLE": {"size": [80, 100], "counts": rle(10, 10, 20)["counts"][:-2]},
    "runs short of the image": {"size": [80, 100], "counts": rle(1, 1, 5, (40, 50))["counts"]},  # hung faster-coco-eval
    "a string": "polygon",
}


def test_garbage_segmentations_are_counted_named_and_left_out_of_segm(tmp_path: Path, capsys):
    gt, good = masked_ground_truth(), masked_detections()
    bad = [{"image_id": 1 + k % 4, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.99, "segmentation": seg}
           for k, seg in enumerate(GARBAGE.values())]
    code, err, out = eval_dets(tmp_path, capsys, gt, good + bad)
    assert code == 0, err
    assert f"{len(bad)} detection(s) with a segmentation that cannot be scored" in err, err
    doc = json.loads((out / "eval.json").read_text())
    lines = doc["unusable_segmentations"]
    assert [line.split(":")[0] for line in lines] == [f"detection {len(good) + k} (image {1 + k % 4})"
                                                      for k in range(len(bad))]
    assert "odd length" in lines[0] and "RLE size [40, 50] is not its image's [80, 100]" in lines[2]
    # left out of segm, not scored as masks that miss: segm is that of the good masks alone; every box still counts
    assert list(doc["metrics"]["segm"]["stats"].values()) == pytest.approx(evaluate(gt, good, "segm").stats, abs=1e-12)
    assert doc["n_detections"] == len(good) + len(bad)


def test_polygons_and_uncompressed_rle_in_the_detections_are_scored_as_their_masks(tmp_path: Path, capsys):
    """COCO results hold masks as compressed RLE, and both evaluators' loadRes raised TypeError on the other two
    forms: they are scored as the masks COCO draws for them (annToRLE: frPyObjects, then merge)."""
    gt = masked_ground_truth()
    polygons = [[[x, y, x + 20, y, x + 20, y + 20, x, y + 20]] for x, y in (d["bbox"][:2] for d in detections())]
    drawn = [{**d, "segmentation": text_rle(mask_utils.merge(mask_utils.frPyObjects(p, 80, 100)))}
             for d, p in zip(detections(), polygons)]
    given = [{**d, "segmentation": p if k % 2 else {"size": [80, 100], "counts": rle_runs(d["segmentation"]["counts"])}}
             for k, (d, p) in enumerate(zip(drawn, polygons))]
    code, err, out = eval_dets(tmp_path, capsys, gt, given)
    assert code == 0 and "cannot be scored" not in err, err
    doc = json.loads((out / "eval.json").read_text())
    assert doc["unusable_segmentations"] == []
    assert list(doc["metrics"]["segm"]["stats"].values()) == pytest.approx(evaluate(gt, drawn, "segm").stats, abs=1e-12)


@pytest.mark.parametrize("with_boxes", [True, False])
def test_a_file_none_of_whose_segmentations_can_be_scored_is_a_named_error(tmp_path: Path, with_boxes: bool, capsys):
    dets = [{k: v for k, v in d.items() if with_boxes or k != "bbox"} | {"segmentation": seg}
            for d, seg in zip(detections(), GARBAGE.values())]
    code, err, out = eval_dets(tmp_path, capsys, masked_ground_truth(), dets)
    assert code == ExitCode.ERROR and "dets.json (detection 0): a polygon of odd length" in err, err
    assert ("none can be scored, while the ground truth has masks" if with_boxes else "no detection is left") in err
    assert not out.exists()


def test_garbage_segmentations_against_ground_truth_without_masks_leave_the_boxes(tmp_path: Path, capsys):
    dets = [d | {"segmentation": seg} for d, seg in zip(detections(), GARBAGE.values())]
    code, err, out = eval_dets(tmp_path, capsys, ground_truth(), dets)
    assert code == 0 and "6 detection(s) with a segmentation that cannot be scored" in err, err
    doc = json.loads((out / "eval.json").read_text())
    assert list(doc["metrics"]) == ["bbox"]
    assert list(doc["metrics"]["bbox"]["stats"].values()) == pytest.approx(
        pycocotools_stats(ground_truth(), detections()), abs=1e-12)


FULL = rle(0, 0, 0)["counts"]  # every pixel off: one run of 8000
PART = rle(10, 10, 20)["counts"]


@pytest.mark.parametrize("counts,ok", [(FULL, True), (PART, True), (PART[:-1], False), (PART + "1", False), ("", False),
                                       ("PP3", False), ("\x7f", False), ("é", False), ("`" * 8 + "0", False)])
def test_an_rle_string_is_scored_only_when_its_runs_cover_its_image(counts: str, ok: bool):
    """pycocotools decodes any string; a run list short of height*width hangs faster-coco-eval."""
    assert (usable_segmentation({"size": [80, 100], "counts": counts}, (80, 100))[0] is not None) == ok
    assert rle_runs(FULL) == [8000]


# ------------------------------------------------------------------ a COCO image named by an impossible path
def long_path_coco(root: Path, only_impossible: bool = False) -> Path:
    """a.jpg, and b.jpg named by a 5,000-byte path (image id 7) and by a path with a 300-byte folder name (id 8),
    b.jpg itself lying beside the file, where the search by base name used to find it."""
    make_image(root / "a.jpg", 32, 32)
    make_image(root / "b.jpg", 32, 32, seed=1)
    images = [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 32},
              {"id": 7, "file_name": "d/" * 2500 + "b.jpg", "width": 32, "height": 32},
              {"id": 8, "file_name": "x" * 300 + "/b.jpg", "width": 32, "height": 32}]
    images = images[1:] if only_impossible else images
    doc = {"images": images, "categories": [{"id": 1, "name": "c"}],
           "annotations": [{"id": k, "image_id": im["id"], "category_id": 1, "bbox": [1, 1, 10, 10]}
                           for k, im in enumerate(images, 1)]}
    (root / "gt.json").write_text(json.dumps(doc))
    return root / "gt.json"


def report_lines(printed: str) -> list[str]:
    return [line for line in printed.splitlines() if line.startswith(("  dropped", "  warning"))]


def test_a_path_no_filesystem_can_hold_is_an_image_not_found_in_convert_and_inspect(tmp_path: Path, capsys):
    src = long_path_coco(tmp_path / "src")
    code, converted, err = run(capsys, "convert", src, tmp_path / "out")
    assert code == 0, err
    changes = json.loads((tmp_path / "out" / "convert_report.json").read_text())["changes"]
    assert sorted(c["kind"] for c in changes) == ["missing_image"] * 2 + ["unholdable_file_name"] * 2
    assert [c["where"] for c in changes if c["kind"] == "missing_image"] == [f"{src} object 1", f"{src} object 2"]
    assert [c["detail"].split(":")[0] for c in changes if c["kind"] == "unholdable_file_name"] == ["image id 7",
                                                                                                   "image id 8"]
    code, inspected, err = run(capsys, "inspect", src, "--grid", tmp_path / "grid.png")
    assert code == 0, err
    assert report_lines(inspected) == report_lines(converted) and len(report_lines(converted)) == 2


def test_a_dataset_of_impossible_paths_alone_is_a_named_loss(tmp_path: Path, capsys):
    code, _, err = run(capsys, "convert", long_path_coco(tmp_path / "src", only_impossible=True), tmp_path / "out")
    assert code == ExitCode.ERROR and "none could be kept" in err and "unexpected" not in err, err
