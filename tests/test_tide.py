"""The error breakdown (TIDE): hand-built cases whose answers are known, and the reference package on data
where both run."""

from __future__ import annotations

import numpy as np
import pytest

from detft.evaluation.tide import error_breakdown, tide_ap


def coco(objects: list[tuple[int, int, list[float]]], images: int = 1, crowd: tuple[int, ...] = ()) -> dict:
    """(image, class, xywh) objects; indices in ``crowd`` are crowd regions."""
    return {"images": [{"id": i, "width": 200, "height": 200} for i in range(1, images + 1)],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [{"id": k + 1, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3],
                             "iscrowd": int(k in crowd)} for k, (im, c, b) in enumerate(objects)]}


def det(image: int, cls: int, box: list[float], score: float) -> dict:
    return {"image_id": image, "category_id": cls, "bbox": box, "score": score}


def test_each_error_type_is_named_and_fixing_it_gives_back_what_it_cost():
    gt = coco([(1, 1, [0, 0, 20, 20]), (1, 1, [100, 100, 20, 20]), (1, 2, [50, 0, 20, 20]), (1, 1, [0, 150, 20, 20])])
    dets = [det(1, 1, [0, 0, 20, 20], 0.9),  # true positive
            det(1, 1, [1, 0, 20, 20], 0.8),  # duplicate of it
            det(1, 1, [105, 105, 20, 20], 0.7),  # localisation: IoU 0.39 with the object at 100,100
            det(1, 1, [50, 0, 20, 20], 0.6),  # classification: the class-2 object, called class 1
            det(1, 2, [160, 60, 20, 20], 0.5)]  # background
    e = error_breakdown(gt, dets)
    assert e["counts"] == {"classification": 1, "localisation": 1, "both": 0, "duplicate": 1, "background": 1,
                           "missed": 1}  # the object at 0,150: nothing points at it
    # class 1: 3 objects, scores TP .9, FP .8, FP .7, FP .6 -> precision 1 up to recall 1/3; class 2: 1 object,
    # one FP -> AP 0. TIDE's 101-point AP of class 1: 34 of 101 points at precision 1.
    assert e["ap50"] == pytest.approx((34 / 101 + 0) / 2, abs=1e-6)
    # localisation fixed: the .7 detection becomes the object's TP -> class 1 TP .9, FP .8, TP .7, FP .6
    loc = ((34 + 33 * (2 / 3)) / 101 + 0) / 2
    assert e["dAP"]["localisation"] == pytest.approx(loc - e["ap50"], abs=1e-6)
    # classification fixed: it becomes class 2's TP -> class 2 AP 1 (its FP scores .5 < .6)
    assert e["dAP"]["classification"] == pytest.approx((34 / 101 + 1) / 2 - e["ap50"], abs=1e-6)
    # missed fixed: the object leaves class 1's ground truth -> 2 objects, TP then 3 FPs: recall 1/2 at precision 1
    assert e["dAP"]["missed"] == pytest.approx((51 / 101) / 2 - e["ap50"], abs=1e-6)
    # background fixed: class 2 loses its only FP and is still scored (it has an object): AP 0, no gain
    assert e["dAP"]["background"] == 0.0


def test_a_detection_inside_a_crowd_region_is_neither_right_nor_wrong():
    gt = coco([(1, 1, [0, 0, 20, 20]), (1, 1, [100, 100, 80, 80])], crowd=(1,))
    e = error_breakdown(gt, [det(1, 1, [0, 0, 20, 20], 0.9), det(1, 1, [110, 110, 20, 20], 0.95)])
    assert e["counts"] == dict.fromkeys(e["counts"], 0) and e["ap50"] == pytest.approx(1.0)


def test_detections_on_images_without_objects_are_background_errors():
    gt = coco([(1, 1, [0, 0, 20, 20])], images=2)
    e = error_breakdown(gt, [det(1, 1, [0, 0, 20, 20], 0.5), det(2, 1, [0, 0, 20, 20], 0.9)])
    assert e["counts"]["background"] == 1 and e["dAP"]["background"] > 0.4
    assert tide_ap(np.zeros(0, int), np.zeros(0), np.zeros(0, bool), {}) == 0.0


def random_case(seed: int, images: int = 30):
    rng = np.random.default_rng(seed)
    objects, dets = [], []
    for im in range(1, images + 1):
        for _ in range(rng.integers(0, 6)):
            x, y, w, h = rng.uniform(0, 500), rng.uniform(0, 400), rng.uniform(10, 120), rng.uniform(10, 120)
            c = int(rng.integers(1, 3))
            objects.append((im, c, [x, y, w, h]))
            if rng.random() < 0.15:
                continue  # missed
            for _ in range(1 + int(rng.random() < 0.2)):  # sometimes a duplicate
                jitter = rng.choice([2, 10, 35])
                cls = c if rng.random() > 0.15 else int(rng.integers(1, 3))
                dets.append(det(im, cls, [x + rng.normal(0, jitter), y + rng.normal(0, jitter), w * rng.uniform(0.7, 1.3),
                                          h * rng.uniform(0.7, 1.3)], float(rng.random())))
        for _ in range(rng.integers(0, 3)):
            dets.append(det(im, int(rng.integers(1, 3)), [rng.uniform(0, 500), rng.uniform(0, 400), 30, 30],
                            float(rng.random() * 0.6)))
    return coco(objects, images), dets


@pytest.mark.parametrize("seed", range(4))
def test_the_breakdown_matches_tides_reference_package(seed: int):
    tidecv = pytest.importorskip("tidecv", reason="tidecv (TIDE's reference) is installed by .ci/run --no-deps")
    gt, dets = random_case(seed)
    ref_gt, ref_dets = tidecv.Data("gt"), tidecv.Data("dets")
    for im in gt["images"]:  # tidecv only visits images it was told about: register the ones without objects too
        ref_gt.add_image(im["id"], str(im["id"]))
    for a in gt["annotations"]:
        ref_gt.add_ground_truth(a["image_id"], a["category_id"], a["bbox"])
    for d in dets:
        ref_dets.add_detection(d["image_id"], d["category_id"], d["score"], d["bbox"])
    run = tidecv.TIDE().evaluate(ref_gt, ref_dets, mode=tidecv.TIDE.BOX)
    names = {"Cls": "classification", "Loc": "localisation", "Both": "both", "Dupe": "duplicate", "Bkg": "background",
             "Miss": "missed"}
    ours = error_breakdown(gt, dets)
    assert ours["ap50"] == pytest.approx(run.ap / 100, abs=1e-6)
    assert {names[k.short_name]: n for k, n in run.count_errors().items()} == ours["counts"]
    for kind, gain in run.fix_main_errors().items():
        assert ours["dAP"][names[kind.short_name]] == pytest.approx(gain / 100, abs=1e-6), kind.short_name
    special = {k.short_name: v / 100 for k, v in run.fix_special_errors().items()}
    assert ours["special"]["false_positives"] == pytest.approx(special["FalsePos"], abs=1e-6)
    assert ours["special"]["false_negatives"] == pytest.approx(special["FalseNeg"], abs=1e-6)
