"""Finding label errors (the audit issue, item 3): ``detft audit`` against cleanlab's ObjectLab on the same
out-of-sample predictions, on known, injected errors.

    python bench/audit_vs_cleanlab.py [--data ../shared/datasets/bccd/BCCD] [--seed 0] [--epochs 10] [--imgsz 320]
                                      [--folds 3] [--review 0.2 [--draws 2] [--arms NAME ...]]
    python bench/audit_vs_cleanlab.py --data datasets/shapes --epochs 2 --imgsz 128 --folds 2   # embedded data (smoke)

Needs ``pip install cleanlab==2.9.0`` (a bench dependency: detft's core never imports it) and ``detft[yolo]``.

1. Errors, seeded (``--seed``), into every image of ``--data`` (all splits, boxes only: masks are dropped, the
   audit compares boxes). Of the dataset's N boxes (crowd regions left alone), disjoint random sets of each, so a
   box gets at most one error: 10% dropped (*missing*: the truth has a box the labels lack), 10% given another
   class drawn uniformly (*wrong_class*), 10% moved by f = 30-50% of their size along x, y or both (width x f,
   height x f; the other way where that would leave the image, clipped to it: IoU 0.14-0.54 with its object, though
   in a crowded image it may land on a neighbour: *shifted*), and 5% x N boxes added (*spurious*): a random image,
   the width and height of a random labelled box, a uniform place, a uniform class, overlapping no labelled object
   or other box of its image by IoU > 0.1.
   The corrupted data is written as COCO to OUT/data, the record of which box got what to OUT/truth.json.
2. A starting run on the corrupted data (``detft train --arch yolo``: YOLO11n from its COCO start, the default,
   ``--epochs`` at ``--imgsz``, batch ``--batch``, CPU, seed ``--seed``), then ``detft audit``'s k-fold with its
   settings: :func:`detft.labelling.audit.cross_predict` called as ``Model.audit`` calls it (``--folds`` models, each
   trained on the other folds, predicting the fold it held out from its last checkpoint, every class down to score
   0.01, at most 300 per image), the predictions ``detft audit`` keeps in its predictions.json. They
   are saved once to OUT/predictions.json, and both methods read them from there (a rerun reuses them).
3. detft: :func:`detft.labelling.label_issues.find_issues` on them with min score 0, the exact call ``detft audit
   --min-score 0`` makes (every label with any doubt listed, each with every type's score), and each image's quality.
   cleanlab 2.9.0: labels as ``{'bboxes': (L, 4) xyxy, 'labels': (L,)}`` (class ids renumbered 0..K-1) and, per
   image, a list over the K classes of (M, 5) ``[x1, y1, x2, y2, score]`` arrays; its public per-box scores
   ``compute_overlooked_box_scores`` (per prediction; NaN: not a candidate), ``compute_badloc_box_scores`` and
   ``compute_swap_box_scores`` (per label), all with cleanlab's defaults (the shared inputs computed once, as
   cleanlab's own ``find_label_issues`` does), ``get_label_quality_scores`` (per image) and ``find_label_issues``
   (a flag per image: its per-box flags are internal). Its overlooked and swap scores trust only predictions
   scored 0.95 or more (``high_probability_threshold``), its badloc score only those from 0.5
   (``low_probability_threshold``); where the detector's scores stay below these they are flat, so the three are
   computed again with both thresholds at each t of :data:`SWEEP` (the low one at most its 0.5), and the table adds
   cleanlab's best per row.

How each number is computed (higher score = more likely an error; cleanlab's scores, lower = worse, enter as 1 - s):

- **wrong_class, shifted, spurious** (unit: a label of the corrupted data): positives the labels given that error,
  negatives the untouched labels (labels with another error are left out of that row). detft ranks by its score
  for that type (``Issue.scores``: wrong_class, loose, spurious; 0 for a label it has no doubt about); cleanlab by
  1 - swap, 1 - badloc, and for spurious, which has no ObjectLab subtype, 1 - min(swap, badloc).
- **missing** (unit: a dropped box): a method points at a dropped box with a prediction overlapping it by IoU >= 0.5
  (any class); the box's score is the best such prediction's score from that method (detft: its "missing" issue's
  score, 0 where it lists none; cleanlab: 1 - overlooked, -1 where it is NaN), -2 where no prediction overlaps it at
  all. Negatives: every prediction overlapping no dropped box. The other predictions on a dropped box are left out:
  they are neither a find nor a false alarm.
- **any** (one list, what a reader goes down): the labels of the three rows above (every injected label positive,
  the untouched ones negative) and the items of the missing row, each ranked by the method's overall score: detft's
  issue score (its top type, duplicate included) and missing score; cleanlab's 1 - min(swap, badloc) and
  1 - overlooked. The many predictions on labelled objects are easy negatives: they raise both AUROCs alike.
- **image** (unit: an image): positive when it has any injected error (a dropped box included); detft ranks by
  1 - its image quality (images.csv's), cleanlab by 1 - ``get_label_quality_scores``.
- **P@k**: the share of positives among the k highest-ranked items, k = the number of positives (injected errors of
  that type; erroneous images); ties at the k-th score count by their share of positives (the expected precision
  under a random order of the tied items). P@k = recall at k here. **AUROC**: the chance that a random positive
  outranks a random negative, ties counting a half (Mann-Whitney).
- **flagged**: cleanlab's ``find_label_issues`` image flags, against the images ``detft audit`` lists anything for
  at its default ``--min-score`` (0.2): how many, their precision and recall over the erroneous images.

4. With ``--review F`` (the audit issue, item 4: does fixing what the audit finds pay?): a reviewer with time for
   F of the training images corrects each one they look at from the truth (every injected error in it undone).
   Which images: the F worst by detft's image score (1 - quality, images.csv's order), the F worst by cleanlab's
   (1 - ``get_label_quality_scores``), and ``--draws`` random draws of F; beside them none corrected and all. Each
   arm trains anew with the starting run's settings on its training split and is scored on the data's own val
   split with the truth's labels (val and test are never corrupted in these arms), so the arms differ only in the
   training labels. Reported: images reviewed, injected errors they undid, and val AP.

Where the data has few or no clean images (BCCD: ~13 boxes an image, 35% of them corrupted), the image row has few
negatives and says little; the per-box rows are the comparison. Boxes the data never labelled (BCCD leaves many red
cells unlabelled) are real objects the injection does not know of: a prediction on one is a negative in the missing
row, for both methods alike."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from detft.annotations.dataset import Dataset, ImageRecord
    from detft.config import TrainConfig
    from detft.inference.detections import Detections
    from detft.inference.predictor import Predictor

DEFAULT_BCCD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"
FRACTIONS = {"missing": 0.10, "wrong_class": 0.10, "shifted": 0.10, "spurious": 0.05}  # of the data's N boxes
SHIFT = (0.3, 0.5)  # of a box's width / height
FREE_IOU = 0.1  # a spurious box overlaps nothing labelled by more than this
HIT_IOU = 0.5  # a prediction points at a dropped box from here on (COCO's AP50 match)
TRIES = 1000  # places tried for each spurious box
LABEL_ERRORS = ("wrong_class", "shifted", "spurious")
NOT_FLAGGED, NO_PREDICTION = -1.0, -2.0  # below every score in [0, 1]: no candidate there; nothing predicted there
# cleanlab's probability thresholds tried beside its defaults (0.95 and 0.5): a YOLO fine-tuned for 10 epochs rarely
# scores above 0.9, and cleanlab's best of these per row, chosen on the injected truth, is the bar to match
SWEEP = (0.8, 0.6, 0.4, 0.2)


@dataclass
class Injected:
    """The corrupted dataset and the record of it: ``kinds[i][a]`` is what annotation ``a`` of image ``i`` is
    (clean, crowd or one of :data:`LABEL_ERRORS`), ``dropped`` the (image, class, xyxy box) taken out."""

    dataset: Dataset
    kinds: list[list[str]]
    dropped: list[tuple[int, int, tuple[float, float, float, float]]]


def xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes, (len(a), len(b)): detft's evaluation's own formula."""
    from detft.evaluation.matching import iou_xywh

    return iou_xywh(xywh(a), xywh(b))


