"""What the model finds hard (``detft rank``): unlabelled images ordered by how much a label could teach it.

Three signals of uncertainty, each a property of the model on that image, none needing a label:

- **near the threshold**: detections whose score is close to their class's ``--conf auto`` threshold are the
  ones the model cannot decide; each counts by a triangular kernel of its distance to the threshold (1 at the
  threshold, 0 at ``WIDTH`` away);
- **flip disagreement**: the image and its mirror image should give mirrored detections; a detection the other
  pass does not find (same class, IoU >= 0.5), or finds elsewhere, is one the model is unsure of (consistency,
  as in CALD and CSD), counted by its score and by 1 - IoU;
- **weak classes**: each detection is weighted by 1 + (1 - AP of its class) from the run's evaluation, so
  images holding what the model is worst at come first.

The first two are ranked over the pool and averaged (their scales differ) into the image's uncertainty in [0, 1]:
high when both say the model would learn from it. Images without a detection score 0 (the model sees nothing to
doubt there).

Uncertainty alone picks look-alikes: twenty frames of one hard scene teach what one of them does, and on BCCD and
the embedded data it did no better than a random pick (bench/RESULTS.md, "Label less"). So where the model gives
features (a PyTorch YOLO or R-CNN; not an exported graph), the order also spreads over what the images show, the
way BADGE (Ash et al. 2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds") joins the
two: each image is its pooled feature vector (unit length) scaled by its uncertainty, and the order is greedy
k-center over those points (Sener and Savarese 2018, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach"), starting from the origin, where the images the model is sure of sit. The first pick is the most
uncertain image; each next one is the farthest from every image picked so far, which an image earns by being
uncertain and unlike them. No weight joins the two terms: the uncertainty is the scale of the point.

Measured over rounds of labelling (bench/RESULTS.md, "What to label next"), the spread order is no better a pick
than a random one either: level on BCCD, behind on aquarium (a pool with rare classes, where it picks busy scenes),
ahead only inside the noise on the embedded data. At budgets of tens to a few hundred labels the literature picks
typical images rather than uncertain ones (TypiClust, ProbCover); that is the next thing to measure here."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..annotations.report import printable
from ..errors import DetftError
from ..evaluation.matching import iou_xywh
from ..inference.detections import Detections
from ..inference.predictor import Predictor
from ..util.output import atomic_write_text
from ..util.progress import progress

WIDTH = 0.25  # score distance from the threshold at which a detection stops counting as undecided
MATCH_IOU = 0.5
FLOOR = 0.05  # scores below this are noise for every signal
ORDERS = ("spread", "uncertainty")  # detft rank --order
SPREAD_PICKS = 2000  # images placed one by one by their spread; more than a round of labelling takes


@dataclass
class Ranked:
    file: str
    score: float  # uncertainty in [0, 1]
    near_threshold: float
    flip_disagreement: float
    detections: int
    weakest_class: str
    distance: float | None = None  # how far from the images ranked before it, scaled by uncertainty (None: not spread)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def mirrored(dets: Detections, width: int) -> Detections:
    """Detections of a horizontally flipped image, in the unflipped image's coordinates."""
    boxes = dets.boxes.copy()
    boxes[:, 0], boxes[:, 2] = width - dets.boxes[:, 2], width - dets.boxes[:, 0]
    return Detections(boxes, dets.scores, dets.labels)


def disagreement(a: Detections, b: Detections, weight: dict[int, float]) -> float:
    """How much two passes over the same image disagree: unmatched detections by score, matched by 1 - IoU."""
    total, used = 0.0, np.zeros(len(b), bool)
    for i in np.argsort(-a.scores):
        same = np.flatnonzero((b.labels == a.labels[i]) & ~used)
        w = weight.get(int(a.labels[i]), 1.0)
        if len(same):
            iou = iou_xywh(_xywh(a.boxes[i:i + 1]), _xywh(b.boxes[same]))[0]
            j = int(np.argmax(iou))
            if iou[j] >= MATCH_IOU:
                used[same[j]] = True
                total += w * ((1 - float(iou[j])) + abs(float(a.scores[i]) - float(b.scores[same[j]])))
                continue
        total += w * float(a.scores[i])
    total += sum(weight.get(int(b.labels[j]), 1.0) * float(b.scores[j]) for j in np.flatnonzero(~used))
    return total


def near_threshold(dets: Detections, thresholds: dict[int, float], weight: dict[int, float], default: float) -> float:
    t = np.array([thresholds.get(int(c), default) for c in dets.labels], np.float32)
    w = np.array([weight.get(int(c), 1.0) for c in dets.labels], np.float32)
    return float((w * np.clip(1 - np.abs(dets.scores - t) / WIDTH, 0, None)).sum())


def percentile(values: np.ndarray) -> np.ndarray:
    """Each value's rank in the pool, in [0, 1] (ties share their mean rank)."""
    if len(values) < 2:
        return np.ones_like(values, dtype=np.float64)
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    for v in np.unique(values):
        tie = values == v
        ranks[tie] = ranks[tie].mean()
    return ranks / (len(values) - 1)


