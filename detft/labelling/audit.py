"""Finding label errors (``detft audit``): out-of-sample predictions on every labelled image, turned into a ranked
list of likely errors (:mod:`detft.labelling.label_issues`), a contact sheet of the first ones and a copy of the
dataset with the surest fixes applied, to correct in an annotation tool.

Out-of-sample by k-fold: the images are cut into ``k`` folds (near-identical images kept in one,
:func:`detft.operations.split.kfolds`) and one model per fold is trained, with the run's own settings, on the other
folds and predicts the fold it never saw. A model scoring images it trained on has learnt their labels, errors
included, and vouches for them: ``--no-folds`` does just that with the run's own model (fast, and optimistic: it
finds fewer errors, said in audit.json). The held-out fold is each fold run's validation split: its labels score
the fold model, never train it, and predictions come from its last checkpoint, so no choice of epoch saw them.
The cost is k trainings: said before they start, measured and recorded after."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..annotations.dataset import Annotation, Dataset, ImageRecord
from ..annotations.report import Report, printable
from ..config import TrainConfig
from ..errors import DetftError
from ..formats import WRITERS, write_dataset
from ..formats.shapes import SCORE
from ..inference.detections import Detections
from ..inference.predictor import Predictor, predict_records
from ..operations.split import kfolds
from ..util.bounds import COUNT, FRACTION, NONNEGATIVE_INT
from ..util.output import atomic_directory, atomic_write_text, check_output, check_replaceable
from ..util.progress import duration
from .label_issues import LABEL_TYPES, TYPES, Issue, find_issues
from .prelabels import REPORT_NAME

PREDICTION_FLOOR = 0.01  # predictions kept down to here: a label's weak support is evidence too
MAX_DETS = 300
MIN_SCORE = 0.2  # candidates listed from here up (0 lists every one, for ranking each label by type)
FIX_SCORE = 0.5  # candidates applied to fixes/ from here up
SHEET = 25
SCRATCH = ".folds"  # inside the output being built: the fold datasets and runs, removed before it is published

FoldModel = Callable[[TrainConfig], Predictor]  # trains one fold's config, returns its model (the API's train+load)


@dataclass
class Fold:
    """One fold: the images it scored, those its model trained on, and what that cost."""

    fold: int
    held_out: list[str]
    trained_on: list[str]
    train_seconds: float
    predict_seconds: float
    held_out_ap: float | None  # box AP of the fold model on its held-out images (its run's own evaluation)
    unseen_classes: list[str]  # classes labelled only in its held-out images: its model never learnt them


@dataclass
class Audit:
    """What :func:`audit` found: ``issues`` most likely error first, ``quality`` per image (dataset order),
    ``doc`` audit.json's content, ``out`` where it was written."""

    issues: list[Issue]
    quality: list[float]
    doc: dict[str, Any]
    out: Path | None
    names: dict[int, str]  # category id -> class name
    predictions: list[Detections]  # per image (dataset order), by the model that scored it, every class to the floor

    def summary(self) -> str:
        d = self.doc
        cost = d["cost"]
        lines = [f"audit of {d['images']} images, {d['annotations']} labels: "
                 + (f"{cost['folds']} folds, each image scored by a model that never trained on it; {cost['folds']} "
                    f"trainings took {duration(cost['training_seconds'])}, {duration(cost['seconds'])} in all"
                    if d["out_of_sample"] else
                    "scored by the run's own model, which trained on these labels (in-sample: optimistic, it vouches "
                    "for errors it learnt)"),
                 f"likely label errors (score >= {d['settings']['min_score']}): "
                 + ", ".join(f"{n} {t}" for t, n in d["counts"].items())]
        for k, c in enumerate(self.issues[:10], 1):
            where = f" object {c.annotation}" if c.annotation is not None else ""
            lines.append(f"  {k:>3}. {c.type:<11} {c.score:.3f}  {printable(c.file)}{where}: {describe(c.fix, self.names)}")
        if len(self.issues) > 10:
            lines.append(f"  ... {len(self.issues) - 10} more in issues.csv")
        return "\n".join(lines)


