"""COCO metrics through one function, whichever library computes them.

faster-coco-eval (default) and pycocotools give the same 12 stats to ~1e-16 (checked in the tests
against published vectors); the wrapper adds only what both lack: explicit max detections,
per-class AP, a guard against annotation id 0 (pycocotools never matches it), and segm evaluation
on mask area rather than box area (the box is dropped from segm detections, as Detectron2 does)."""

from __future__ import annotations

import contextlib
import gc
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_utils

Backend = Literal["faster", "pycocotools"]
BACKENDS: tuple[str, ...] = ("faster", "pycocotools")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class IouTypeResult:
    iou_type: str
    stats: list[float]
    per_class: list[dict[str, Any]]
    precision: np.ndarray  # [iou thresholds, recall points, classes] at area "all", largest maxDets
    cat_ids: list[int]
    max_dets: int

    def stats_dict(self) -> dict[str, float]:
        names = list(STAT_NAMES)
        if self.max_dets != 100:
            names[8] = f"AR{self.max_dets}"
        return dict(zip(names, self.stats))


@dataclass
class GroundTruthFix:
    renumbered_annotation_ids: bool = False
    notes: list[str] = field(default_factory=list)


def sanitize_groundtruth(gt: dict) -> tuple[dict, GroundTruthFix]:
    """Return ``gt`` with annotation ids 1..N when any id is 0, missing or repeated, and with ``iscrowd`` and
    ``area`` on every object (:func:`_object_area`).

    pycocotools stores the matched GT id per detection and reads 0 as "unmatched", so a GT box with
    id 0 can never be a true positive (two perfect detections score AP 0.25). Only annotation ids are
    renumbered: image and category ids are what detections refer to and stay as they are."""
    fix = GroundTruthFix()
    ids = [a.get("id") for a in gt.get("annotations", [])]
    if any(not isinstance(i, int) or i <= 0 for i in ids) or len(set(ids)) != len(ids):
        gt = dict(gt)
        gt["annotations"] = [{**a, "id": k} for k, a in enumerate(gt["annotations"], start=1)]
        fix.renumbered_annotation_ids = True
        fix.notes.append("ground-truth annotation ids renumbered 1..N (id 0 is never matched by COCOeval)")
    if not all("iscrowd" in a and "area" in a for a in gt.get("annotations", [])):
        sizes = {im["id"]: (im.get("height"), im.get("width")) for im in gt.get("images", [])}
        gt = {**gt, "annotations": [a if "iscrowd" in a and "area" in a else
                                    {"iscrowd": 0, "area": _object_area(a, sizes.get(a["image_id"])), **a}
                                    for a in gt["annotations"]]}
        fix.notes.append("ground-truth objects without 'iscrowd' or 'area' given 0 and their mask's (or box's) area")
    return gt, fix


def _object_area(a: dict, size: tuple[Any, Any] | None) -> float:
    """The area COCO gives an object: its mask's (polygons drawn at the image's ``size``), else its box's. Filled in
    where a file leaves it out: pycocotools indexes ``area`` (and ``iscrowd``) on every object, raising KeyError
    without them, and faster-coco-eval reads a missing area as 0, every object small (APm and APl -1)."""
    seg = a.get("segmentation")
    if isinstance(seg, dict):
        h, w = seg["size"]
        counts = seg["counts"]
        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(counts, list) else \
            {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
        return float(mask_utils.area(rle))
    if seg and size is not None and all(isinstance(v, int) and v > 0 for v in size):
        return float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(seg, *size))))
    return float(a["bbox"][2] * a["bbox"][3])


def _segm_groundtruth(gt: dict) -> dict:
    """Objects without a mask cannot be scored as masks: in segm evaluation they become box-shaped
    ignore regions (crowd), so a detection of them is neither a hit nor a false positive."""
    anns = gt.get("annotations", [])
    if all("segmentation" in a and a["segmentation"] for a in anns):
        return gt
    fixed = []
    for a in anns:
        if not a.get("segmentation"):
            x, y, w, h = a["bbox"]
            a = {**a, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]], "iscrowd": 1}
        fixed.append(a)
    return {**gt, "annotations": fixed}