def spread(points: np.ndarray, picks: int = SPREAD_PICKS) -> tuple[list[int], np.ndarray]:
    """Greedy k-center order of ``points`` (rows) from the origin: each next index is the point farthest from the
    origin and every point ordered before it. After ``picks`` of them (a label budget's worth: each costs a pass
    over the pool) the rest follow by their distance then. Returns the order and each point's distance when it
    was placed."""
    squares = np.einsum("ij,ij->i", points, points)
    nearest = squares.copy()  # squared distance to the origin and every point picked so far
    placed_at = np.zeros(len(points))
    left = np.ones(len(points), bool)
    order = []
    for _ in range(min(picks, len(points))):
        i = int(np.argmax(np.where(left, nearest, -1.0)))
        order.append(i)
        placed_at[i], left[i] = nearest[i], False
        nearest = np.minimum(nearest, np.maximum(squares + squares[i] - 2 * points @ points[i], 0.0))
    rest = np.flatnonzero(left)
    order += rest[np.argsort(-nearest[rest], kind="stable")].tolist()
    placed_at[rest] = nearest[rest]
    return order, np.sqrt(placed_at)


def rank(predictor: Predictor, files: list[Path], root: Path, thresholds: dict[int, float],
         class_ap: dict[int, float], names: dict[int, str], diverse: bool = True) -> list[Ranked]:
    """``files`` in the order to label them (see the module docstring): spread over the model's features by
    uncertainty when ``diverse`` and the predictor gives features, else by uncertainty alone."""
    from ..annotations.images import read_bgr

    if not files:
        raise DetftError(f"no images to rank in {root}")
    default = float(np.mean(list(thresholds.values()))) if thresholds else 0.5
    weight = {c: 1.0 + (1.0 - ap) for c, ap in class_ap.items()}
    embed = getattr(predictor, "embed", None) if diverse else None
    if diverse and embed is None:
        print("this model gives no features to spread the order over (an exported graph, or sliced inference): "
              "images are ordered by uncertainty alone")
    predictor.set_thresholds(FLOOR, 100)
    rows, features = [], []
    for path in progress(files, "ranking", unit="img"):
        rgb = np.ascontiguousarray(read_bgr(path)[..., ::-1])
        plain, flipped = predictor.predict([rgb, np.ascontiguousarray(rgb[:, ::-1])])
        plain, flipped = Detections(plain.boxes, plain.scores, plain.labels), mirrored(flipped, rgb.shape[1])
        if embed is not None:
            features.append(embed([rgb])[0])
        weakest = min((int(c) for c in plain.labels), key=lambda c: class_ap.get(c, 1.0), default=None)
        rows.append(Ranked(path.relative_to(root).as_posix(), 0.0,
                           round(near_threshold(plain, thresholds, weight, default), 6),
                           round(float(disagreement(plain, flipped, weight)), 6), len(plain),
                           names.get(weakest, "") if weakest is not None else ""))
    near = percentile(np.array([r.near_threshold for r in rows]))
    flip = percentile(np.array([r.flip_disagreement for r in rows]))
    for r, a, b in zip(rows, near, flip):
        r.score = 0.0 if r.detections == 0 and r.flip_disagreement == 0 else round(float(a + b) / 2, 6)
    by_uncertainty = sorted(range(len(rows)), key=lambda i: (-rows[i].score, rows[i].file))
    if not features:
        return [rows[i] for i in by_uncertainty]
    unit = np.stack(features).astype(np.float64)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    # the points in the uncertainty order, so ties (equal distances, the sure images at the origin) keep it
    points = unit[by_uncertainty] * np.array([rows[i].score for i in by_uncertainty])[:, None]
    order, distances = spread(points)
    for k, d in zip(by_uncertainty, distances):
        rows[k].distance = round(float(d), 6)
    return [rows[by_uncertainty[k]] for k in order]


def contact_sheet(predictor: Predictor, rows: list[Ranked], root: Path, names: dict[int, str], out: Path) -> None:
    """The top images with what the model sees in them (every detection above :data:`FLOOR`), rank and score in
    each caption: what a person is about to label."""
    from PIL import Image

    from ..annotations.images import read_bgr
    from ..annotations.preview import sheet

    tiles = []
    for k, r in enumerate(rows, 1):
        rgb = np.ascontiguousarray(read_bgr(root / r.file)[..., ::-1])
        drawn = predictor.predict([rgb])[0].draw(rgb, names, bgr=False)
        tiles.append((Image.fromarray(drawn), f"#{k} {r.score:.2f} {Path(r.file).name[:32]}"))
    sheet(tiles, out, caption_at_top=True)


def write(rows: list[Ranked], out: Path) -> int:
    """``rank.csv`` and ``rank.json`` in ``out`` (rank 1 = label first). A file name that is not UTF-8 is written
    with its odd bytes as ``\\xe9`` (text files hold no other bytes); returns how many were."""
    records = [{"rank": k, **asdict(r), "file": printable(r.file)} for k, r in enumerate(rows, 1)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(records[0]) if records else ["rank"])
    writer.writerows(list(r.values()) for r in records)
    atomic_write_text(out / "rank.csv", buf.getvalue())
    atomic_write_text(out / "rank.json", json.dumps(records, indent=1, ensure_ascii=False))
    return sum(r["file"] != row.file for r, row in zip(records, rows))
