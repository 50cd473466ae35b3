"""Finding label errors (#45 item 2): `detft audit` scores each labelled image with a model that never trained on it
(k-fold), types each likely error (missing, spurious, wrong class, loose, duplicate) with a score, and writes the
ranked list, a contact sheet and the data with the surest fixes applied, all or nothing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import config, make_data
from hypothesis import given, settings
from hypothesis import strategies as st

import detft
from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.report import Report
from detft.errors import DetftError
from detft.inference.detections import Detections
from detft.labelling.audit import apply_fixes, audit
from detft.labelling.label_issues import find_issues, quality
from detft.operations.convert import load
from detft.operations.split import kfolds


def dets(*rows) -> Detections:
    """Predictions as (x0, y0, x1, y1, score, class) rows."""
    a = np.array(rows, np.float64).reshape(-1, 6)
    return Detections(a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int64))


A, B = (10.0, 10.0, 50.0, 50.0), (60.0, 60.0, 90.0, 90.0)  # two objects; the model finds both confidently


def test_each_error_type_is_found_typed_and_ranked_with_its_fix():
    images = [
        ("clean.png", [Annotation(1, A), Annotation(2, B)], dets([*A, .95, 1], [*B, .9, 2])),
        ("missing.png", [Annotation(1, A)], dets([*A, .95, 1], [*B, .9, 2])),
        ("swapped.png", [Annotation(1, A), Annotation(2, B)], dets([*A, .93, 2], [*A, .03, 1], [*B, .9, 2])),
        ("shifted.png", [Annotation(1, (22, 10, 62, 50)), Annotation(2, B)], dets([*A, .9, 1], [*B, .9, 2])),
        ("spurious.png", [Annotation(1, A), Annotation(2, B)], dets([*A, .9, 1], [60, 5, 70, 15, .01, 1])),
        ("twice.png", [Annotation(1, A), Annotation(1, (11, 10, 50, 50))], dets([*A, .9, 1])),
    ]
    issues, qualities = find_issues(images, min_score=0.1, calibrated=False)  # each rule on the scores as given
    found = [(c.type, c.file, c.annotation, c.fix["action"]) for c in issues]
    assert found == [("duplicate", "twice.png", 1, "delete"), ("wrong_class", "swapped.png", 0, "relabel"),
                     ("missing", "missing.png", None, "add"), ("spurious", "spurious.png", 1, "delete"),
                     ("loose", "shifted.png", 0, "move")]
    by_type = {c.type: c for c in issues}
    assert by_type["wrong_class"].fix["category_id"] == 2 and by_type["wrong_class"].score == pytest.approx(.93 * .97)
    assert by_type["missing"].fix == {"action": "add", "category_id": 2, "box": B}
    assert by_type["missing"].score == pytest.approx(0.9)  # nothing overlaps it: its own confidence
    assert by_type["loose"].fix["box"] == A and by_type["loose"].score == pytest.approx(0.9 * (1 - 28 / 52))
    assert by_type["duplicate"].fix["duplicate_of"] == 0
    assert all(0 <= c.score <= 1 for c in issues)
    assert qualities[0] == max(qualities) > 0.9 and all(0 <= q <= 1 for q in qualities)


def test_a_prediction_a_loose_label_claims_is_not_also_a_missing_box_and_crowds_are_never_doubted():
    shifted = [("a.png", [Annotation(1, (22, 10, 62, 50))], dets([*A, .9, 1]))]
    assert [c.type for c in find_issues(shifted, calibrated=False)[0]] == ["loose"]
    crowd = [("b.png", [Annotation(1, A), Annotation(1, (0, 60, 100, 100), iscrowd=True)],
              dets([*A, .9, 1], [30, 70, 50, 90, .9, 1]))]
    assert [c.type for c in find_issues(crowd, 0.2, calibrated=False)[0]] == []  # inside the crowd region: not a missing box


def test_two_overlapping_objects_of_different_classes_do_not_explain_each_other_away():
    """A rider on a bicycle: each label matched by its own class; the other's prediction is not swap evidence."""
    rider, bike = (10, 5, 50, 60), (12, 10, 52, 62)
    issues, _ = find_issues([("r.png", [Annotation(1, rider), Annotation(2, bike)],
                              dets([*rider, .9, 1], [*bike, .9, 2]))], calibrated=False)
    assert all(c.scores["wrong_class"] == 0 for c in issues)


