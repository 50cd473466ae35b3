"""detft's slicer against SAHI's on the same model and the same images: windows, detections matched, AP, time.

    python bench/sahi_compare.py --weights RUN --data DATA [--split val] [--slice 512] [--overlap 0.2] [--conf 0.05]

Run it from an environment that has both detft and ``sahi==0.12.8``. SAHI needs ``opencv-python``, which
shadows the ``opencv-python-headless`` detft installs, so keep that environment apart from detft's own:

    python -m venv /tmp/sahi-venv && /tmp/sahi-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 sahi==0.12.8
    /tmp/sahi-venv/bin/pip install -e .

Both slicers drive the very same detft predictor for every window (the run's own, un-sliced, at ``--conf``), so
what differs is only the cutting, the shifting and the merging: SAHI's ``get_sliced_prediction`` with its
defaults for a sliced-only pass (GREEDYNMM, IOS, 0.5, per class, no full-image pass) against
``detft.load(..., slice=...)``. Both are scored by detft's COCO evaluator on the full-size ground truth, and
their detections are matched one to one per image and class (IoU >= 0.5, Hungarian)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment


class SahiPredictor:
    """SAHI's slicing and merging behind detft's Predictor interface, the model call being detft's predictor."""

    def __init__(self, inner, size: int, overlap: float, conf: float):
        from sahi.models.base import DetectionModel
        from sahi.prediction import ObjectPrediction

        self.inner, self.size, self.overlap = inner, size, overlap
        self.labels, self.masks = inner.labels, False
        self.model_seconds = 0.0
        outer = self

        class Wrapped(DetectionModel):
            def load_model(self) -> None:
                self.model = inner

            def perform_inference(self, image: np.ndarray) -> None:
                t = time.perf_counter()
                self._original_predictions = inner.predict([np.ascontiguousarray(image)])[0]
                outer.model_seconds += time.perf_counter() - t

            def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=[[0, 0]],
                                                                         full_shape_list=None) -> None:
                d = self._original_predictions
                shift = shift_amount_list[0] if shift_amount_list else [0, 0]
                full = full_shape_list[0] if full_shape_list else None
                self._object_prediction_list_per_image = [[
                    ObjectPrediction(bbox=[float(v) for v in d.boxes[k]], category_id=int(d.labels[k]),
                                     category_name=str(int(d.labels[k])), score=float(d.scores[k]),
                                     shift_amount=shift, full_shape=full) for k in range(len(d))]]

        self.model = Wrapped(confidence_threshold=conf, load_at_init=True)

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.inner.set_thresholds(conf, max_dets)

    def predict(self, images: list[np.ndarray]):
        from sahi.predict import get_sliced_prediction

        from detft.inference.detections import Detections

        out = []
        for image in images:
            result = get_sliced_prediction(image, self.model, slice_height=self.size, slice_width=self.size,
                                           overlap_height_ratio=self.overlap, overlap_width_ratio=self.overlap,
                                           perform_standard_pred=False, verbose=0,
                                           force_postprocess_type=True)  # GREEDYNMM even at a low --conf
            preds = result.object_prediction_list
            boxes = np.array([p.bbox.to_xyxy() for p in preds], np.float32).reshape(-1, 4)
            out.append(Detections(boxes, np.array([p.score.value for p in preds], np.float32),
                                  np.array([p.category.id for p in preds], np.int64)))
        return out