def shifted(box: tuple[float, ...], width: int, height: int, rng: np.random.Generator) -> tuple[float, ...]:
    """``box`` moved by f = 30-50% of its size along x, y or both, the other way along an axis where it would leave
    the image, clipped to it (only a box over half the image wide or high is)."""
    x0, y0, x1, y1 = box
    f = rng.uniform(*SHIFT)
    ax, ay = ((1, 0), (0, 1), (1, 1))[rng.integers(3)]
    dx, dy = float(rng.choice((-1, 1)) * ax * f * (x1 - x0)), float(rng.choice((-1, 1)) * ay * f * (y1 - y0))
    if x0 + dx < 0 or x1 + dx > width:
        dx = -dx
    if y0 + dy < 0 or y1 + dy > height:
        dy = -dy
    return max(0.0, x0 + dx), max(0.0, y0 + dy), min(float(width), x1 + dx), min(float(height), y1 + dy)


def boxes_only(source: Dataset) -> list[ImageRecord]:
    """``source``'s images with their masks dropped: the audit compares boxes."""
    return [replace(im, annotations=[replace(a, polygons=None, rle=None) for a in im.annotations])
            for im in source.images]


def inject(source: Dataset, seed: int) -> Injected:
    """The errors of the module docstring, seeded, into a copy of ``source`` (boxes only)."""
    from detft.annotations.dataset import Annotation, Dataset

    rng = np.random.default_rng(seed)
    images = boxes_only(source)
    slots = [(i, a) for i, im in enumerate(images) for a, ann in enumerate(im.annotations) if not ann.iscrowd]
    n = len(slots)
    counts = {t: round(f * n) for t, f in FRACTIONS.items()}
    order, start = rng.permutation(n), 0
    kind_of: dict[tuple[int, int], str] = {}
    for t in ("missing", "wrong_class", "shifted"):
        kind_of.update({slots[s]: t for s in order[start:start + counts[t]].tolist()})
        start += counts[t]
    classes = [c.id for c in source.categories]
    kinds: list[list[str]] = []
    dropped: list[tuple[int, int, tuple[float, float, float, float]]] = []
    for i, im in enumerate(images):
        anns, marks = [], []
        for a, ann in enumerate(im.annotations):
            kind = "crowd" if ann.iscrowd else kind_of.get((i, a), "clean")
            if kind == "missing":
                x0, y0, x1, y1 = map(float, ann.bbox)
                dropped.append((i, ann.category_id, (x0, y0, x1, y1)))
                continue
            if kind == "wrong_class":
                ann = replace(ann, category_id=int(rng.choice([c for c in classes if c != ann.category_id])))
            elif kind == "shifted":
                ann = replace(ann, bbox=shifted(ann.bbox, im.width, im.height, rng))
            anns.append(ann)
            marks.append(kind)
        images[i] = replace(im, annotations=anns)
        kinds.append(marks)
    sizes = np.array([[source.images[i].annotations[a].width, source.images[i].annotations[a].height]
                      for i, a in slots])
    for _ in range(counts["spurious"]):
        for _ in range(TRIES):
            i = int(rng.integers(len(images)))
            im = images[i]
            w, h = np.minimum(sizes[rng.integers(n)], (im.width, im.height))
            x0, y0 = rng.uniform(0, im.width - w), rng.uniform(0, im.height - h)
            box = (float(x0), float(y0), float(x0 + w), float(y0 + h))
            taken = [a.bbox for a in source.images[i].annotations] + [a.bbox for a in im.annotations]
            if not taken or iou(np.array([box]), np.array(taken)).max() <= FREE_IOU:
                images[i] = replace(im, annotations=[*im.annotations, Annotation(int(rng.choice(classes)), box)])
                kinds[i].append("spurious")
                break
    return Injected(Dataset(images, source.categories, root=source.root, format=source.format), kinds, dropped)