def describe(fix: dict[str, Any], names: dict[int, str]) -> str:
    """A fix in words: ``add circle at (x0, y0, x1, y1)``, ``relabel as dog``, ``move to (...)``, ``delete``."""
    box = "(" + ", ".join(f"{v:g}" for v in fix["box"]) + ")" if "box" in fix else ""
    return {"add": f"add {names.get(fix.get('category_id'), '?')} at {box}",
            "relabel": f"relabel as {names.get(fix.get('category_id'), '?')}", "move": f"move to {box}",
            "delete": "delete" + (f" (a copy of object {fix['duplicate_of']})" if "duplicate_of" in fix else "")
            }[fix["action"]]


def check_settings(ds: Dataset, folds: int | None, save_labels: str, min_score: float, fix_score: float,
                   sheet: int) -> None:
    """Every setting and the data, before a fold trains."""
    if folds is not None:
        COUNT.check("--folds", folds)
    FRACTION.check("--min-score", min_score)
    FRACTION.check("--fix-score", fix_score)
    NONNEGATIVE_INT.check("--sheet", sheet)
    if save_labels not in WRITERS:
        raise DetftError(f"--save-labels {save_labels}: writable formats are {', '.join(sorted(WRITERS))}")
    if not any(not a.iscrowd for im in ds.images for a in im.annotations):
        raise DetftError(f"{ds.root}: no labelled images (no object in any of its {len(ds.images)} images): an audit "
                         "checks labels against a model's predictions")


def fold_config(cfg: TrainConfig, data: Path, project: Path, fold_epochs: int | None,
                fold_budget: float | None) -> TrainConfig:
    """The run's own settings for one fold: its data the fold's COCO copy, no pseudo-labels (their teacher saw every
    image) and no early stop (it would be decided on the held-out labels); ``fold_epochs`` / ``fold_budget``
    (minutes) make each fold cheaper than the run."""
    changes: dict[str, Any] = {"data": str(data), "data_format": "coco", "images_dir": None, "pseudo": None,
                               "teacher": None, "pseudo_labels": None, "patience": None, "train_split": "train",
                               "val_split": "val", "project": str(project), "name": "run", "exist_ok": False}
    if fold_epochs is not None:
        changes.update(epochs=fold_epochs, time_budget=None)
    if fold_budget is not None:
        changes["time_budget"] = fold_budget
    return cfg.replace(**changes)


def predict(predictor: Predictor, images: list[ImageRecord], names: dict[int, str], ds: Dataset,
            desc: str) -> list[Detections]:
    """``predictor``'s detections on ``images`` down to :data:`PREDICTION_FLOOR`, boxes only, with the dataset's
    category ids (joined by class name; a class the data lacks is dropped)."""
    ids = {c.name: c.id for c in ds.categories}
    to_data = {c: ids[n] for c, n in names.items() if n in ids}
    predictor.set_thresholds(PREDICTION_FLOOR, MAX_DETS)
    out = []
    for d in predict_records(predictor, images, desc):
        keep = np.isin(d.labels, list(to_data))
        out.append(Detections(d.boxes[keep], d.scores[keep],
                              np.array([to_data[int(c)] for c in d.labels[keep]], np.int64)))
    return out