def test_spurious_weighs_the_models_silence_by_how_reliably_it_finds_the_rest():
    lone = (70, 5, 80, 15)
    sure = [("s.png", [Annotation(1, A), Annotation(1, lone)], dets([*A, .95, 1]))]
    unsure = [("u.png", [Annotation(1, A), Annotation(1, lone)], dets([*A, .3, 1]))]
    score = lambda images: next(c.score for c in find_issues(images, calibrated=False)[0]  # noqa: E731
                                if c.annotation == 1)
    assert score(sure) > 0.9 > 0.5 > score(unsure)


def test_a_model_whose_confident_predictions_are_rarely_objects_claims_little():
    """Calibration: the same missing box scores high from a model whose predictions at that score are objects, low
    from one whose predictions at that score mostly match nothing."""
    found = (60, 60, 90, 90, .8, 1)
    reliable = [(f"r{k}.png", [Annotation(1, A)], dets([*A, .8, 1])) for k in range(9)]
    noisy = [(f"n{k}.png", [Annotation(1, A)], dets([*A, .8, 1], *([0, 60 + 10 * j, 20, 70 + 10 * j, .8, 1]
                                                               for j in range(3)))) for k in range(9)]
    last = ("x.png", [Annotation(1, A)], dets([*A, .8, 1], found))

    def missing(images):
        return max(c.score for c in find_issues(images + [last])[0] if c.type == "missing" and c.file == "x.png")

    assert missing(reliable) > 0.8 > 0.5 > missing(noisy)  # sqrt(.8 x 10/11) and sqrt(.8 x 10/38)
    from detft.labelling.label_issues import isotonic

    fitted = isotonic(np.array([.1, .2, .2, .3, .9]), np.array([1, 0, 0, 1, 1]))  # the 1 at .1 pooled with two 0s
    assert fitted.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1, 1])


def injected(n: int = 200, seed: int = 0):
    """A simulated audit: objects of 3 classes, a detector that finds 90% of them (box jitter 4% of the size, scores
    0.5-0.99; weaker guesses of other classes; background false positives), and in 40% of the images one error as
    the ObjectLab benchmark injects them: a box dropped, a class swapped, a box shifted by 30-50% of its size, a
    spurious box. Returns find_issues' input and, per image, each label's truth and the dropped box."""
    rng = np.random.default_rng(seed)
    images, truth = [], []
    for k in range(n):
        objects = [(int(rng.integers(1, 4)), np.r_[xy, xy + rng.uniform(20, 80, 2)])
                   for xy in rng.uniform(0, 300, (rng.integers(2, 7), 2))]
        rows = []
        for c, b in objects:
            box = b + rng.normal(0, 0.04, 4) * np.tile(b[2:] - b[:2], 2)
            rows.append([*box, rng.uniform(0.5, 0.99) if rng.random() > 0.1 else rng.uniform(0.02, 0.3), c])
            if rng.random() < 0.3:
                rows.append([*box, rng.uniform(0.01, 0.2), int(rng.integers(1, 4))])
        for xy in rng.uniform(0, 300, (rng.integers(0, 4), 2)):
            rows.append([*xy, *(xy + rng.uniform(10, 60, 2)), rng.uniform(0.01, 0.5) ** 2 * 2, int(rng.integers(1, 4))])
        labels, kinds, dropped = [Annotation(c, tuple(b)) for c, b in objects], ["ok"] * len(objects), None
        error, first = rng.integers(0, 10), labels[0]
        w, h = first.width, first.height
        if error == 0:
            dropped = labels.pop(0).bbox
            kinds.pop(0)
        elif error == 1:
            labels[0], kinds[0] = Annotation(1 + first.category_id % 3, first.bbox), "wrong_class"
        elif error == 2:
            dx, dy = rng.uniform(0.3, 0.5, 2) * (w, h) * rng.choice([-1, 1], 2) * (1, rng.integers(0, 2))
            labels[0], kinds[0] = Annotation(first.category_id, tuple(np.add(first.bbox, (dx, dy, dx, dy)))), "loose"
        elif error == 3:
            xy = rng.uniform(0, 300, 2)
            labels.append(Annotation(int(rng.integers(1, 4)), (*xy, *(xy + rng.uniform(20, 80, 2)))))
            kinds.append("spurious")
        images.append((f"{k}.png", labels, dets(*rows)))
        truth.append((kinds, dropped))
    return images, truth