def train_run(data: Path, out: Path, name: str, a: argparse.Namespace) -> tuple[Path, float]:
    """A run on ``data`` with the bench's settings, trained once in its own process (OUT/NAME; reused when it has
    an eval.json), and what that took (s). The starting run is the one ``detft audit --weights`` would take."""
    run = out / name
    if not (run / "eval.json").is_file():
        args = ["--data", str(data), "--arch", "yolo", "--epochs", str(a.epochs), "--imgsz", str(a.imgsz),
                "--batch", str(a.batch), "--seed", str(a.seed), "--workers", "0", "--device", "cpu", "--project",
                str(out), "--name", name, "--exist-ok"]
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "detft", "train", *args], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"the run {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        (run / "bench_seconds.txt").write_text(f"{time.perf_counter() - t:.1f}")
    return run, float((run / "bench_seconds.txt").read_text())


def out_of_sample(ds: Dataset, run: Path, out: Path, a: argparse.Namespace) -> dict[str, Any]:
    """``detft audit``'s k-fold predictions of every image (OUT/predictions.json), made once: its ``cross_predict``
    with the run's settings and ``Model.audit``'s fold model (train the fold, load its last checkpoint)."""
    saved = out / "predictions.json"
    if not saved.is_file():
        import detft
        from detft.labelling.audit import cross_predict
        from detft.runs import Run

        def fold_model(fold_cfg: TrainConfig) -> Predictor:
            fold = detft.train(fold_cfg, mlflow=False)
            return detft.load(Run.open(fold.folder, "last"), device=fold_cfg.device).scorer

        scratch = out / "folds"
        if scratch.exists():  # an interrupted earlier attempt's fold runs: a fold refuses to train over its run
            shutil.rmtree(scratch)
        t = time.perf_counter()
        dets, fold_of, folds = cross_predict(ds, a.folds, Run.open(run).info.config, fold_model, scratch,
                                             seed=a.seed, group=True, fold_epochs=None, fold_budget=None)
        doc = {"seconds": round(time.perf_counter() - t, 2), "folds": [asdict(f) for f in folds],
               "images": [{"file": im.file_name, "fold": g, "boxes": d.boxes.tolist(), "scores": d.scores.tolist(),
                           "labels": d.labels.tolist()} for im, g, d in zip(ds.images, fold_of, dets)]}
        saved.write_text(json.dumps(doc))
    return json.loads(saved.read_text())


