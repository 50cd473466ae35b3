"""What to label next (#26): the signals `detft rank` orders images by, each checked on a model whose behaviour is
known (an oracle that sees only part of the image), and the order they give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import Oracle
from PIL import Image

from detft.inference.detections import Detections
from detft.labelling.ranking import disagreement, mirrored, near_threshold, percentile, rank


def dets(boxes, scores, labels) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(labels, np.int64))


def test_a_model_that_agrees_with_its_mirror_image_has_no_disagreement():
    a = dets([[10, 10, 30, 40], [50, 5, 60, 20]], [0.9, 0.4], [1, 2])
    flipped_pass = mirrored(mirrored(a, 100), 100)
    assert disagreement(a, flipped_pass, {}) == pytest.approx(0.0)
    missing = dets([[10, 10, 30, 40]], [0.9], [1])
    assert disagreement(a, missing, {}) == pytest.approx(0.4)  # the unmatched detection, by its score
    assert disagreement(a, missing, {2: 2.0}) == pytest.approx(0.8)  # a weak class weighs more
    moved = dets([[14, 10, 34, 40], [50, 5, 60, 20]], [0.9, 0.4], [1, 2])
    iou = (16 * 30) / (24 * 30)
    assert disagreement(a, moved, {}) == pytest.approx(1 - iou)


def test_near_threshold_counts_the_detections_the_model_cannot_decide():
    d = dets([[0, 0, 5, 5]] * 4, [0.5, 0.6, 0.75, 0.95], [1, 1, 1, 1])
    # kernel 1 - |s - t| / 0.25 at t = 0.5: 1, 0.6, 0, 0 (clipped)
    assert near_threshold(d, {1: 0.5}, {}, 0.5) == pytest.approx(1.6)
    assert near_threshold(d, {}, {1: 1.5}, 0.5) == pytest.approx(2.4)  # the default threshold, class weighted


def test_percentile_is_a_rank_in_0_1_with_ties_sharing_it():
    assert percentile(np.array([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    assert percentile(np.array([0.0, 0.0, 5.0])).tolist() == [0.25, 0.25, 1.0]


class LeftEyed(Oracle):
    """Sees objects in the left 60% of what it is shown only (and none scoring under its threshold): on its mirror
    image, an object on the left side of the image is missed, one in the middle is found both times."""

    def predict(self, images):
        out = []
        for im, d in zip(images, super().predict(images)):
            out.append(d.filter((d.boxes[:, 2] <= 0.6 * im.shape[1]) & (d.scores >= self.conf)))
        return out


def save(path: Path, blobs) -> Path:
    image = np.zeros((80, 160, 3), np.uint8)
    for k, (x0, y0, x1, y1) in blobs:
        image[y0:y1, x0:x1] = k
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def test_the_images_a_label_would_teach_most_come_first(tmp_path: Path):
    files = [save(tmp_path / "u" / "empty.png", []),
             save(tmp_path / "u" / "sure_centre.png", [(1, (70, 20, 90, 60))]),  # score 0.08, found both ways
             save(tmp_path / "u" / "unsure_side.png", [(2, (5, 10, 25, 40))]),  # 0.06: at b's threshold, and mirrored away
             save(tmp_path / "u" / "sure_side.png", [(1, (5, 10, 25, 30))])]  # 0.04 under the floor: not seen
    oracle = LeftEyed(masks=False)
    rows = rank(oracle, files, tmp_path / "u", {1: 0.5, 2: 0.06}, {1: 0.9, 2: 0.2}, {1: "a", 2: "b"})
    order = [r.file for r in rows]
    assert order[0] == "unsure_side.png" and rows[0].weakest_class == "b" and rows[0].flip_disagreement > 0
    score = {r.file: r.score for r in rows}
    assert score["empty.png"] == score["sure_side.png"] == 0.0 and set(order[-2:]) == {"empty.png", "sure_side.png"}
    assert rows[0].score > score["sure_centre.png"] > 0
    assert oracle.conf == pytest.approx(0.05)  # every signal reads detections from the floor up