def auroc(positive: list[float], negative: list[float]) -> float:
    p, n = np.array(positive)[:, None], np.array(negative)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def test_injected_errors_rank_first_each_by_its_own_type():
    """The benchmark's errors, simulated: each label type's score separates the injected labels from the rest,
    and the top of the list is injected errors, typed right."""
    images, truth = injected()
    issues, qualities = find_issues(images)
    listed = {(c.image, c.annotation): c for c in issues if c.annotation is not None}
    for kind in ("wrong_class", "loose", "spurious"):
        scores = {True: [], False: []}
        for k, (kinds, _) in enumerate(truth):
            for i, truly in enumerate(kinds):
                c = listed.get((k, i))
                scores[truly == kind].append(c.scores[kind] if c else 0.0)
        assert auroc(scores[True], scores[False]) > 0.9, kind
    right = [(c.type == "missing" and truth[c.image][1] is not None)
             or (c.annotation is not None and truth[c.image][0][c.annotation] == c.type) for c in issues[:30]]
    assert sum(right) >= 27
    bad = [any(t != "ok" for t in kinds) or d is not None for kinds, d in truth]
    assert auroc([-q for q, b in zip(qualities, bad) if b], [-q for q, b in zip(qualities, bad) if not b]) > 0.8


def test_image_quality_is_a_softmin_one_bad_label_sinks_an_image_however_many_good_ones_it_has():
    assert quality([]) == 1.0
    assert quality([0.9]) == pytest.approx(0.1)
    assert quality([0.9] + [0.01] * 50) < 0.2 < quality([0.3])


boxes = st.tuples(st.integers(0, 80), st.integers(0, 80), st.integers(4, 40), st.integers(4, 40)).map(
    lambda t: (float(t[0]), float(t[1]), float(t[0] + t[2]), float(t[1] + t[3])))


@settings(max_examples=150, deadline=None)
@given(labels=st.lists(st.tuples(boxes, st.integers(1, 2)), max_size=6),
       preds=st.lists(st.tuples(boxes, st.integers(1, 2), st.integers(1, 99)), max_size=6),
       seed=st.integers(0, 1000))
def test_scores_do_not_depend_on_the_order_of_annotations_or_predictions(labels, preds, seed):
    """Only the boxes, classes and scores matter, never the order a file or a model lists them in."""
    rng = np.random.default_rng(seed)
    anns = [Annotation(c, b) for b, c in labels]
    rows = [[*b, s / 100, c] for b, c, s in preds]
    perm, pperm = rng.permutation(len(anns)), rng.permutation(len(rows))

    def canon(images):
        issues, q = find_issues(images)
        named = [(c.type, c.score, c.box, None if c.annotation is None else images[0][1][c.annotation].bbox)
                 for c in issues]
        return sorted(named, key=repr), q

    before = canon([("x.png", anns, dets(*rows))])
    after = canon([("x.png", [anns[k] for k in perm], dets(*[rows[k] for k in pperm]))])
    assert before[0] == after[0] and before[1] == pytest.approx(after[1])


def records(n: int) -> list[ImageRecord]:
    return [ImageRecord(f"im{k:02d}.png", 8, 8) for k in range(n)]