def matched(a, b) -> tuple[int, list[float], list[float]]:
    """One-to-one matches of two detection sets (same class, IoU >= 0.5): count, their IoUs, score differences."""
    from torchvision.ops import box_iou
    import torch

    n, ious, dscore = 0, [], []
    for label in np.union1d(a.labels, b.labels):
        ia, ib = np.flatnonzero(a.labels == label), np.flatnonzero(b.labels == label)
        if not len(ia) or not len(ib):
            continue
        iou = box_iou(torch.from_numpy(a.boxes[ia]), torch.from_numpy(b.boxes[ib])).numpy()
        rows, cols = linear_sum_assignment(-iou)
        ok = iou[rows, cols] >= 0.5
        n += int(ok.sum())
        ious += iou[rows, cols][ok].tolist()
        dscore += np.abs(a.scores[ia[rows[ok]]] - b.scores[ib[cols[ok]]]).tolist()
    return n, ious, dscore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="a detft run (or its weights)")
    ap.add_argument("--data", required=True, help="the dataset whose --split is scored")
    ap.add_argument("--split", default="val")
    ap.add_argument("--slice", type=int, default=512)
    ap.add_argument("--overlap", type=float, default=0.2)
    ap.add_argument("--conf", type=float, default=0.05)
    ap.add_argument("--max-dets", type=int, default=300)
    ap.add_argument("--out", default="/tmp/detft-sahi-compare")
    a = ap.parse_args()
    import sahi
    from sahi.slicing import get_slice_bboxes

    import detft
    from detft.inference.sliced import SlicedPredictor
    from detft.annotations.images import read_rgb
    from detft.operations.tiling import windows

    ours = detft.load(a.weights, device="cpu", conf=a.conf, max_dets=a.max_dets, slice=a.slice,
                      slice_overlap=a.overlap)
    assert isinstance(ours.predictor, SlicedPredictor)
    theirs = detft.load(a.weights, device="cpu", conf=a.conf, max_dets=a.max_dets)
    theirs.predictor = theirs.scorer = SahiPredictor(theirs.predictor, a.slice, a.overlap, a.conf)
    dataset = ours.dataset(a.data)
    images = [im for im in dataset.images if im.split == a.split]
    same_windows, total, found_ours, found_sahi, ious, dscore = 0, 0, 0, 0, [], []
    for im in images:
        wins = windows(im.width, im.height, a.slice, a.overlap)
        sahi_wins = get_slice_bboxes(im.height, im.width, a.slice, a.slice, True, a.overlap, a.overlap)
        same_windows += sorted(map(tuple, sahi_wins)) == sorted(wins)
        rgb = read_rgb(im)
        d_ours, d_sahi = ours.predictor.predict([rgb])[0], theirs.predictor.predict([rgb])[0]
        n, i, s = matched(d_ours, d_sahi)
        total, found_ours, found_sahi = total + n, found_ours + len(d_ours), found_sahi + len(d_sahi)
        ious, dscore = ious + i, dscore + s
    rows = []
    for label, model in (("detft --slice", ours), (f"SAHI {sahi.__version__}", theirs)):
        doc = model.evaluate(a.data, a.split, out=Path(a.out) / label.split()[0].lower(), conf=a.conf,
                             max_dets=a.max_dets).doc
        stats = doc["metrics"]["bbox"]["stats"]
        rows.append((label, stats, doc["images_per_s"]))
    merge_ms = None
    if isinstance(theirs.predictor, SahiPredictor):  # SAHI's own cost beyond the model, per image, in the eval above
        t_model = theirs.predictor.model_seconds
        theirs.predictor.model_seconds = 0.0
        t = time.perf_counter()
        theirs.predictor.predict([read_rgb(images[0])])
        merge_ms = 1000 * (time.perf_counter() - t - theirs.predictor.model_seconds)
        theirs.predictor.model_seconds = t_model
    print(f"\n{len(images)} images; windows identical in {same_windows}/{len(images)}; conf {a.conf}, "
          f"slice {a.slice}, overlap {a.overlap}; detections: detft {found_ours}, SAHI {found_sahi}, "
          f"matched 1:1 {total} (mean IoU {np.mean(ious) if ious else float('nan'):.4f}, min "
          f"{min(ious) if ious else float('nan'):.4f}; max score difference {max(dscore) if dscore else 0:.2e})")
    if merge_ms is not None:
        print(f"SAHI slicing + merge beyond the model, first image: {merge_ms:.1f} ms")
    print(f"| {'slicer':<14} | {'AP':>6} | {'AP50':>6} | {'AP_small':>8} | {'images/s':>8} |")
    print(f"|{'-' * 16}|{'-' * 8}|{'-' * 8}|{'-' * 10}|{'-' * 10}|")
    for label, s, ips in rows:
        print(f"| {label:<14} | {s['AP']:6.4f} | {s['AP50']:6.4f} | {s['APs']:8.4f} | {ips:8.2f} |")


if __name__ == "__main__":
    main()