def detections(doc: dict[str, Any], ds: Dataset) -> list[Detections]:
    """The saved predictions as detft's Detections, in the dataset's image order (checked)."""
    from detft.inference.detections import Detections

    if [r["file"] for r in doc["images"]] != [im.file_name for im in ds.images]:
        raise SystemExit("predictions.json is of other images: remove it (or use another --out)")
    return [Detections(np.array(r["boxes"], np.float32).reshape(-1, 4), np.array(r["scores"], np.float32),
                       np.array(r["labels"], np.int64)) for r in doc["images"]]


def detft_scores(ds: Dataset, dets: list[Detections]) -> dict[str, Any]:
    """``detft audit``'s scoring (``find_issues``, min score 0): per label (image order, annotation order) each
    type's score and the top one, per prediction its missing score, per image 1 - quality, and the images it lists
    at its default ``--min-score``."""
    from detft.labelling.audit import MIN_SCORE
    from detft.labelling.label_issues import find_issues

    t = time.perf_counter()
    issues, quality = find_issues([(im.file_name, im.annotations, d) for im, d in zip(ds.images, dets)], 0.0)
    seconds = time.perf_counter() - t
    by_label = {(c.image, c.annotation): c for c in issues if c.annotation is not None}
    label: dict[str, list[float]] = {k: [] for k in (*LABEL_ERRORS, "any")}
    for i, im in enumerate(ds.images):
        for a, ann in enumerate(im.annotations):
            if ann.iscrowd:
                continue
            c = by_label.get((i, a))
            s = c.scores if c else {}
            for key, typ in (("wrong_class", "wrong_class"), ("shifted", "loose"), ("spurious", "spurious")):
                label[key].append(s.get(typ, 0.0))
            label["any"].append(c.score if c else 0.0)
    missing = [np.zeros(len(d)) for d in dets]
    for c in issues:
        if c.type == "missing":  # back to its prediction: same class, the box it gives (rounded to 0.01 px)
            d, free = dets[c.image], missing[c.image] == 0
            gap = np.abs(d.boxes.astype(np.float64) - np.array(c.box)).max(axis=1)
            j = np.flatnonzero((d.labels == c.category_id) & free & (gap < 0.006))
            if not len(j):
                raise SystemExit(f"a missing issue in {c.file} matches none of its predictions")
            missing[c.image][j[0]] = c.score
    listed = {c.image for c in issues if c.score >= MIN_SCORE}
    return {"label": {k: np.array(v) for k, v in label.items()}, "missing": missing,
            "image": 1 - np.array(quality), "flagged": np.array([i in listed for i in range(len(ds.images))]),
            "seconds": seconds}