def test_kfolds_are_disjoint_cover_every_image_are_balanced_and_reproducible():
    images = records(11)
    fold = kfolds(images, 3, seed=4, group=False)
    assert sorted(set(fold)) == [0, 1, 2] and sorted(np.bincount(fold).tolist()) == [3, 4, 4]
    assert kfolds(images[::-1], 3, seed=4, group=False)[::-1] == fold  # the order read does not matter
    assert kfolds(images, 3, seed=5, group=False) != fold
    with pytest.raises(DetftError, match="--folds 12: only 11 image"):
        kfolds(images, 12, group=False)
    with pytest.raises(DetftError, match="at least 2"):
        kfolds(images, 1, group=False)


def test_kfolds_keep_near_identical_images_in_one_fold(tmp_path: Path):
    from helpers import make_image

    images = []
    for k in range(4):
        for copy in ("a", "b"):  # each picture twice: the second a copy of the first
            path = make_image(tmp_path / f"{k}{copy}.png", 32, 24, seed=k)
            images.append(ImageRecord(path.name, 32, 24, path=path))
    fold = kfolds(images, 2, seed=0)
    assert all(fold[2 * k] == fold[2 * k + 1] for k in range(4)) and sorted(np.bincount(fold)) == [4, 4]


def test_fixes_apply_to_a_copy_and_list_every_change():
    ds = Dataset([ImageRecord("a.png", 100, 100, annotations=[Annotation(1, (22, 10, 62, 50), polygons=[
        [22, 10, 62, 10, 62, 50]]), Annotation(2, B)])], [Category(1, "cat"), Category(2, "dog")])
    issues, _ = find_issues([("a.png", ds.images[0].annotations, dets([*A, .9, 1], [*B, .9, 1], [5, 70, 20, 95, .8, 2]))],
                            calibrated=False)
    fixed, changes = apply_fixes(ds, issues, 0.3, {1: "cat", 2: "dog"})
    assert sorted(c["action"] for c in changes) == ["add", "move", "relabel"]
    moved, relabelled, added = fixed.images[0].annotations
    assert moved.bbox == A and moved.polygons == [[10, 10, 50, 10, 50, 50]]
    assert relabelled.category_id == 1 and added.category_id == 2 and added.attributes["score"] == pytest.approx(.8)
    assert ds.images[0].annotations[0].bbox == (22, 10, 62, 50) and len(ds.images[0].annotations) == 2  # untouched


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[detft.Run, Path, Path]:
    root = tmp_path_factory.mktemp("audit")
    data = make_data(root / "data", n=6, val_is_train=False)  # 6 train + 4 val images, all different
    run = detft.train(config(data, root, epochs=1, name="base", device="cpu"))
    out = root / "out"
    detft.load(run, device="cpu").audit(None, out, folds=3, fold_epochs=1, save_labels="yolo", min_score=0.0,
                                         fix_score=0.0)
    return run, data, out


