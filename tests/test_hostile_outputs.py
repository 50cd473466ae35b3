"""Issue 33's adversarial cases against the newest commands: no command, with any flags, deletes or writes into
its own inputs; numbers are checked where they are parsed; results that were silently wrong are right or said;
outputs appear whole or not at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from conftest import snapshot
from helpers import make_image, pairwise_merge, slice_detections

from detft.cli import main
from detft.util.output import MARKER


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny R-CNN trained for one step, and the COCO dataset it was trained on (annotations/ + images/)."""
    from detft.operations.synthetic import generate

    root = tmp_path_factory.mktemp("trained")
    generate(root / "data", n_train=4, n_val=2, size=96, seed=1)
    assert main(["train", "--data", str(root / "data"), "--model", "tiny_fasterrcnn", "--weights", "none",
                 "--epochs", "1", "--batch", "4", "--workers", "0", "--imgsz", "96", "--augment", "none",
                 "--project", str(root / "runs"), "--name", "m", "--device", "cpu"]) == 0
    return root / "runs" / "m", root / "data"


def run_cli(capsys, *argv: object) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def unlabelled(folder: Path, n: int = 3) -> Path:
    for i in range(n):
        make_image(folder / f"u{i}.jpg", 96, 96, seed=10 + i)
    return folder


# ------------------------------------------------------------------ one rule for OUT
@pytest.mark.parametrize("command", ["convert", "split", "merge"])
def test_no_dataset_command_replaces_or_writes_into_its_source(trained, tmp_path: Path, capsys, command: str):
    _, data = trained
    before = snapshot(data)
    other = data  # merge needs two datasets: the same one twice is enough to reach the output check
    for out in (data / "annotations", data, data / "images", data / "annotations" / "sub", data / "new"):
        argv = {"convert": ["convert", data, out], "split": ["split", data, out],
                "merge": ["merge", data, other, out]}[command]
        code, err = run_cli(capsys, *argv, "--overwrite")
        assert code == 1 and ("would replace input data" in err or "inside the input" in err), err
    assert snapshot(data) == before


def test_overwrite_replaces_only_a_folder_detft_wrote(trained, tmp_path: Path, capsys):
    _, data = trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    code, err = run_cli(capsys, "convert", data, mine, "--overwrite")
    assert code == 1 and "detft did not write it" in err and (mine / "thesis.txt").read_text() == "years of work"
    out = tmp_path / "out"
    assert run_cli(capsys, "convert", data, out)[0] == 0 and (out / MARKER).is_file()
    assert run_cli(capsys, "convert", data, out, "--to", "yolo", "--overwrite")[0] == 0
    assert (out / "data.yaml").is_file() and (out / MARKER).is_file()


def test_no_inference_command_replaces_or_writes_into_the_run_or_the_images(trained, tmp_path: Path, capsys):
    run, data = trained
    images = unlabelled(tmp_path / "unlabelled")
    before_run, before_images, before_data = snapshot(run), snapshot(images), snapshot(data)
    cases = [["predict", "--weights", run, "--source", images, "--save-labels", "coco", run, "--overwrite"],
             ["predict", "--weights", run, "--source", images, "--save-labels", "coco", run / "labels"],
             ["predict", "--weights", run, "--source", images, "--save-labels", "coco", images / "labels"],
             ["predict", "--weights", run, "--source", images, "--out", run, "--overwrite"],
             ["predict", "--weights", run, "--source", images, "--out", images / "pred"],
             ["rank", "--weights", run, "--source", images, "--out", run, "--overwrite"],
             ["rank", "--weights", run, "--source", images, "--out", images / "rank"],
             ["video", "--weights", run, "--source", images, "--jsonl", run / "run.yaml", "--overwrite"],
             ["video", "--weights", run, "--source", images, "--jsonl", run / "weights" / "v.jsonl"],
             ["export", "--weights", run, "--out", data / "model.onnx"],
             ["convert", data, data / "tiles", "--tile", "64"]]
    for argv in cases:
        code, err = run_cli(capsys, *argv)
        assert code == 1 and ("would replace input data" in err or "inside the input" in err), (argv, err)
    assert snapshot(run) == before_run and snapshot(images) == before_images and snapshot(data) == before_data


