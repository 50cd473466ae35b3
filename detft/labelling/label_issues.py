"""Likely label errors from a model's predictions on labelled images (``detft audit``'s scoring): each a typed
candidate with a score in [0, 1], higher = more likely an error, and a suggested fix.

The predictions must be out-of-sample (the model never trained on the image), or a model repeats the labels it
learnt, errors included. Each image's predictions are matched to its labels as COCO matches them (same class,
IoU >= 0.5, highest score first: :func:`detft.evaluation.matching.greedy`). A prediction's *confidence* is its score
calibrated on the whole dataset (:func:`calibrate`: how often its class's predictions at that score matched a
label), so that one threshold-free ranking holds across classes and models; a label's *support* is the confidence
of the prediction matched to it. A label sees the predictions that are free or matched to it (never one another label
claimed), so two overlapping objects do not explain each other away. Then, after ObjectLab's subtypes
(Tkachenko et al. 2023: overlooked, swap, badloc) with the types detft's fixes need:

- **missing** (a prediction): confident, with no label of any class overlapping:
  ``confidence * (1 - IoU_any / 0.5)``, 0 from IoU 0.5 on (then it is that label's object: a class or box question);
- **wrong_class** (a label): a prediction of another class covers it (IoU >= 0.5) and none of its own class does:
  ``p_other * (1 - support)``;
- **loose** (a label): the same-class prediction that best explains it (highest confidence x IoU, IoU >= 0.1)
  sits elsewhere: ``confidence * (1 - IoU)`` (a box shifted by 30-50% of its size has IoU 0.14-0.54 with its object);
- **spurious** (a label): no prediction of any class overlaps it (IoU >= 0.1) confidently, nor even faintly fits
  it (a real object the model finds hard still draws a weak, well-placed guess; a box drawn on nothing draws none),
  weighted by how reliably the model finds the labelled objects beside it, in its image and of its class (its
  silence means more where it finds the rest): ``(1 - best overlapping confidence) * (1 - best IoU) * context``;
- **duplicate** (a label): another label of its class covers it (IoU > 0.7) and the model sees one object there:
  ``IoU * (1 - the lower support of the two)``, on the less supported one.

A label gets the type of its highest score (the others kept beside it, for ranking by type); a prediction that
a loose label claims is not also a missing box. An image's quality is ObjectLab's pooling: a softmin, at
temperature 0.1, of 1 - score over its candidates (1: nothing doubtful), so one bad label sinks an image however
many good ones it has. Crowd regions are neither labels to doubt nor places where a prediction is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..annotations.dataset import Annotation
from ..evaluation.matching import Pairs, box_iou, greedy, iou_xywh
from ..inference.detections import Detections

TYPES = ("missing", "spurious", "wrong_class", "loose", "duplicate")
LABEL_TYPES = ("wrong_class", "loose", "spurious", "duplicate")  # the order ties between a label's types break in
MATCH_IOU = 0.5  # a prediction is a label's object from here on (COCO's AP50 match)
TOUCH_IOU = 0.1  # below this a prediction does not overlap a label at all (TIDE's background)
DUPLICATE_IOU = 0.7
CROWD_COVER = 0.5  # of a prediction's area inside a crowd region: it is that crowd's, not a missing box
TEMPERATURE = 0.1  # ObjectLab's softmin pooling of an image's candidates


@dataclass
class Issue:
    """One likely label error: ``annotation`` is the label's index in its image (None for a missing box); ``box``
    (xyxy px) and ``category_id`` are the label's, or the prediction's for a missing box; ``fix`` what to do
    (add, delete, relabel, move) with the prediction's class and box where it has them; ``scores`` every label
    type's score (the ranking by one type)."""

    type: str
    score: float
    image: int  # the image's position in the list scored
    file: str
    annotation: int | None
    category_id: int
    box: tuple[float, float, float, float]
    fix: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)
    prediction: dict[str, Any] | None = None  # the prediction behind it: class, box, score


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).reshape(-1, 4)


