"""Evaluation around the COCO numbers: ground truth from a Dataset, results, confusion matrix, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_dataset

from detft.annotations.geometry import decode_mask, polygons_to_mask
from detft.cli import main
from detft.evaluation import evaluate
from detft.evaluation.confusion import confusion_matrix
from detft.evaluation.groundtruth import coco_groundtruth, to_results
from detft.inference import Detections


def mask_of(a, h: int, w: int) -> np.ndarray:
    if a.rle is not None:
        return decode_mask(a.rle).astype(bool)
    if a.polygons:
        return polygons_to_mask(a.polygons, h, w).astype(bool)
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = (int(round(v)) for v in a.bbox)
    m[y0:y1, x0:x1] = True
    return m


def perfect_detections(ds) -> list[Detections]:
    out = []
    for im in ds.images:
        anns = [a for a in im.annotations if not a.iscrowd]
        masks = np.stack([mask_of(a, im.height, im.width) for a in anns]) if anns else np.zeros((0, im.height, im.width), bool)
        out.append(Detections(np.array([a.bbox for a in anns], np.float32).reshape(-1, 4),
                              np.linspace(0.9, 0.5, len(anns)).astype(np.float32),
                              np.array([a.category_id for a in anns], np.int64), masks))
    return out


def test_perfect_predictions_score_one_and_no_image_is_decoded(tmp_path: Path, monkeypatch):
    ds = tiny_dataset(tmp_path, n_images=4)
    # the ground truth must come from annotations and sizes alone
    monkeypatch.setattr("PIL.Image.open", lambda *a, **k: pytest.fail("ground truth decoded an image"))
    gt = coco_groundtruth(ds, ds.images)
    dets = to_results(ds, perfect_detections(ds))
    assert min(a["id"] for a in gt["annotations"]) == 1 and [i["id"] for i in gt["images"]] == [1, 2, 3, 4]
    assert evaluate(gt, dets, "bbox").stats[:2] == pytest.approx([1.0, 1.0])
    # box-only objects are ignore regions in segm: their detections neither hit nor count as false
    assert any("segmentation" not in a for a in gt["annotations"])
    assert evaluate(gt, dets, "segm").stats[:2] == pytest.approx([1.0, 1.0])


def test_confusion_matrix_counts_hits_swaps_misses_and_false_positives():
    gt = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
                          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10]},
                          {"id": 3, "image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10]},
                          {"id": 4, "image_id": 2, "category_id": 1, "bbox": [50, 50, 5, 5], "iscrowd": 1}]}
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},   # hit a
            {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.8},  # b predicted as a
            {"image_id": 1, "category_id": 2, "bbox": [70, 70, 10, 10], "score": 0.7},  # false positive b
            {"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.1}]    # below conf: b missed
    m, ids = confusion_matrix(gt, dets, conf=0.25)
    assert ids == [1, 2]
    assert m.tolist() == [[1, 1, 0],
                          [0, 0, 1],
                          [0, 1, 0]]


def test_eval_cli_writes_everything_and_compares(eval_vectors: Path, tmp_path: Path, capsys):
    gt = eval_vectors / "detectron2_small" / "gt_annotations.json"
    dt = eval_vectors / "detectron2_small" / "detections.json"
    assert main(["eval", "--data", str(gt), "--dets", str(dt), "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", "--data", str(gt), "--dets", str(dt), "--out", str(tmp_path / "b"),
                 "--backend", "pycocotools", "--max-dets", "300"]) == 0
    doc = json.loads((tmp_path / "a" / "eval.json").read_text())
    expected = json.loads((eval_vectors / "expected_stats_pycocotools_2.0.11.json").read_text())
    key = "detectron2_small/gt_annotations.json|detectron2_small/detections.json|"
    for t in ("bbox", "segm"):
        assert list(doc["metrics"][t]["stats"].values()) == pytest.approx(expected[key + t], abs=1e-10)
    assert doc["settings"]["max_dets"] == 100 and doc["settings"]["score_threshold"] == 0.001
    for f in ("detections.json", "pr_bbox.png", "pr_segm.png", "confusion_matrix.png"):
        assert (tmp_path / "a" / f).stat().st_size > 0
    capsys.readouterr()
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "AR300" not in out and "+0.0000" in out and "person" in out


def test_eval_cli_bad_results_file_is_a_named_error(tmp_path: Path, eval_vectors: Path, capsys):
    gt = eval_vectors / "detectron2_small" / "gt_annotations.json"
    doc = json.loads(gt.read_text())
    det = {"image_id": doc["images"][0]["id"], "category_id": doc["categories"][0]["id"], "score": 0.5}
    (tmp_path / "d.json").write_text(json.dumps([det]))
    assert main(["eval", "--data", str(gt), "--dets", str(tmp_path / "d.json")]) == 1
    assert "d.json (detection 0): needs a 'bbox' or a 'segmentation'" in capsys.readouterr().err