def test_every_image_is_scored_by_a_model_that_never_trained_on_it(trained):
    run, data, out = trained
    doc = json.loads((out / "audit.json").read_text())
    assert doc["out_of_sample"] and doc["cost"]["folds"] == 3 and doc["cost"]["training_seconds"] > 0
    held = [set(f["held_out"]) for f in doc["folds"]]
    names = {im.file_name for im in load(data, None, Report()).images}
    assert set().union(*held) == names and sum(map(len, held)) == len(names) == 10  # disjoint, covering
    for f in doc["folds"]:
        assert not set(f["held_out"]) & set(f["trained_on"]) and set(f["held_out"]) | set(f["trained_on"]) == names
        assert f["train_seconds"] > 0 and f["predict_seconds"] > 0
    with open(out / "images.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10
    for row in rows:  # the fold that scored an image held it out
        assert row["file"] in doc["folds"][int(row["fold"]) - 1]["held_out"]
    issues = json.loads((out / "issues.json").read_text())
    assert all(i["file"] in doc["folds"][i["fold"] - 1]["held_out"] for i in issues)
    # the held-out predictions are kept, each image's from the fold that held it out, to score again without training
    kept = json.loads((out / "predictions.json").read_text())
    assert kept["prediction_floor"] == 0.01 and kept["box"] == "xyxy" and len(kept["images"]) == 10
    assert {r["file"] for r in kept["images"]} == names
    for r in kept["images"]:
        assert r["file"] in doc["folds"][r["fold"] - 1]["held_out"]
        assert all(p["score"] >= 0.01 and len(p["box"]) == 4 and p["class"] for p in r["predictions"])
    assert sum(len(r["predictions"]) for r in kept["images"]) > 0
    assert [i["rank"] for i in issues] == list(range(1, len(issues) + 1))
    assert [i["score"] for i in issues] == sorted((i["score"] for i in issues), reverse=True)


def test_outputs_are_written_whole_and_the_fixes_read_back(trained):
    run, data, out = trained
    assert {p.name for p in out.iterdir()} >= {"issues.csv", "issues.json", "images.csv", "audit.json",
                                              "predictions.json", "changes.json", "contact_sheet.jpg", "fixes"}
    assert not (out / ".folds").exists() and not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]
    original = load(data, None, Report())
    fixed = load(out / "fixes", "yolo", Report())
    changes = json.loads((out / "changes.json").read_text())
    doc = json.loads((out / "audit.json").read_text())
    assert doc["fixes"]["applied"] == len(changes) and doc["settings"]["save_labels"] == "yolo"
    added = sum(c["action"] == "add" for c in changes)
    deleted = sum(c["action"] == "delete" for c in changes)
    assert fixed.num_annotations == original.num_annotations + added - deleted
    assert len(fixed.images) == len(original.images)
    from PIL import Image

    with Image.open(out / "contact_sheet.jpg") as sheet:
        assert sheet.format == "JPEG"


def test_no_folds_scores_in_sample_and_says_it_is_optimistic(trained, tmp_path: Path, capsys):
    from detft.cli import main

    run, data, _ = trained
    out = tmp_path / "quick"
    assert main(["audit", "--weights", str(run.folder), "--no-folds", "--out", str(out), "--device", "cpu",
                 "--sheet", "0"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "audit.json").read_text())
    assert not doc["out_of_sample"] and "in-sample" in doc["note"] and doc["folds"] == []
    assert "in-sample" in printed and not (out / "contact_sheet.jpg").exists()
    assert doc["settings"]["save_labels"] == "coco"  # the data's own format
    assert main(["audit", "--weights", str(run.folder), "--no-folds", "--folds", "2", "--out", str(out)]) != 0
    assert "choose one" in capsys.readouterr().err
    assert main(["audit", "--weights", str(run.folder), "--no-folds", "--fold-epochs", "1", "--out",
                 str(tmp_path / "x")]) != 0
    assert "--no-folds trains none" in capsys.readouterr().err


def test_bad_input_is_named_before_anything_trains(trained, tmp_path: Path):
    run, data, _ = trained
    model = detft.load(run, device="cpu")
    ds = load(data, None, Report())
    with pytest.raises(DetftError, match="--save-labels pascal: writable formats are"):
        model.audit(ds, tmp_path / "a", save_labels="pascal")
    with pytest.raises(DetftError, match="--folds 11: only 10 image"):
        model.audit(ds, tmp_path / "a", folds=11)
    empty = Dataset([ImageRecord(im.file_name, im.width, im.height, path=im.path) for im in ds.images],
                    ds.categories, root=ds.root)
    with pytest.raises(DetftError, match="no labelled images"):
        model.audit(empty, tmp_path / "a", folds=None)
    with pytest.raises(DetftError, match="would replace input data"):
        model.audit(ds, run.folder, folds=None)
    assert not (tmp_path / "a").exists()