def _box(b: np.ndarray) -> tuple[float, float, float, float]:
    return tuple(round(float(v), 2) for v in b)  # type: ignore[return-value]


@dataclass
class Matched:
    """One image's labels (crowd regions left out) and predictions, matched: ``iou`` (labels x predictions),
    ``owner`` the label each prediction was matched to (-1: none), ``support`` each label's matched score."""

    boxes: np.ndarray  # (L, 4) xyxy
    classes: np.ndarray  # (L,)
    index: np.ndarray  # (L,) position of each label among the image's annotations
    dets: Detections  # crowd-covered predictions removed, by descending score; scores calibrated by find_issues
    iou: np.ndarray
    owner: np.ndarray
    support: np.ndarray
    raw: np.ndarray  # the predictions' scores as the model gave them

    def set_confidence(self, conf: np.ndarray) -> None:
        """The predictions' calibrated confidences in place of their scores, and the labels' support with them."""
        self.dets = Detections(self.dets.boxes, conf, self.dets.labels)
        self.support = np.zeros(len(self.classes))
        self.support[self.owner[self.owner >= 0]] = conf[self.owner >= 0]


def match(annotations: list[Annotation], dets: Detections) -> Matched:
    """The image's labels and predictions matched as COCO matches them (the evaluation's own greedy rule)."""
    # labels by class and box, predictions by score, class and box: the result never depends on the order a file
    # or a model lists them in (equal ones are interchangeable)
    index = np.array(sorted((k for k, a in enumerate(annotations) if not a.iscrowd),
                            key=lambda k: (annotations[k].category_id, annotations[k].bbox)), np.int64)
    boxes = np.array([annotations[k].bbox for k in index], np.float64).reshape(-1, 4)
    classes = np.array([annotations[k].category_id for k in index], np.int64)
    crowd = np.array([a.bbox for a in annotations if a.iscrowd], np.float64).reshape(-1, 4)
    order = np.lexsort((*dets.boxes.T[::-1], dets.labels, -dets.scores))
    dets = Detections(dets.boxes[order].astype(np.float64), dets.scores[order].astype(np.float64),
                      dets.labels[order].astype(np.int64))
    if len(crowd) and len(dets):
        covered = iou_xywh(_xywh(dets.boxes), _xywh(crowd), np.ones(len(crowd), bool)).max(axis=1) >= CROWD_COVER
        dets = dets.filter(~covered)
    n_det, n_lab = len(dets), len(boxes)
    det, gt = np.repeat(np.arange(n_det), n_lab), np.tile(np.arange(n_lab), n_det)
    iou, inter, area = box_iou(_xywh(dets.boxes)[det], _xywh(boxes)[gt])
    pairs = Pairs(det, gt, iou, np.arange(n_det) * n_lab, np.full(n_det, n_lab), inter, area)
    same = dets.labels[det] == classes[gt]
    owner = greedy(pairs, same & (iou >= MATCH_IOU), np.zeros(n_lab, bool))
    support = np.zeros(n_lab)
    support[owner[owner >= 0]] = dets.scores[owner >= 0]
    return Matched(boxes, classes, index, dets, iou.reshape(n_det, n_lab).T, owner, support, dets.scores)


def context(m: Matched, class_support: dict[int, tuple[float, int]]) -> np.ndarray:
    """Per label, how reliably the model finds the labelled objects around it: the mean support of the image's other
    labels and that of the other labels of its class over the dataset (``class_support``: class -> sum, count),
    averaged (either alone where the other has none)."""
    n = len(m.support)
    out = np.empty(n)
    for i in range(n):
        total, count = class_support.get(int(m.classes[i]), (0.0, 0))
        parts = [(m.support.sum() - m.support[i]) / (n - 1)] if n > 1 else []
        parts += [(total - m.support[i]) / (count - 1)] if count > 1 else []
        out[i] = float(np.mean(parts)) if parts else 0.0
    return out