def cross_predict(ds: Dataset, k: int, cfg: TrainConfig, fold_model: FoldModel, scratch: Path, *, seed: int,
                  group: bool, fold_epochs: int | None, fold_budget: float | None
                  ) -> tuple[list[Detections], list[int], list[Fold]]:
    """Every image's detections by the model of the fold that held it out, each image's fold, and the folds."""
    from ..evaluation.report import EVAL_JSON, load_eval

    fold_of = kfolds(ds.images, k, seed, group)
    ds_names = {c.id: c.name for c in ds.categories}
    dets = [Detections.empty()] * len(ds.images)
    folds = []
    for f in range(k):
        held = [i for i, g in enumerate(fold_of) if g == f]
        part = Dataset([replace(im, split="val" if fold_of[i] == f else "train") for i, im in enumerate(ds.images)],
                       ds.categories, root=ds.root, format=ds.format)
        data = scratch / f"fold{f + 1}" / "data"
        write_dataset("coco", part, data, Report())
        print(f"\nfold {f + 1}/{k}: training on {len(ds.images) - len(held)} images, predicting the {len(held)} it "
              "holds out", flush=True)
        unseen = sorted({ds_names[a.category_id] for i in held for a in ds.images[i].annotations if not a.iscrowd}
                        - {ds_names[a.category_id] for im in part.images_in("train") for a in im.annotations
                           if not a.iscrowd})
        if unseen:
            print(f"warning: fold {f + 1}: every {', '.join(unseen)} object is in the images it holds out, so its model "
                  "never learns them and their labels there can only look spurious", flush=True)
        started = time.perf_counter()
        predictor = fold_model(fold_config(cfg, data, scratch / f"fold{f + 1}", fold_epochs, fold_budget))
        trained = time.perf_counter()
        for i, d in zip(held, predict(predictor, [ds.images[i] for i in held], _names(predictor), ds,
                                      f"fold {f + 1}: predicting")):
            dets[i] = d
        run_folder = scratch / f"fold{f + 1}" / "run"
        ap = load_eval(run_folder)["metrics"].get("bbox", {}).get("stats", {}).get("AP") \
            if (run_folder / EVAL_JSON).is_file() else None
        folds.append(Fold(f + 1, [ds.images[i].file_name for i in held],
                          [im.file_name for i, im in enumerate(ds.images) if fold_of[i] != f],
                          round(trained - started, 2), round(time.perf_counter() - trained, 2), ap, unseen))
    return dets, [g + 1 for g in fold_of], folds


def cost_estimate(cfg: TrainConfig, k: int, fold_epochs: int | None, fold_budget: float | None,
                  trained_seconds: float | None) -> str:
    """What the k trainings will take, in words: each fold trains on (k-1)/k of the images, for the run's epochs or
    time budget unless overridden; in seconds when the run's own training time is known."""
    budget = fold_budget if fold_budget is not None else None if fold_epochs is not None else cfg.time_budget
    if budget is not None:
        return f"{budget:g} min each, about {duration(k * budget * 60)} in all"
    epochs = fold_epochs or cfg.epochs
    each = f"{epochs} epoch{'s' * (epochs != 1)} each"
    if not trained_seconds:
        return each
    return f"{each}, about {duration(trained_seconds * (k - 1) * epochs / cfg.epochs)} in all (the run trained " \
           f"{cfg.epochs} in {duration(trained_seconds)})"


def _names(predictor: Predictor) -> dict[int, str]:
    return predictor.labels.names_by_category()


def check_classes(predictor: Predictor, ds: Dataset, weights: Path) -> None:
    """The run's own model must know every class the data labels: it cannot support a label of a class it lacks."""
    known = set(_names(predictor).values())
    used = {a.category_id for im in ds.images for a in im.annotations}
    lacking = sorted(c.name for c in ds.categories if c.id in used and c.name not in known)
    if lacking:
        raise DetftError(f"{weights} does not know the classes {', '.join(lacking)} of {ds.root}: audit the data it "
                         "was trained on, or use k-fold (the default), which trains on this data")


