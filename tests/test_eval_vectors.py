"""The evaluator reproduces published COCO evaluation cases to 1e-10 with both backends.

Expected numbers are read from ../shared/eval-vectors (never copied here by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detft.evaluation import BACKENDS, evaluate


def cases(root: Path) -> list[tuple[str, str, str, list[float]]]:
    expected = json.loads((root / "expected_stats_pycocotools_2.0.11.json").read_text())
    out = []
    for key, stats in expected.items():
        gt, dt, iou = key.split("|")
        out.append((gt, dt, iou, stats))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_published_vectors(eval_vectors: Path, backend: str):
    checked = 0
    for gt_name, dt_name, iou, stats in cases(eval_vectors):
        gt = json.loads((eval_vectors / gt_name).read_text())
        dets = json.loads((eval_vectors / dt_name).read_text())
        result = evaluate(gt, dets, iou, backend=backend)
        assert result.stats == pytest.approx(stats, abs=1e-10), (gt_name, dt_name, iou, backend)
        checked += 1
    assert checked == 6


def test_torchmetrics_per_class_ap_with_zero_based_ids(eval_vectors: Path):
    """torchmetrics publishes per-class AP for its 0-based case (class 3 has no GT: -1)."""
    gt = json.loads((eval_vectors / "torchmetrics_small" / "bbox4_gt.json").read_text())
    dets = json.loads((eval_vectors / "torchmetrics_small" / "bbox4_dt.json").read_text())
    rows = {r["id"]: r for r in evaluate(gt, dets, "bbox").per_class}
    published = [0.725, 0.800, 0.454, -1, 0.650, 0.900]  # from the vectors' README, 3 d.p.
    for cid, ap in enumerate(published):
        assert rows[cid]["AP"] == pytest.approx(ap, abs=5e-4)


def _two_box_case(ids: list[int]) -> tuple[dict, list[dict]]:
    gt = {"images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.jpg"}],
          "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": i, "image_id": 1, "category_id": 1, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                          for i, b in zip(ids, ([10, 10, 20, 20], [50, 50, 30, 30]))]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.8}]
    return gt, dets


@pytest.mark.parametrize("backend", BACKENDS)
def test_annotation_id_zero_pitfall_is_guarded(backend: str):
    gt, dets = _two_box_case([0, 1])
    # the pitfall itself: the raw libraries never match GT id 0
    from detft.evaluation.cocoeval import _prepare_dets, _run

    raw = _run(gt, _prepare_dets(dets, "bbox"), "bbox", backend, 100)
    raw.summarize()
    assert raw.stats[0] == pytest.approx(0.2525, abs=1e-4) and raw.stats[8] == pytest.approx(0.5)
    # detft's evaluator renumbers annotation ids and scores the perfect detections as perfect
    result = evaluate(gt, dets, "bbox", backend=backend)
    assert result.stats[0] == pytest.approx(1.0) and result.stats[8] == pytest.approx(1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_dets_is_explicit_and_applies_to_every_stat(backend: str):
    gt, dets = _two_box_case([1, 2])
    one = evaluate(gt, dets, "bbox", backend=backend, max_dets=1).stats_dict()
    assert one["AP"] == pytest.approx(0.5, abs=0.01) and one["AR1"] == pytest.approx(0.5)  # one box counted
    many = evaluate(gt, dets, "bbox", backend=backend, max_dets=300).stats_dict()
    assert many["AP"] == pytest.approx(1.0) and many["AR300"] == pytest.approx(1.0) and "AR100" not in many