def candidates(image: int, file: str, m: Matched, class_support: dict[int, tuple[float, int]],
               min_score: float = 0.0) -> tuple[list[Issue], list[float]]:
    """The typed candidates of one image scoring ``min_score`` or more (see the module docstring), and the scores
    of all of them (an image's quality pools every one; a model's faint guesses are many, their objects needless)."""
    dets, iou = m.dets, m.iou
    n_lab = len(m.boxes)
    issues: list[Issue] = []
    every: list[float] = []
    claimed = np.zeros(len(dets), bool)
    ctx = context(m, class_support)
    for i in range(n_lab):
        visible = (m.owner < 0) | (m.owner == i)  # predictions another label matched explain that label, not this
        other = visible & (dets.labels != m.classes[i]) & (iou[i] >= MATCH_IOU)
        touching = visible & (iou[i] >= TOUCH_IOU)
        scores = dict.fromkeys(LABEL_TYPES, 0.0)
        swap = near = twin = -1  # the prediction behind each label type, the other label of a duplicate
        if other.any():
            j = int(np.flatnonzero(other)[np.argmax(dets.scores[other])])
            scores["wrong_class"] = float(dets.scores[j] * (1 - m.support[i]))
            swap = j
        fit = visible & (dets.labels == m.classes[i]) & (iou[i] >= TOUCH_IOU)
        if fit.any():
            j = int(np.flatnonzero(fit)[np.argmax((dets.scores * iou[i])[fit])])
            scores["loose"] = float(dets.scores[j] * (1 - iou[i, j]))
            near = j
        if touching.any():  # how sure the model is of an object here, and how well its best guess fits the box
            sure, fits = float(dets.scores[touching].max()), float(iou[i][visible].max())
        else:
            sure, fits = 0.0, 0.0
        scores["spurious"] = (1 - sure) * (1 - fits) * float(ctx[i])
        twins = np.flatnonzero((m.classes == m.classes[i]) & (np.arange(n_lab) != i))
        if len(twins):
            overlap = box_iou(_xywh(m.boxes[i:i + 1]), _xywh(m.boxes[twins]))[0]
            k = int(np.argmax(overlap))
            # the less supported of the two is the copy (the later one among equals): one candidate per pair
            later = (m.support[i], -i) < (m.support[twins[k]], -twins[k])
            if overlap[k] > DUPLICATE_IOU and later:
                scores["duplicate"] = float(overlap[k] * (1 - min(m.support[i], m.support[twins[k]])))
                twin = int(twins[k])
        kind = max(LABEL_TYPES, key=lambda t: scores[t])
        if scores[kind] <= 0:
            continue
        every.append(scores[kind])
        pred = {"wrong_class": swap, "loose": near}.get(kind, -1)
        fix: dict[str, Any]
        if kind == "wrong_class":
            fix = {"action": "relabel", "category_id": int(dets.labels[pred])}
        elif kind == "loose":
            claimed[pred] = m.owner[pred] < 0  # this box's object: not also a missing one
            fix = {"action": "move", "box": _box(dets.boxes[pred])}
        elif kind == "duplicate":
            fix = {"action": "delete", "duplicate_of": int(m.index[twin])}
        else:
            fix = {"action": "delete"}
        if scores[kind] >= min_score:
            issues.append(Issue(kind, round(scores[kind], 6), image, file, int(m.index[i]), int(m.classes[i]),
                                _box(m.boxes[i]), fix, {t: round(s, 6) for t, s in scores.items()},
                                _prediction(m, pred) if pred >= 0 else None))
    overlap = iou.max(axis=0) if n_lab else np.zeros(len(dets))
    missing = np.where((m.owner < 0) & ~claimed, dets.scores * np.clip(1 - overlap / MATCH_IOU, 0, None), 0.0)
    every += missing[missing > 0].tolist()
    for j in np.flatnonzero((missing > 0) & (missing >= min_score)).tolist():
        box = _box(dets.boxes[j])
        issues.append(Issue("missing", round(float(missing[j]), 6), image, file, None, int(dets.labels[j]), box,
                            {"action": "add", "category_id": int(dets.labels[j]), "box": box},
                            {"missing": round(float(missing[j]), 6)}, _prediction(m, j)))
    return issues, every