def test_every_command_writes_to_an_out_named_relative_to_the_working_folder(trained, tmp_path: Path, capsys,
                                                                          monkeypatch):
    """``detft convert data out`` from the folder that holds both: the commonest command line there is."""
    run, data = trained
    unlabelled(tmp_path / "unlabelled")
    monkeypatch.chdir(tmp_path)
    cases = {"converted": ["convert", data, "converted", "--to", "yolo"], "split": ["split", data, "split"],
             "merged": ["merge", data, data, "merged"], "tiles": ["convert", data, "tiles", "--tile", "64"],
             "pre": ["predict", "--weights", run, "--source", "unlabelled", "--save-labels", "coco", "pre"],
             "pred": ["predict", "--weights", run, "--source", "unlabelled", "--out", "pred"],
             "ranked": ["rank", "--weights", run, "--source", "unlabelled", "--out", "ranked"]}
    for out, argv in cases.items():
        code, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        assert (tmp_path / out / MARKER).is_file() and not list(tmp_path.glob(f".{out}.tmp-*")), argv


def test_a_run_folder_stays_out_of_the_data_and_the_run_it_starts_from(trained, tmp_path: Path, capsys):
    run, data = trained
    before_run, before_data = snapshot(run), snapshot(data)
    base = ["train", "--model", "tiny_fasterrcnn", "--epochs", "1", "--batch", "2", "--workers", "0", "--imgsz",
            "96", "--augment", "none", "--device", "cpu"]
    code, err = run_cli(capsys, *base, "--data", data, "--weights", "none", "--project", data / "runs")
    assert code == 1 and "inside the input" in err, err
    code, err = run_cli(capsys, *base, "--data", data, "--weights", run, "--project", run.parent, "--name", run.name,
                        "--exist-ok")
    assert code == 1 and "would replace input data" in err, err
    assert snapshot(run) == before_run and snapshot(data) == before_data


