"""The written evaluation's extras (#36): TIDE's breakdown, the threshold matching behind ``--conf auto`` and the
worst images, and the confusion matrix, now one vectorised pass over shared overlaps, equal to the per-image loops
they replaced (``eval_reference.py``, the code as it was) on random sets with duplicates, wrong classes, crowd
regions, more detections than ``max_dets``, equal scores and images without objects."""

from __future__ import annotations

import numpy as np
import pytest
from eval_reference import reference_confusion, reference_error_breakdown, reference_match

from detft.evaluation.confusion import confusion_matrix
from detft.evaluation.matching import Overlaps
from detft.evaluation.thresholds import f1_thresholds, match
from detft.evaluation.tide import error_breakdown
from detft.evaluation.worst import worst_images


def random_set(seed: int, images: int = 25, crowd: bool = True):
    rng = np.random.default_rng(seed)
    gt = {"images": [{"id": 10 + i, "width": 300, "height": 300, "file_name": f"{i}.jpg"} for i in range(images)],
          "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 5)], "annotations": []}
    dets = []
    for im in gt["images"]:
        for _ in range(rng.integers(0, 7)):
            box = [*rng.uniform(0, 250, 2), *rng.uniform(5, 80, 2)]
            cat = int(rng.choice([1, 2, 5]))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": im["id"], "category_id": cat,
                                      "bbox": box, "area": box[2] * box[3],
                                      "iscrowd": int(crowd and rng.random() < 0.1)})
            for _ in range(rng.integers(0, 4)):  # found, duplicated, shifted, or called something else
                jitter = rng.choice([1, 8, 25])
                dets.append({"image_id": im["id"], "category_id": cat if rng.random() > 0.2 else int(rng.choice([1, 2, 5])),
                             "bbox": [box[0] + rng.normal(0, jitter), box[1] + rng.normal(0, jitter), box[2], box[3]],
                             "score": float(np.round(rng.random(), 1))})  # rounded: many equal scores
        for _ in range(rng.integers(0, 5)):
            dets.append({"image_id": im["id"], "category_id": int(rng.choice([1, 2, 5])),
                         "bbox": [*rng.uniform(0, 250, 2), 20.0, 20.0], "score": float(rng.random())})
    return gt, dets


@pytest.mark.parametrize("seed", range(6))
def test_the_shared_pass_equals_the_per_image_loops(seed: int):
    gt, dets = random_set(seed, crowd=seed % 2 == 0)
    shared = Overlaps.of(gt, dets)
    for max_dets in (100, 3):
        assert error_breakdown(gt, dets, max_dets, shared=shared) == reference_error_breakdown(gt, dets, max_dets)
    for conf in (0.0, 0.3):
        ours, ref = confusion_matrix(gt, dets, conf, shared=shared), reference_confusion(gt, dets, conf)
        assert np.array_equal(ours[0], ref[0]) and ours[1] == ref[1]
    ours, ref = match(gt, dets, shared=shared), reference_match(gt, dets)
    assert sorted(zip(ours.score, ours.image, ours.category, ours.tp)) == sorted(zip(ref.score, ref.image, ref.category,
                                                                                   ref.tp))
    assert np.array_equal(ours.score, ref.score) and ours.objects == ref.objects
    for target in (None, 0.6):
        a, b = f1_thresholds(gt, ours, target), f1_thresholds(gt, ref, target)
        curves_a, curves_b = a.pop("curves"), b.pop("curves")
        assert a == b and all(np.array_equal(curves_a[k][f], curves_b[k][f]) for k in curves_a for f in curves_a[k])
        assert worst_images(ours, gt, a) == worst_images(ref, gt, b)


def test_no_detections_and_no_objects():
    gt, dets = random_set(1, images=3)
    for g, d in ((gt, []), ({**gt, "annotations": []}, dets)):
        assert error_breakdown(g, d) == reference_error_breakdown(g, d)
        assert np.array_equal(confusion_matrix(g, d)[0], reference_confusion(g, d)[0])
        assert len(match(g, d).score) == len(reference_match(g, d).score)