def _prediction(m: Matched, j: int) -> dict[str, Any]:
    return {"category_id": int(m.dets.labels[j]), "box": _box(m.dets.boxes[j]), "score": round(float(m.raw[j]), 4),
            "confidence": round(float(m.dets.scores[j]), 4)}


def isotonic(scores: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """How often a prediction at each score is right, fitted non-decreasing in the score (pool-adjacent-violators
    over the distinct scores): the least-squares monotone fit of ``hit`` (0/1) on ``scores``, per prediction."""
    distinct, where = np.unique(scores, return_inverse=True)
    sums, counts = np.bincount(where, hit.astype(np.float64)), np.bincount(where).astype(np.float64)
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for total, n in zip(sums.tolist(), counts.tolist()):
        values.append(total / n)
        weights.append(n)
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            values[-2] = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            weights[-2] = w
            merged = sizes.pop()
            sizes[-1] += merged
            values.pop()
            weights.pop()
    return np.repeat(values, sizes)[where] if len(distinct) else np.zeros(0)


def calibrate(matched: list[Matched]) -> None:
    """Each prediction's confidence: the geometric mean of its score and how often its class's predictions at that
    score are a labelled object (:func:`isotonic` over every image's out-of-sample predictions). A score means
    different things per class and per model; a model whose confident predictions are mostly not objects (an
    untrained one) makes no confident claim that a label is missing or wrong, and the score keeps the order within a
    class where the fit is flat."""
    if not matched:
        return
    labels = np.concatenate([m.dets.labels for m in matched])
    scores = np.concatenate([m.raw for m in matched])
    hit = np.concatenate([m.owner >= 0 for m in matched])
    fitted = np.zeros(len(scores))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        fitted[rows] = isotonic(scores[rows], hit[rows])
    conf = np.sqrt(fitted * scores)
    start = 0
    for m in matched:
        m.set_confidence(conf[start:start + len(m.raw)])
        start += len(m.raw)


def quality(scores: list[float]) -> float:
    """An image's label quality in [0, 1] from its candidates' scores: ObjectLab's softmin pooling of 1 - score."""
    if not scores:
        return 1.0
    s = np.asarray(scores, np.float64)
    weights = np.exp((s - s.max()) / TEMPERATURE)
    return round(float(1 - (s * weights).sum() / weights.sum()), 6)


def find_issues(images: list[tuple[str, list[Annotation], Detections]], min_score: float = 0.0,
                calibrated: bool = True) -> tuple[list[Issue], list[float]]:
    """The candidates of every image (file name, annotations, out-of-sample predictions) with a score of at least
    ``min_score``, most likely error first (ties: image, then annotation), and each image's quality (over every
    candidate, kept or not). The predictions' scores are :func:`calibrate`d over all images unless not
    ``calibrated`` (the raw scores, as the tests of each rule use them); so is the support of each class, which
    weighs spurious labels."""
    matched = [match(anns, dets) for _, anns, dets in images]
    if calibrated:
        calibrate(matched)
    supports: dict[int, list[float]] = {}
    for m in matched:
        for c, s in zip(m.classes.tolist(), m.support.tolist()):
            supports.setdefault(c, []).append(s)
    class_support = {c: (float(np.sum(v)), len(v)) for c, v in supports.items()}
    issues, qualities = [], []
    for k, ((file, _, _), m) in enumerate(zip(images, matched)):
        found, every = candidates(k, file, m, class_support, min_score)
        qualities.append(quality(every))
        issues += found
    issues.sort(key=lambda c: (-c.score, c.image, -1 if c.annotation is None else c.annotation, c.box))
    return issues, qualities