def test_predict_out_is_whole_or_absent_and_a_default_never_replaces_the_last(trained, tmp_path: Path, capsys,
                                                                               monkeypatch):
    run, _ = trained
    images = unlabelled(tmp_path / "images")
    data = (images / "u1.jpg").read_bytes()
    (images / "u1.jpg").write_bytes(data[: len(data) // 2])  # truncated
    code, err = run_cli(capsys, "predict", "--weights", run, "--source", images, "--out", tmp_path / "pred")
    assert code == 1 and "u1.jpg" in err and "truncated JPEG" in err, err
    assert not (tmp_path / "pred").exists() and not list(tmp_path.glob(".pred*"))
    (images / "u1.jpg").write_bytes(data)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, err = run_cli(capsys, "predict", "--weights", run, "--source", images)
        assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["predict", "predict2"]
    assert (tmp_path / "runs" / "predict2" / "predictions.jsonl").read_text().count("\n") == 3


# ------------------------------------------------------------------ numbers and options that need another
@pytest.mark.parametrize("argv,flag", [
    (["split", "{data}", "{out}", "--ratios", "0.8,nan,0.2"], "--ratios"),
    (["split", "{data}", "{out}", "--ratios", "nan"], "--ratios"),
    (["convert", "{data}", "{out}", "--split", "inf,0"], "--split"),
    (["convert", "{data}", "{out}", "--tile", "0"], "--tile"),
    (["convert", "{data}", "{out}", "--tile", "64", "--tile-negatives", "nan"], "--tile-negatives"),
    (["convert", "{data}", "{out}", "--tile", "64", "--tile-negatives", "inf"], "--tile-negatives"),
    (["convert", "{data}", "{out}", "--tile", "64", "--tile-overlap", "-0.1"], "--tile-overlap"),
    (["convert", "{data}", "{out}", "--tile-overlap", "0.3"], "--tile"),
    (["convert", "{data}", "{out}", "--min-size", "nan"], "--min-size"),
    (["rank", "--weights", "{run}", "--source", "{data}", "--top", "-1"], "--top"),
    (["rank", "--weights", "{run}", "--source", "{data}", "--top", "0"], "--top"),
    (["rank", "--weights", "{run}", "--source", "{data}", "--sheet", "-5"], "--sheet"),
    (["predict", "--weights", "{run}", "--source", "{data}", "--slice-overlap", "0.3"], "--slice"),
    (["predict", "--weights", "{run}", "--source", "{data}", "--slice", "64", "--slice-overlap", "nan"], "--slice-overlap"),
    (["predict", "--weights", "{run}", "--source", "{data}", "--conf", "nan"], "--conf"),
    (["eval", "--weights", "{run}", "--slice-full"], "--slice"),
    (["eval", "--weights", "{run}", "--max-dets", "0"], "--max-dets"),
    (["video", "--weights", "{run}", "--source", "{data}", "--timeout", "-1"], "--timeout"),
    (["train", "--data", "{data}", "--teacher", "{run}"], "--teacher"),
    (["train", "--data", "{data}", "--epochs", "0"], "--epochs"),
    (["train", "--data", "{data}", "--lr", "nan"], "--lr"),
    (["train", "--data", "{data}", "--tile", "0"], "--tile"),
    (["train", "--data", "{data}", "--tile-negatives", "0.5"], "--tile"),
    (["benchmark", "--data", "{data}", "--seeds", "0"], "--seeds"),
])
def test_every_number_is_checked_where_it_is_parsed_and_named_by_its_flag(trained, tmp_path: Path, capsys,
                                                                          argv: list[str], flag: str):
    run, data = trained
    values = {"data": data, "out": tmp_path / "out", "run": run}
    argv = [a.format(**values) for a in argv]
    try:
        code, err = run_cli(capsys, *argv)
    except SystemExit as e:  # argparse: exit 2 with "argument --flag: ..."
        code, err = e.code, capsys.readouterr().err
    assert code in (1, 2) and flag in err and "unexpected" not in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ silently wrong results
def _coco(folder: Path, names: list[str], n: int = 2, seed: int = 0) -> Path:
    images, anns = [], []
    for i in range(n):
        make_image(folder / f"{folder.name}{i}.jpg", 64, 64, seed=seed + i)
        images.append({"id": i + 1, "file_name": f"{folder.name}{i}.jpg", "width": 64, "height": 64})
        anns += [{"id": len(anns) + 1, "image_id": i + 1, "category_id": k + 1, "bbox": [4 + 10 * k, 4, 8, 8],
                  "iscrowd": 0} for k in range(len(names))]
    doc = {"images": images, "annotations": anns, "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)]}
    (folder / "instances.json").write_text(json.dumps(doc))
    return folder


def test_merge_joins_names_that_differ_in_spaces_or_unicode_form_and_says_case_twins(tmp_path: Path, capsys):
    from detft.operations.convert import convert

    a = _coco(tmp_path / "a", ["Circle", "square", "caf\u00e9"])
    b = _coco(tmp_path / "b", ["circle", "square ", "cafe\u0301"], seed=5)
    result = convert([a, b], tmp_path / "out")
    names = sorted(c.name for c in result.dataset.categories)
    assert names == ["Circle", "caf\u00e9", "circle", "square"]
    notes = "\n".join(result.report.notes)
    assert "'square ' of" in notes and "joined to 'square'" in notes and "Unicode form" in notes
    assert "'Circle' and 'circle' differ only in case" in notes
    by_name = {c.id: c.name for c in result.dataset.categories}
    assert sum(by_name[x.category_id] == "square" for im in result.dataset.images for x in im.annotations) == 4
    # --map names a class exactly as written, quoted when it has spaces; case twins join by a map
    code, _ = run_cli(capsys, "merge", a, b, tmp_path / "joined", "--map", "'circle'='Circle'")
    assert code == 0
    cats = json.loads((tmp_path / "joined" / "annotations" / "instances_train.json").read_text())["categories"]
    assert sorted(c["name"] for c in cats) == ["Circle", "caf\u00e9", "square"]
    code, _ = run_cli(capsys, "convert", b, tmp_path / "mapped", "--map", "'square '=box")
    cats = json.loads((tmp_path / "mapped" / "annotations" / "instances_train.json").read_text())["categories"]
    assert code == 0 and "box" in {c["name"] for c in cats}


@pytest.mark.parametrize("stratify", [True, False])
def test_a_split_the_ratios_ask_for_is_never_left_empty_when_the_images_allow(tmp_path: Path, stratify: bool):
    from detft.operations.convert import convert

    data = _coco(tmp_path / "two", ["a"], n=2)
    result = convert(data, tmp_path / "out", split=(0.5, 0.5), stratify=stratify)
    assert sorted(im.split for im in result.dataset.images) == ["train", "val"]
    three = _coco(tmp_path / "three", ["a"], n=3)
    result = convert(three, tmp_path / "out3", split=(0.8, 0.1, 0.1), stratify=stratify)
    assert sorted(im.split for im in result.dataset.images) == ["test", "train", "val"]
    assert any("would be empty" in n for n in result.report.notes)
    one = _coco(tmp_path / "one", ["a"], n=1)
    result = convert(one, tmp_path / "out1", split=(0.5, 0.5), stratify=stratify)
    assert any("is empty" in n and "cannot fill" in n for n in result.report.notes)


# ------------------------------------------------------------------ rank, previews, pseudo-labels
def test_rank_is_whole_or_absent_and_handles_odd_names_and_panoramas(trained, tmp_path: Path, capsys,
                                                                      monkeypatch):
    run, _ = trained
    images = unlabelled(tmp_path / "pool", 2)
    make_image(images / "strip.png", 20000, 20, seed=3)
    odd = os.fsencode(images) + b"/caf\xe9.jpg"
    with open(odd, "wb") as f:
        f.write((images / "u0.jpg").read_bytes())
    out = tmp_path / "rank"
    code, err = run_cli(capsys, "rank", "--weights", run, "--source", images, "--out", out, "--sheet", "0")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "rank.csv", "rank.json"])
    rows = json.loads((out / "rank.json").read_text())
    assert "caf\\xe9.jpg" in {r["file"] for r in rows} and len(rows) == 4
    code, err = run_cli(capsys, "rank", "--weights", run, "--source", images, "--out", out, "--overwrite")
    assert code == 0 and (out / "contact_sheet.png").is_file(), err
    (tmp_path / "file").write_text("x")
    code, err = run_cli(capsys, "rank", "--weights", run, "--source", images, "--out", tmp_path / "file")
    assert code == 1 and "is a file" in err and (tmp_path / "file").read_text() == "x"

    def broken_sheet(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("detft.labelling.ranking.contact_sheet", broken_sheet)
    assert main(["rank", "--weights", str(run), "--source", str(images), "--out", str(tmp_path / "r2")]) != 0
    assert not (tmp_path / "r2").exists()  # rank.csv and rank.json are not left without their sheet


def test_inspect_draws_a_panorama_in_its_preview(tmp_path: Path, capsys):
    data = tmp_path / "pano"
    make_image(data / "p.jpg", 20000, 20)
    doc = {"images": [{"id": 1, "file_name": "p.jpg", "width": 20000, "height": 20}],
           "categories": [{"id": 1, "name": "a"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [100, 2, 40, 12], "iscrowd": 0}]}
    (data / "instances.json").write_text(json.dumps(doc))
    code, err = run_cli(capsys, "inspect", data, "--grid", tmp_path / "grid.png")
    assert code == 0 and (tmp_path / "grid.png").stat().st_size > 0, err


def test_a_teacher_of_other_classes_is_refused_before_it_predicts(trained, tmp_path: Path, capsys, monkeypatch):
    run, _ = trained
    other = _coco(tmp_path / "other", ["cat", "dog"], n=4)
    pool = unlabelled(tmp_path / "pool")
    import detft.labelling.prelabels

    def never(*a, **k):
        raise AssertionError("the teacher predicted before its classes were checked")

    monkeypatch.setattr(detft.labelling.prelabels, "predictions_dataset", never)
    code, err = run_cli(capsys, "train", "--data", other, "--pseudo", pool, "--teacher", run, "--model",
                        "tiny_fasterrcnn", "--weights", "none", "--epochs", "1", "--project", tmp_path / "runs",
                        "--device", "cpu")
    assert code == 1 and "its classes" in err and "are not classes of" in err, err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ messages that name the real cause
def test_random_bytes_named_jpg_are_not_an_image_format_not_a_missing_module(tmp_path: Path):
    from detft.annotations.images import probe
    from detft.models.yolo import prepare_offline

    prepare_offline()
    import ultralytics  # noqa: F401  (its import wraps Image.open: an unknown file then asks for pi_heif)

    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    error = probe(tmp_path / "noise.jpg").error
    assert error is not None and "not a known image format" in error and "pi_heif" not in error


# ------------------------------------------------------------------ a model trained elsewhere
def test_eval_scores_a_checkpoint_plain_ultralytics_wrote(tmp_path: Path, capsys):
    """``yolo train``'s best.pt pickles ultralytics' model classes: read by the inert reader for its classes and
    size, loaded by ultralytics' restricted loader, scored by detft's evaluator; --data is required."""
    from detft.models.yolo import prepare_offline

    data = _coco(tmp_path / "data", ["circle", "square"], n=2)
    prepare_offline()
    from ultralytics import YOLO

    yolo = YOLO("yolo11n.yaml")
    yolo.model.names = {0: "circle", 1: "square"}
    yolo.save(str(tmp_path / "best.pt"))
    code, err = run_cli(capsys, "eval", "--weights", tmp_path / "best.pt", "--data", data, "--split", "train",
                        "--out", tmp_path / "eval")
    assert code == 0, err
    doc = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert doc["metrics"]["bbox"]["stats"]["AP"] >= 0
    code, err = run_cli(capsys, "eval", "--weights", tmp_path / "best.pt", "--out", tmp_path / "eval2")
    assert code == 1 and "trained outside detft" in err and "--data" in err, err


# ------------------------------------------------------------------ the slice merge at evaluation confidence
def test_the_slice_merge_takes_a_thousand_windows_and_a_hundred_thousand_detections():
    """The merge compares each object only with the detections around it (a grid index): the same objects as
    comparing with all of them (checked on a smaller case), and 100,000 detections in seconds where the quadratic
    merge took minutes (bench/slice_merge.py times it)."""
    from detft.inference.sliced import cut_by_window, greedy_merge

    for seed in range(3):
        boxes, scores, labels, wins = slice_detections(700, 500, 128, 12, seed)
        cut = cut_by_window(boxes, wins, 700, 500)
        fast = greedy_merge(boxes, scores, labels, 0.5, cut, wins)
        assert [g.members for g in fast] == pairwise_merge(boxes, scores, labels, cut, wins)
    boxes, scores, labels, wins = slice_detections(8000, 5000, 256, 100)
    assert len(np.unique(wins, axis=0)) == 975 and len(boxes) == 97_500
    groups = greedy_merge(boxes, scores, labels, 0.5, cut_by_window(boxes, wins, 8000, 5000), wins)
    assert sorted(j for g in groups for j in g.members) == list(range(len(boxes)))  # every detection in one object