def audit(ds: Dataset, out: Path, *, weights: Path, inputs: list[Path], folds: int | None = 3,
          cfg: TrainConfig | None = None, fold_model: FoldModel | None = None, predictor: Predictor | None = None,
          seed: int = 0, group: bool = True, fold_epochs: int | None = None, fold_budget: float | None = None,
          save_labels: str = "coco", images: str = "symlink", min_score: float = MIN_SCORE,
          fix_score: float = FIX_SCORE, sheet: int = SHEET, overwrite: bool = False,
          trained_seconds: float | None = None) -> Audit:
    """Audit the labels of ``ds`` into ``out`` (written whole or not at all): k-fold with ``cfg`` trained by
    ``fold_model`` (``folds`` of them), or with ``folds=None`` in-sample by ``predictor``, the run's own model.
    ``inputs``: what ``out`` must stay out of (the data, the run); ``trained_seconds``: what the run's own training
    took, to say the cost before the folds start."""
    check_settings(ds, folds, save_labels, min_score, fix_score, sheet)
    if folds is None and (fold_epochs is not None or fold_budget is not None):
        raise DetftError("--fold-epochs and --fold-budget shape the fold trainings, and --no-folds trains none")
    check_output(out, inputs, "--out")
    check_replaceable(out, overwrite)
    if folds is None and predictor is not None:
        check_classes(predictor, ds, weights)
    elif cfg is None or fold_model is None:
        raise DetftError(f"{weights}: k-fold trains the run's model again, and this has no training settings (an "
                         "export, or trained outside detft): give the run folder, or use --no-folds")
    else:
        kfolds(ds.images, folds, seed, group=False)  # too few images: said now, before any hashing or training
        print(f"audit by {folds}-fold cross-validation: {folds} trainings with the run's settings, "
              f"{cost_estimate(cfg, folds, fold_epochs, fold_budget, trained_seconds)}; --fold-epochs or --fold-budget "
              "make them cheaper, --no-folds skips them (in-sample, optimistic)", flush=True)
    started = time.perf_counter()
    with atomic_directory(out, overwrite=overwrite) as tmp:
        fold_of: list[int] | list[None]
        fold_rows: list[Fold] = []
        if folds is None:
            dets = predict(predictor, ds.images, _names(predictor), ds, "predicting")  # type: ignore[arg-type]
            fold_of = [None] * len(ds.images)
        else:
            dets, fold_of, fold_rows = cross_predict(
                ds, folds, cfg, fold_model, tmp / SCRATCH, seed=seed, group=group,  # type: ignore[arg-type]
                fold_epochs=fold_epochs, fold_budget=fold_budget)
            shutil.rmtree(tmp / SCRATCH)
        seconds = time.perf_counter() - started
        issues, quality = find_issues([(im.file_name, im.annotations, d) for im, d in zip(ds.images, dets)],
                                      min_score)
        names = {c.id: c.name for c in ds.categories}
        fixed, changes = apply_fixes(ds, issues, fix_score, names)
        doc = {"weights": str(weights), "data": str(ds.root), "images": len(ds.images),
               "annotations": sum(not a.iscrowd for im in ds.images for a in im.annotations),
               "out_of_sample": folds is not None,
               "note": None if folds is not None else "in-sample: the run's own model trained on these labels and "
                                                      "learnt their errors with them; it finds fewer than k-fold",
               "cost": {"folds": folds or 0, "seconds": round(seconds, 2),
                        "training_seconds": round(sum(f.train_seconds for f in fold_rows), 2),
                        "predicting_seconds": round(sum(f.predict_seconds for f in fold_rows), 2)},
               "folds": [asdict(f) for f in fold_rows],
               "settings": {"folds": folds, "seed": seed, "group": group, "fold_epochs": fold_epochs,
                            "fold_budget": fold_budget, "prediction_floor": PREDICTION_FLOOR, "max_dets": MAX_DETS,
                            "min_score": min_score, "fix_score": fix_score, "save_labels": save_labels},
               "counts": {t: sum(c.type == t for c in issues) for t in TYPES},
               "fixes": {"applied": len(changes), **Counter(c["type"] for c in changes)}}
        write_tables(tmp, ds, issues, quality, fold_of, names)
        write_predictions(tmp / "predictions.json", ds, dets, fold_of, names)
        atomic_write_text(tmp / "audit.json", json.dumps(doc, indent=1, ensure_ascii=False))
        atomic_write_text(tmp / "changes.json", json.dumps(changes, indent=1, ensure_ascii=False))
        report = Report()
        write_dataset(save_labels, fixed, tmp / "fixes", report, images)
        report.write(tmp / "fixes" / REPORT_NAME)
        if issues and sheet:
            contact_sheet(ds, issues[:sheet], names, tmp / "contact_sheet.jpg")
    return Audit(issues, quality, doc, out, names, dets)