def test_a_fold_that_fails_leaves_no_output_and_no_temp_folder(trained, tmp_path: Path):
    run, data, _ = trained
    ds = load(data, None, Report())

    def broken(cfg):
        raise DetftError("the fold failed")

    with pytest.raises(DetftError, match="the fold failed"):
        audit(ds, tmp_path / "out", weights=run.weights, inputs=[data], folds=2, cfg=run.info.config,
              fold_model=broken, group=False)
    assert list(tmp_path.iterdir()) == []


def test_a_copied_image_lands_in_one_fold_with_its_original(tmp_path: Path):
    data = make_data(tmp_path / "data", n=4, val_is_train=True)  # val holds copies of the train images
    ds = load(data, None, Report())
    fold = kfolds(ds.images, 2, seed=0)
    by_name: dict[str, set[int]] = {}
    for im, f in zip(ds.images, fold):
        by_name.setdefault(Path(im.file_name).name, set()).add(f)
    assert all(len(f) == 1 for f in by_name.values())
    shutil.rmtree(data)


def test_the_cost_is_said_before_the_folds_train():
    from detft.config import TrainConfig
    from detft.labelling.audit import cost_estimate

    run = TrainConfig(epochs=10)
    assert cost_estimate(run, 3, None, None, 100.0) == "10 epochs each, about 3m20s in all (the run trained 10 in 1m40s)"
    assert cost_estimate(run, 3, 5, None, 100.0).startswith("5 epochs each, about 1m40s in all")
    assert cost_estimate(run, 3, None, None, None) == "10 epochs each"
    assert cost_estimate(TrainConfig(time_budget=2.0), 3, None, None, 50.0) == "2 min each, about 6m00s in all"
    assert cost_estimate(TrainConfig(time_budget=2.0), 3, 4, None, None) == "4 epochs each"
    assert cost_estimate(run, 4, None, 1.5, None) == "1.5 min each, about 6m00s in all"


class Blind:
    """A fold 'model' that sees nothing: the k-fold pipeline without training."""

    def __init__(self):
        from detft.models.labels import LabelMap

        self.labels, self.masks = LabelMap((1, 2), ("a", "rare"), background=False), False

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.conf = conf

    def predict(self, images):
        return [Detections.empty() for _ in images]


def test_each_fold_trains_inside_the_output_on_the_other_folds_and_names_classes_it_never_saw(tmp_path: Path, capsys):
    from helpers import make_image

    from detft.config import TrainConfig

    images = []
    for k in range(6):
        path = make_image(tmp_path / "data" / f"{k}.png", 40, 30, seed=k)
        anns = [Annotation(1, (2, 2, 20, 20))] + ([Annotation(2, (22, 5, 38, 25))] if k == 0 else [])
        images.append(ImageRecord(path.name, 40, 30, path=path, annotations=anns))
    ds = Dataset(images, [Category(1, "a"), Category(2, "rare")], root=tmp_path / "data")
    seen: list[TrainConfig] = []

    def fold_model(cfg: TrainConfig) -> Blind:
        seen.append(cfg)
        trained = load(Path(cfg.data), "coco", Report())
        assert sorted(trained.splits()) == ["train", "val"] and len(trained.images_in("train")) == 4
        return Blind()

    result = audit(ds, tmp_path / "out", weights=tmp_path / "w.pt", inputs=[tmp_path / "data"], folds=3,
                   cfg=TrainConfig(epochs=30, patience=5, pseudo_labels="x"), fold_model=fold_model, group=False,
                   fold_epochs=2)
    assert [c.epochs for c in seen] == [2, 2, 2] and all(c.patience is None and c.pseudo_labels is None for c in seen)
    assert all(Path(c.project).parent.parent.name.startswith(".out.tmp-") for c in seen)  # the output being built
    folds = result.doc["folds"]
    rare = next(f for f in folds if "0.png" in f["held_out"])
    assert rare["unseen_classes"] == ["rare"] and all(f["unseen_classes"] == [] for f in folds if f is not rare)
    assert "never learns them" in capsys.readouterr().out
    assert {p.name for p in (tmp_path).iterdir()} == {"data", "out"}