def cleanlab_scores(ds: Dataset, dets: list[Detections]) -> dict[str, dict[str, Any]]:
    """cleanlab's ObjectLab on the same predictions: per label 1 - swap, 1 - badloc and 1 - their min, per
    prediction 1 - overlooked (NaN: -1), per image 1 - its quality score, and its image flags; under "cleanlab"
    with its defaults throughout, under "cleanlab@t" with both probability thresholds at t of :data:`SWEEP`: the
    high one, from which its overlooked and swap scores trust a prediction (0.95 by default; a detector whose
    scores never reach it leaves both flat), and the low one, below which its badloc score ignores one (0.5 by
    default, never raised). The inputs, the image scores and the flags do not depend on them: computed once."""
    from cleanlab.internal.constants import ALPHA
    from cleanlab.object_detection.filter import find_label_issues
    from cleanlab.object_detection.rank import (_get_valid_inputs_for_compute_scores, compute_badloc_box_scores,
                                                compute_overlooked_box_scores, compute_swap_box_scores,
                                                get_label_quality_scores)

    index = {c.id: k for k, c in enumerate(ds.categories)}
    labels, predictions, orders = [], [], []
    for im, d in zip(ds.images, dets):
        anns = [a for a in im.annotations if not a.iscrowd]
        labels.append({"bboxes": np.array([a.bbox for a in anns], np.float64).reshape(-1, 4),
                       "labels": np.array([index[a.category_id] for a in anns], np.int64), "image_name": im.file_name})
        k = np.array([index[int(c)] for c in d.labels], np.int64)
        rows = np.concatenate([d.boxes, d.scores[:, None]], axis=1).astype(np.float64)
        predictions.append([rows[k == c] for c in range(len(index))])
        orders.append(np.argsort(k, kind="stable"))  # cleanlab lists an image's predictions class by class
    clock = time.perf_counter()
    shared = _get_valid_inputs_for_compute_scores(ALPHA, labels, predictions)  # as its find_label_issues does
    quality = get_label_quality_scores(labels, predictions, verbose=False)
    flagged = np.asarray(find_label_issues(labels, predictions), bool)
    common = time.perf_counter() - clock
    variants = {}
    for name, high, low in [("cleanlab", None, None), *((f"cleanlab@{t}", t, min(t, 0.5)) for t in SWEEP)]:
        clock = time.perf_counter()
        overlooked = compute_overlooked_box_scores(auxiliary_inputs=shared, high_probability_threshold=high)
        badloc = np.concatenate(compute_badloc_box_scores(auxiliary_inputs=shared, low_probability_threshold=low))
        swap = np.concatenate(compute_swap_box_scores(auxiliary_inputs=shared, high_probability_threshold=high))
        seconds = common + time.perf_counter() - clock
        missing = []
        for order, o in zip(orders, overlooked):
            mine = np.empty(len(order))
            mine[order] = np.where(np.isnan(o), NOT_FLAGGED, 1 - o)
            missing.append(mine)
        worst = 1 - np.minimum(swap, badloc)
        variants[name] = {"label": {"wrong_class": 1 - swap, "shifted": 1 - badloc, "spurious": worst, "any": worst},
                          "missing": missing, "image": 1 - quality, "flagged": flagged, "seconds": seconds}
    return variants