def write_tables(out: Path, ds: Dataset, issues: list[Issue], quality: list[float], fold_of: list[int] | list[None],
                 names: dict[int, str]) -> None:
    """``issues.csv`` / ``issues.json`` (rank 1 = most likely an error) and ``images.csv`` (each image's quality)."""
    records = []
    for k, c in enumerate(issues, 1):
        ann = ds.images[c.image].annotations[c.annotation] if c.annotation is not None else None
        records.append({"rank": k, "type": c.type, "score": c.score, "file": printable(c.file),
                        "split": ds.images[c.image].split or "train", "annotation": c.annotation,
                        "where": ann.where() if ann is not None else None, "class": names.get(c.category_id),
                        "box": list(c.box), "fix": {**c.fix, **({"class": names.get(c.fix["category_id"])}
                                                               if "category_id" in c.fix else {})},
                        "prediction": c.prediction and {**c.prediction,
                                                        "class": names.get(c.prediction["category_id"])},
                        "scores": c.scores, "fold": fold_of[c.image], "image_quality": quality[c.image]})
    atomic_write_text(out / "issues.json", json.dumps(records, indent=1, ensure_ascii=False))
    head = ["rank", "type", "score", "file", "split", "annotation", "class", "x0", "y0", "x1", "y1", "action",
            "fix_class", "fix_x0", "fix_y0", "fix_x1", "fix_y1", "prediction_score", "fold", *LABEL_TYPES]
    rows = []
    for r in records:
        box = r["fix"].get("box") or [""] * 4
        rows.append([r["rank"], r["type"], r["score"], r["file"], r["split"], r["annotation"], r["class"], *r["box"],
                     r["fix"]["action"], r["fix"].get("class", ""), *box,
                     r["prediction"]["score"] if r["prediction"] else "", r["fold"],
                     *(r["scores"].get(t, "") for t in LABEL_TYPES)])
    atomic_write_text(out / "issues.csv", _csv(head, rows))
    per_image = Counter(c.image for c in issues)
    atomic_write_text(out / "images.csv", _csv(["file", "split", "quality", "issues", "fold"], [
        [printable(im.file_name), im.split or "train", quality[k], per_image[k], fold_of[k]]
        for k, im in sorted(enumerate(ds.images), key=lambda kv: (quality[kv[0]], kv[0]))]))


def write_predictions(path: Path, ds: Dataset, dets: list[Detections], fold_of: list[int] | list[None],
                      names: dict[int, str]) -> None:
    """``predictions.json``: every image's predictions from the model that scored it (its fold's, never one that
    trained on it), every class down to :data:`PREDICTION_FLOOR`: the k trainings' product, kept so the labels can
    be scored again (another ``--min-score``, another method) without training again."""
    records = [{"file": printable(im.file_name), "split": im.split or "train", "fold": fold,
                "predictions": [{"class": names[int(c)], "category_id": int(c),
                                 "box": [round(float(v), 2) for v in box], "score": round(float(score), 5)}
                                for box, score, c in zip(d.boxes, d.scores, d.labels)]}
               for im, d, fold in zip(ds.images, dets, fold_of)]
    atomic_write_text(path, json.dumps({"prediction_floor": PREDICTION_FLOOR, "max_dets": MAX_DETS, "box": "xyxy",
                                        "images": records}, ensure_ascii=False))