def result_box(d: dict) -> list[float]:
    if "bbox" in d:
        return d["bbox"]
    seg = d["segmentation"]
    if isinstance(seg, list):  # polygons
        xs = [x for p in seg for x in p[0::2]]
        ys = [y for p in seg for y in p[1::2]]
        return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    rle = {"size": seg["size"], "counts": seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"]}
    return [float(v) for v in mask_utils.toBbox(rle)]


def _prepare_dets(dets: list[dict], iou_type: str) -> list[dict]:
    """Copies of the detections with only what this iou type needs (loadRes mutates its input).

    segm: the box is dropped so the area used for small/medium/large is the mask's; bbox: a missing
    box is derived from the mask, as pycocotools' loadRes does for segmentation-only results."""
    if iou_type == "segm":
        return [{k: v for k, v in d.items() if k != "bbox"} for d in dets if "segmentation" in d]
    return [{"image_id": d["image_id"], "category_id": d["category_id"], "bbox": d["bbox"] if "bbox" in d else
             result_box(d), "score": d["score"]} for d in dets]


def _run(gt: dict, dets: list[dict], iou_type: str, backend: str, max_dets: int):
    quiet = contextlib.redirect_stdout(io.StringIO())
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        with quiet:
            coco_gt = COCO(gt)
            coco_dt = coco_gt.loadRes(dets) if dets else COCO()
            ev = COCOeval_faster(coco_gt, coco_dt, iou_type)
    elif backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with quiet:
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dets) if dets else COCO()
            ev = COCOeval(coco_gt, coco_dt, iou_type)
    else:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    ev.params.maxDets = sorted({1, 10, max_dets})  # accumulate() needs them sorted and unique
    with quiet:
        ev.evaluate()
        ev.accumulate()
    return ev


def _mean_valid(a: np.ndarray) -> float:
    valid = a[a > -1]
    return float(valid.mean()) if valid.size else -1.0


def summarize(ev: Any, max_dets: int) -> list[float]:
    """The 12 COCO stats from the accumulated arrays, as COCOeval.summarize computes them but
    for the configured max detections (both libraries hard-code 100 there)."""
    precision = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    recall = np.asarray(ev.eval["recall"])  # [T, K, A, M]
    thr = np.asarray(ev.params.iouThrs)
    t50, t75 = int(np.argmin(abs(thr - 0.5))), int(np.argmin(abs(thr - 0.75)))
    md = list(ev.params.maxDets)
    m1, m10, m = md.index(1), md.index(10), md.index(max_dets)
    return [
        _mean_valid(precision[:, :, :, 0, m]), _mean_valid(precision[t50, :, :, 0, m]),
        _mean_valid(precision[t75, :, :, 0, m]), _mean_valid(precision[:, :, :, 1, m]),
        _mean_valid(precision[:, :, :, 2, m]), _mean_valid(precision[:, :, :, 3, m]),
        _mean_valid(recall[:, :, 0, m1]), _mean_valid(recall[:, :, 0, m10]), _mean_valid(recall[:, :, 0, m]),
        _mean_valid(recall[:, :, 1, m]), _mean_valid(recall[:, :, 2, m]), _mean_valid(recall[:, :, 3, m]),
    ]


def _per_class(ev: Any, cat_names: dict[int, str], gt: dict, max_dets: int) -> list[dict[str, Any]]:
    m = list(ev.params.maxDets).index(max_dets)
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    recall = ev.eval["recall"]  # [T, K, A, M]
    n_gt: dict[int, int] = {}
    for a in gt.get("annotations", []):
        if not a.get("iscrowd", 0):
            n_gt[a["category_id"]] = n_gt.get(a["category_id"], 0) + 1
    rows = []
    for k, cid in enumerate(ev.params.catIds):
        rows.append({
            "id": int(cid), "name": cat_names.get(cid, str(cid)), "gt": n_gt.get(cid, 0),
            "AP": _mean_valid(precision[:, :, k, 0, m]), "AP50": _mean_valid(precision[0, :, k, 0, m]),
            "AR": _mean_valid(recall[:, k, 0, m]),
        })
    return rows


@contextlib.contextmanager
def _gc_paused():
    """Both libraries allocate a dict or two per detection (10^6 for a 5k-image set) and no cycles;
    the cyclic collector's repeated passes over them cost ~25% of the whole evaluation."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def evaluate(gt: dict, dets: list[dict], iou_type: str = "bbox", backend: str = "faster",
             max_dets: int = 100) -> IouTypeResult:
    """COCO evaluation of ``dets`` (COCO results format) against the ``gt`` instances dict."""
    with _gc_paused():
        return _evaluate(gt, dets, iou_type, backend, max_dets)


def _evaluate(gt: dict, dets: list[dict], iou_type: str, backend: str, max_dets: int) -> IouTypeResult:
    gt, _ = sanitize_groundtruth(gt)
    if iou_type == "segm":
        gt = _segm_groundtruth(gt)
    ev = _run(gt, _prepare_dets(dets, iou_type), iou_type, backend, max_dets)
    names = {c["id"]: c["name"] for c in gt.get("categories", [])}
    return IouTypeResult(iou_type, summarize(ev, max_dets), _per_class(ev, names, gt, max_dets),
                         np.asarray(ev.eval["precision"])[:, :, :, 0, list(ev.params.maxDets).index(max_dets)],
                         [int(c) for c in ev.params.catIds],
                         max_dets)