def missing_items(inj: Injected, dets: list[Detections], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The missing row's items (module docstring): each dropped box at its best-scored overlapping prediction (or
    :data:`NO_PREDICTION`), then every prediction overlapping no dropped box; (is a dropped box, score)."""
    pos, neg = [], []
    on_dropped = [np.zeros(len(d), bool) for d in dets]
    for i, _, box in inj.dropped:
        hit = iou(np.array([box]), dets[i].boxes)[0] >= HIT_IOU if len(dets[i]) else np.zeros(0, bool)
        pos.append(scores[i][hit].max() if hit.any() else NO_PREDICTION)
        on_dropped[i] |= hit
    for s, on in zip(scores, on_dropped):
        neg += s[~on].tolist()
    return np.array([True] * len(pos) + [False] * len(neg)), np.array(pos + neg, np.float64)


def precision_at_k(y: np.ndarray, s: np.ndarray) -> float:
    """Share of positives among the k = positives highest scores, ties at the k-th score by their share."""
    k = int(y.sum())
    if not k:
        return float("nan")
    kth = np.sort(s)[::-1][k - 1]
    above, tied = s > kth, s == kth
    return float((y[above].sum() + (k - above.sum()) * y[tied].mean()) / k)


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney: P(a random positive scores above a random negative), ties a half."""
    p, n = int(y.sum()), int((~y).sum())
    if not p or not n:
        return float("nan")
    _, where, counts = np.unique(s, return_inverse=True, return_counts=True)
    rank = (np.cumsum(counts) - (counts - 1) / 2)[where]  # average 1-based rank of tied scores
    return float((rank[y].sum() - p * (p + 1) / 2) / (p * n))


def rows(inj: Injected, dets: list[Detections], methods: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict]]:
    """Per table row: its name, unit and, per method, (y, scores)."""
    kinds = np.array([k for marks in inj.kinds for k in marks if k != "crowd"])  # the methods' labels, in order
    erroneous = np.zeros(len(inj.kinds), bool)
    erroneous[[i for i, marks in enumerate(inj.kinds) if set(marks) - {"clean", "crowd"}]] = True
    erroneous[[i for i, _, _ in inj.dropped]] = True
    out = [("missing", "dropped box", {m: missing_items(inj, dets, r["missing"]) for m, r in methods.items()})]
    for t in LABEL_ERRORS:
        keep = (kinds == t) | (kinds == "clean")
        out.append((t, "label", {m: (kinds[keep] == t, r["label"][t][keep]) for m, r in methods.items()}))
    pooled = {}
    for m, r in methods.items():
        y, s = missing_items(inj, dets, r["missing"])
        pooled[m] = (np.concatenate([kinds != "clean", y]), np.concatenate([r["label"]["any"], s]))
    out.append(("any", "label + box", pooled))
    out.append(("image", "image", {m: (erroneous, r["image"]) for m, r in methods.items()}))
    return out


def errors_in(inj: Injected) -> np.ndarray:
    """Injected errors per image: its corrupted labels and the boxes dropped from it."""
    count = np.array([sum(k not in ("clean", "crowd") for k in marks) for marks in inj.kinds])
    np.add.at(count, [i for i, _, _ in inj.dropped], 1)
    return count