def _csv(head: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def apply_fixes(ds: Dataset, issues: list[Issue], fix_score: float, names: dict[int, str]
                ) -> tuple[Dataset, list[dict[str, Any]]]:
    """A copy of ``ds`` with every fix scoring at least ``fix_score`` applied (``ds`` untouched), and the changes
    made: a missing box added (its score as the ``score`` attribute, where the format keeps one, so a tool shows it
    as a suggestion), a spurious or duplicate label deleted, a wrong class relabelled, a loose box moved to the
    prediction's (its polygons moved and scaled with it; an RLE mask cannot be, so that fix is listed, not made)."""
    chosen: dict[int, list[Issue]] = {}
    for c in issues:
        if c.score >= fix_score:
            chosen.setdefault(c.image, []).append(c)
    images, changes = list(ds.images), []
    for k, found in sorted(chosen.items()):
        im = ds.images[k]
        anns: list[Annotation | None] = list(im.annotations)
        for c in found:
            change = {"file": printable(im.file_name), "annotation": c.annotation, "type": c.type,
                      "score": c.score, "action": c.fix["action"], "applied": True}
            ann = anns[c.annotation] if c.annotation is not None else None
            if c.type == "missing":
                anns.append(Annotation(c.fix["category_id"], c.fix["box"], attributes={SCORE: c.prediction["score"]}))
                change.update(to={"class": names.get(c.fix["category_id"]), "box": list(c.fix["box"])})
            elif ann is None:
                continue
            else:
                change["from"] = {"class": names.get(ann.category_id), "box": [round(v, 2) for v in ann.bbox]}
                if c.fix["action"] == "delete":
                    anns[c.annotation] = None
                elif c.fix["action"] == "relabel":
                    anns[c.annotation] = replace(ann, category_id=c.fix["category_id"])
                    change["to"] = {"class": names.get(c.fix["category_id"])}
                elif ann.rle is not None:
                    change.update(applied=False, why="an RLE mask is not moved: correct this one in a tool")
                else:
                    anns[c.annotation] = moved(ann, c.fix["box"])
                    change["to"] = {"box": list(c.fix["box"])}
            changes.append(change)
        images[k] = replace(im, annotations=[a for a in anns if a is not None])
    return Dataset(images, ds.categories, root=ds.root, format=ds.format), changes


def moved(ann: Annotation, box: tuple[float, float, float, float]) -> Annotation:
    """``ann`` with its box, and its polygons with it, mapped onto ``box``."""
    (x0, y0, x1, y1), (u0, v0, u1, v1) = ann.bbox, box
    sx, sy = (u1 - u0) / max(x1 - x0, 1e-9), (v1 - v0) / max(y1 - y0, 1e-9)
    polygons = None
    if ann.polygons:
        polygons = [[(u0 + (p - x0) * sx) if j % 2 == 0 else (v0 + (p - y0) * sy) for j, p in enumerate(poly)]
                    for poly in ann.polygons]
    return replace(ann, bbox=tuple(box), polygons=polygons)


def contact_sheet(ds: Dataset, issues: list[Issue], names: dict[int, str], out: Path, cell: int = 320) -> None:
    """The first issues, each cut around its label and prediction: the image's labels in green, the prediction
    behind the issue in red, its rank, type and score in the caption."""
    from PIL import Image

    from ..annotations.images import read_rgb
    from ..annotations.preview import sheet
    from ..annotations.render import draw
    from ..evaluation.worst import PREDICTED, TRUTH

    tiles = []
    for k, c in enumerate(issues, 1):
        im = ds.images[c.image]
        rgb = read_rgb(im)
        labels = [a for a in im.annotations if not a.iscrowd]
        boxes = [a.bbox for a in labels] + ([c.prediction["box"]] if c.prediction else [])
        texts = [names.get(a.category_id, "?") for a in labels] + (
            [f"{names.get(c.prediction['category_id'], '?')} {c.prediction['score']:.2f}"] if c.prediction else [])
        drawn = draw(rgb, np.array(boxes, np.float32).reshape(-1, 4), [0] * len(boxes), texts,
                     colours=[TRUTH] * len(labels) + [PREDICTED] * (len(boxes) - len(labels)))
        # cut around the label and the prediction, with room for their neighbours and labels
        focus = np.array([c.box] + ([c.prediction["box"]] if c.prediction else []), np.float64)
        (x0, y0), (x1, y1) = focus[:, :2].min(0), focus[:, 2:].max(0)
        pad = max(x1 - x0, y1 - y0, 0.15 * min(rgb.shape[:2]))
        crop = drawn[int(max(0, y0 - pad)):int(min(rgb.shape[0], y1 + pad)),
                     int(max(0, x0 - pad)):int(min(rgb.shape[1], x1 + pad))]
        tiles.append((Image.fromarray(np.ascontiguousarray(crop)),
                      f"#{k} {c.type} {c.score:.2f} {Path(c.file).name[:24]}"))
    sheet(tiles, out, cell, caption_at_top=True)
