"""What to label next (``detft rank``): unlabelled images ordered by how much a label would teach the model.

Three signals, each a property of the model on that image, none needing a label:

- **near the threshold**: detections whose score is close to their class's ``--conf auto`` threshold are the
  ones the model cannot decide; each counts by a triangular kernel of its distance to the threshold (1 at the
  threshold, 0 at ``WIDTH`` away);
- **flip disagreement**: the image and its mirror image should give mirrored detections; a detection the other
  pass does not find (same class, IoU >= 0.5), or finds elsewhere, is one the model is unsure of (consistency,
  as in CALD and CSD), counted by its score and by 1 - IoU;
- **weak classes**: each detection is weighted by 1 + (1 - AP of its class) from the run's evaluation, so
  images holding what the model is worst at come first.

The first two are ranked over the pool and averaged (their scales differ), so an image is high when both say the
model would learn from it. Images without a detection score 0 (the model sees nothing to doubt there)."""

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


@dataclass
class Ranked:
    file: str
    score: float
    near_threshold: float
    flip_disagreement: float
    detections: int
    weakest_class: str


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


def rank(predictor: Predictor, files: list[Path], root: Path, thresholds: dict[int, float],
         class_ap: dict[int, float], names: dict[int, str]) -> list[Ranked]:
    """``files`` in falling order of how informative a label would be (see the module docstring)."""
    from ..annotations.images import read_bgr

    if not files:
        raise DetftError(f"no images to rank in {root}")
    default = float(np.mean(list(thresholds.values()))) if thresholds else 0.5
    weight = {c: 1.0 + (1.0 - ap) for c, ap in class_ap.items()}
    predictor.set_thresholds(FLOOR, 100)
    rows = []
    for path in progress(files, "ranking", unit="img"):
        rgb = read_bgr(path)[..., ::-1]
        plain, flipped = predictor.predict([np.ascontiguousarray(rgb), np.ascontiguousarray(rgb[:, ::-1])])
        plain, flipped = Detections(plain.boxes, plain.scores, plain.labels), mirrored(flipped, rgb.shape[1])
        weakest = min((int(c) for c in plain.labels), key=lambda c: class_ap.get(c, 1.0), default=None)
        rows.append(Ranked(path.relative_to(root).as_posix(), 0.0,
                           round(near_threshold(plain, thresholds, weight, default), 6),
                           round(float(disagreement(plain, flipped, weight)), 6), len(plain),
                           names.get(weakest, "") if weakest is not None else ""))
    near = percentile(np.array([r.near_threshold for r in rows]))
    flip = percentile(np.array([r.flip_disagreement for r in rows]))
    for r, a, b in zip(rows, near, flip):
        r.score = 0.0 if r.detections == 0 and r.flip_disagreement == 0 else round(float(a + b) / 2, 6)
    return sorted(rows, key=lambda r: (-r.score, r.file))


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
