"""Checks on evaluation inputs a user hands in (``detft eval --data GT.json --dets RESULTS.json``).

COCOeval trusts its inputs: a NaN score sorts anywhere, a string id never matches, a 3-number box
raises an AssertionError deep inside, an unknown image id is silently scored as nothing. Every
problem here is a named error pointing at the file and the detection's index."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_groundtruth(gt: Any, path: Path) -> None:
    """A COCO ground-truth file with the three lists evaluation needs, and integer ids."""
    if not isinstance(gt, dict):
        raise FormatError(path, "a COCO ground-truth file is a JSON object")
    for key in ("images", "categories", "annotations"):
        if not isinstance(gt.get(key), list):
            raise FormatError(path, f"ground truth needs a '{key}' list" + (" (a results file was given as --data?)"
                                                                            if key == "images" else ""))
    for key in ("images", "categories"):
        for i, item in enumerate(gt[key]):
            if not isinstance(item, dict) or not _int_id(item.get("id")):
                raise FormatError(path, f"needs an integer 'id', got {item!r:.60}", obj=f"{key}[{i}]")
    for i, a in enumerate(gt["annotations"]):  # a NaN box is scored as an object nothing can match: AP changes
        obj = f"annotations[{i}]"
        if not isinstance(a, dict):
            raise FormatError(path, "is not an object", obj=obj)
        box = a.get("bbox")
        if box is not None and not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)
                                    and box[2] >= 0 and box[3] >= 0):
            raise FormatError(path, f"ground-truth bbox {box!r:.60} is not [x, y, width, height] with finite numbers "
                              "and width, height >= 0: fix or remove this object (it would be scored)", obj=obj)
        seg = a.get("segmentation")
        if isinstance(seg, list):  # published ground truth has polygons of under 3 points: only their numbers checked
            if not all(isinstance(part, list) and all(_number(v) for v in part) for part in seg):
                raise FormatError(path, "ground-truth polygon with a coordinate that is not a finite number: fix or "
                                  "remove this object (it would be scored)", obj=obj)
        elif seg is not None:
            _check_segmentation(seg, path, obj)


def validate_detections(dets: Any, gt: dict, path: Path) -> None:
    """Detections in COCO results format that refer to this ground truth."""
    if not isinstance(dets, list):
        raise FormatError(path, "a COCO results file is a JSON list of detections")
    if _plain_boxes_valid(dets, gt):
        return
    image_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    for i, d in enumerate(dets):
        obj = f"detection {i}"
        if not isinstance(d, dict):
            raise FormatError(path, "is not an object", obj=obj)
        if not _int_id(d.get("image_id")) or d["image_id"] not in image_ids:
            raise FormatError(path, f"image_id {d.get('image_id')!r:.40} is not an image of the ground truth", obj=obj)
        if not _int_id(d.get("category_id")) or d["category_id"] not in cat_ids:
            raise FormatError(path, f"category_id {d.get('category_id')!r:.40} is not a ground-truth category", obj=obj)
        if not _number(d.get("score")) or d["score"] < 0:
            raise FormatError(path, f"score {d.get('score')!r:.40} is not a finite number >= 0", obj=obj)
        if "bbox" not in d and "segmentation" not in d:
            raise FormatError(path, "needs a 'bbox' or a 'segmentation'", obj=obj)
        if "bbox" in d:
            box = d["bbox"]
            if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)) or box[2] < 0 or box[3] < 0:
                raise FormatError(path, f"bbox {box!r:.60} is not [x, y, width, height] with finite numbers and "
                                  "width, height >= 0", obj=obj)
        if "segmentation" in d:
            _check_segmentation(d["segmentation"], path, obj)


NUMBER = (int, float)


def _plain_boxes_valid(dets: list, gt: dict) -> bool:
    """The check below over whole columns at once, for the common file (boxes, no masks): True when every
    detection passes; False sends the file through the per-detection check, which names the first that does not."""
    if not all(type(d) is dict and "bbox" in d and "segmentation" not in d for d in dets):
        return False
    columns = [[d.get(k) for d in dets] for k in ("image_id", "category_id", "score", "bbox")]
    images, cats, scores, boxes = columns
    if not (all(type(v) is int for v in images) and all(type(v) is int for v in cats)
            and all(type(v) in NUMBER for v in scores)
            and all(type(b) is list and len(b) == 4 and all(type(v) in NUMBER for v in b) for b in boxes)):
        return False
    if not dets:
        return True
    try:
        known = np.isin(np.array(images, np.int64), np.array([im["id"] for im in gt["images"]], np.int64)).all() \
            and np.isin(np.array(cats, np.int64), np.array([c["id"] for c in gt["categories"]], np.int64)).all()
        score, box = np.array(scores, float), np.array(boxes, float)
    except OverflowError:  # an id past 64 bits: the per-detection check says which
        return False
    return bool(known and np.isfinite(score).all() and (score >= 0).all() and np.isfinite(box).all()
                and (box[:, 2:] >= 0).all())


def _check_segmentation(seg: Any, path: Path, obj: str) -> None:
    if isinstance(seg, list):
        if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(_number(v) for v in p)
                              for p in seg):
            raise FormatError(path, "polygon segmentation must be lists of 3+ finite x, y pairs", obj=obj)
        return
    if not isinstance(seg, dict):
        raise FormatError(path, f"segmentation must be polygons or an RLE object, not {type(seg).__name__}", obj=obj)
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_int_id(v) and v > 0 for v in size)):
        raise FormatError(path, f"RLE 'size' {size!r:.40} is not [height, width]", obj=obj)
    if isinstance(counts, list):
        if not all(_int_id(v) and v >= 0 for v in counts) or sum(counts) != size[0] * size[1]:
            raise FormatError(path, "uncompressed RLE 'counts' must be non-negative integers summing to height*width",
                              obj=obj)
    elif isinstance(counts, str):
        from pycocotools import mask as mask_utils

        try:
            area = mask_utils.area({"size": size, "counts": counts.encode("ascii")})
        except Exception as e:  # noqa: BLE001  pycocotools raises several types for a bad string
            raise FormatError(path, f"compressed RLE 'counts' cannot be decoded ({e})", obj=obj) from None
        if area > size[0] * size[1]:
            raise FormatError(path, "compressed RLE 'counts' covers more pixels than height*width", obj=obj)
    else:
        raise FormatError(path, "RLE 'counts' must be a string or a list of integers", obj=obj)