def fix_study(source: Dataset, inj: Injected, methods: dict[str, dict[str, Any]], out: Path,
              a: argparse.Namespace) -> list[tuple[str, int, int, float]]:
    """Item 4 of the module docstring: per arm (name, images reviewed, errors undone, val AP)."""
    from detft.annotations.dataset import Dataset
    from detft.annotations.report import Report
    from detft.formats import coco

    clean = boxes_only(source)
    train = [i for i, im in enumerate(inj.dataset.images) if im.split == "train"]
    if not train or len(train) == len(clean):
        raise SystemExit(f"--review: {a.data} needs a train split and a val split of its own")
    k = max(1, round(a.review * len(train)))
    rng = np.random.default_rng(a.seed)
    worst = {m: [train[j] for j in np.argsort(-methods[m]["image"][train], kind="stable")[:k]]
             for m in ("detft", "cleanlab")}
    draws = [rng.choice(train, k, replace=False).tolist() for _ in range(a.draws)]
    # the audits and the random draws alternate, so a run cut short still compares them
    arms = {"none": [], "detft audit": worst["detft"], **{f"random {d + 1}": c for d, c in enumerate(draws[:1])},
            "cleanlab audit": worst["cleanlab"], **{f"random {d + 2}": c for d, c in enumerate(draws[1:])},
            "all": train}
    errors, results = errors_in(inj), []
    for name, chosen in arms.items():
        if a.arms and name not in a.arms:
            continue
        slug = name.replace(" ", "-")
        data, picked = out / f"fix-data-{slug}", set(chosen)
        if not (data / "annotations").is_dir():  # corrupted training labels, but for the images reviewed
            images = [c if i in picked or c.split != "train" else im
                      for i, (c, im) in enumerate(zip(clean, inj.dataset.images))]
            coco.write(Dataset(images, source.categories, root=source.root, format=source.format), data, Report())
        run, _ = train_run(data, out, f"fix-{slug}", a)
        ap = json.loads((run / "eval.json").read_text())["metrics"]["bbox"]["stats"]["AP"]
        results.append((name, len(chosen), int(errors[list(chosen)].sum()), ap))
        print(f"{name}: {len(chosen)} images reviewed, {results[-1][2]} errors undone, val AP {ap:.4f}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_BCCD, help="a labelled dataset with train and val splits")
    ap.add_argument("--seed", type=int, default=0, help="of the injected errors, the training and the folds")
    ap.add_argument("--epochs", type=int, default=10, help="of the starting run, and so of each fold")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--review", type=float, default=0.0,
                    help="share of the training images a reviewer corrects (item 4; 0: not run)")
    ap.add_argument("--draws", type=int, default=2, help="random draws of the images reviewed, with --review")
    ap.add_argument("--arms", nargs="+", help="with --review, only these arms (e.g. 'none' 'detft audit' 'random 1'), "
                                              "to train arms in parallel processes; a later run with all reuses them")
    ap.add_argument("--out", type=Path, help="scratch folder (default /tmp/audit-cleanlab-DATA-sSEED-eE-iIMGSZ-kK); "
                                             "its predictions are reused when it has them")
    a = ap.parse_args()
    from detft.annotations.report import Report
    from detft.formats import coco
    from detft.operations.convert import load

    out = a.out or Path(f"/tmp/audit-cleanlab-{a.data.resolve().name}-s{a.seed}-e{a.epochs}-i{a.imgsz}-k{a.folds}")
    out.mkdir(parents=True, exist_ok=True)
    source = load(a.data, None, Report())
    inj = inject(source, a.seed)
    ds = inj.dataset
    if not (out / "data" / "annotations").is_dir():
        coco.write(ds, out / "data", Report())
    (out / "truth.json").write_text(json.dumps({
        "data": str(a.data), "seed": a.seed, "images": [{"file": im.file_name, "kinds": k}
                                                        for im, k in zip(ds.images, inj.kinds)],
        "dropped": [{"image": i, "category_id": c, "box": b} for i, c, b in inj.dropped]}, indent=1))
    run, start_seconds = train_run(out / "data", out, "start", a)
    doc = out_of_sample(ds, run, out, a)
    dets = detections(doc, ds)
    methods = {"detft": detft_scores(ds, dets), **cleanlab_scores(ds, dets)}
    table = rows(inj, dets, methods)

    kinds = [k for marks in inj.kinds for k in marks]
    n_boxes = sum(not x.iscrowd for im in source.images for x in im.annotations)
    bad = table[-1][2]["detft"][0]
    start_ap = json.loads((run / "eval.json").read_text())["metrics"]["bbox"]["stats"]["AP"]
    folds = doc["folds"]
    trained, predicted = sum(f["train_seconds"] for f in folds), sum(f["predict_seconds"] for f in folds)
    print(f"\ncommand: python {' '.join(sys.argv)}")
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} cores; python "
          f"{platform.python_version()}; date {datetime.now():%Y-%m-%d %H:%M}")
    print(f"{a.data}: {len(ds.images)} images, {n_boxes} boxes; injected (seed {a.seed}): {len(inj.dropped)} missing, "
          + ", ".join(f"{kinds.count(t)} {t}" for t in LABEL_ERRORS)
          + f"; {int(bad.sum())} of {len(bad)} images have an error; corrupted data in {out / 'data'}")
    print(f"starting run: YOLO11n COCO start, {a.epochs} epoch{'s' * (a.epochs != 1)} at {a.imgsz} px, batch "
          f"{a.batch}, CPU: {start_seconds:.0f} s, val AP {start_ap:.4f} (on corrupted labels)")
    print(f"out-of-sample predictions: {a.folds} folds (seed {a.seed}), the run's settings: training "
          f"{trained:.0f} s, predicting {predicted:.0f} s, "
          f"{doc['seconds']:.0f} s in all; held-out AP per fold "
          + " ".join("-" if f["held_out_ap"] is None else f"{f['held_out_ap']:.4f}" for f in folds)
          + f"; {sum(len(d) for d in dets)} predictions (score >= 0.01)")
    print(f"scoring the same predictions: detft find_issues {methods['detft']['seconds']:.2f} s, cleanlab (3 per-box "
          f"scores, get_label_quality_scores, find_label_issues) {methods['cleanlab']['seconds']:.2f} s")
    print(f"cleanlab's best: of its defaults (0.95, 0.5) and both thresholds at {', '.join(map(str, SWEEP))} (the "
          "low one at most 0.5), the one with the highest P@k in that row (chosen on the truth)")
    print("| error type  | unit        | injected | negatives | detft P@k | detft AUROC | cleanlab P@k | "
          "cleanlab AUROC | cleanlab best P@k | its AUROC | threshold |")
    print("|-------------|-------------|----------|-----------|-----------|-------------|--------------|"
          "----------------|-------------------|-----------|-----------|")
    for name, unit, by in table:
        y = by["detft"][0]
        cells = [f"{f(*by[m]):.3f}" for m in ("detft", "cleanlab") for f in (precision_at_k, auroc)]
        best = max((m for m in by if m.startswith("cleanlab")), key=lambda m: np.nan_to_num(precision_at_k(*by[m])))
        t = best.partition("@")[2] or "0.95"
        print(f"| {name:<11} | {unit:<11} | {int(y.sum()):>8} | {int((~y).sum()):>9} | {cells[0]:>9} | "
              f"{cells[1]:>11} | {cells[2]:>12} | {cells[3]:>14} | {precision_at_k(*by[best]):>17.3f} | "
              f"{auroc(*by[best]):>9.3f} | {t:>9} |")
    for m, what in (("cleanlab", "find_label_issues"), ("detft", "audit's list at --min-score 0.2")):
        flagged = methods[m]["flagged"]
        hits = int((flagged & bad).sum())
        print(f"flagged images, {m} {what}: {int(flagged.sum())}, precision "
              f"{hits / max(int(flagged.sum()), 1):.3f}, recall {hits / max(int(bad.sum()), 1):.3f}")
    if a.review:
        results = fix_study(source, inj, methods, out, a)
        print(f"\nfixing what was found: {a.review:g} of the training images reviewed and corrected from the truth, "
              f"each arm trained anew ({a.epochs} epochs at {a.imgsz} px, seed {a.seed}), val AP on the true labels")
        print("| images corrected | reviewed | errors undone | val AP |")
        print("|------------------|----------|---------------|--------|")
        for name, n, undone, ap in results:
            print(f"| {name:<16} | {n:>8} | {undone:>13} | {ap:.4f} |")


if __name__ == "__main__":
    main()
