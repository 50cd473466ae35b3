"""Checks on evaluation inputs a user hands in (``detft eval --data GT.json --dets RESULTS.json``).

COCOeval trusts its inputs: a NaN score sorts anywhere, a string id never matches, a 3-number box
raises an AssertionError deep inside, an unknown image id is silently scored as nothing, an RLE of another
size than its image scores 0, and one whose counts do not cover its image hangs the evaluator. A problem with
an id, a score or a box is a named error pointing at the file and the detection's index. A segmentation that
cannot be scored is left out and reported, one line per detection, since the rest of the file can still be
scored: only a file none of whose segmentations can be scored, against ground truth that has masks, is an error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import FormatError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_groundtruth(gt: Any, path: Path) -> None:
    """A COCO ground-truth file with the three lists evaluation needs, integer ids, each image listed once, and
    objects with a box on a listed image of a listed category (the evaluators and the extras index all three)."""
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
    listed: dict[int, int] = {}
    for i, im in enumerate(gt["images"]):
        if listed.setdefault(im["id"], i) != i:
            raise FormatError(path, f"image id {im['id']} is listed twice (images[{listed[im['id']]}] too)",
                              obj=f"images[{i}]")
    sizes = image_sizes(gt)
    categories = {c["id"] for c in gt["categories"]}
    for i, a in enumerate(gt["annotations"]):  # a NaN box is scored as an object nothing can match: AP changes
        obj = f"annotations[{i}]"
        if not isinstance(a, dict):
            raise FormatError(path, "is not an object", obj=obj)
        if not _int_id(a.get("image_id")) or a["image_id"] not in listed:
            raise FormatError(path, f"image_id {a.get('image_id')!r:.40} is not an image of 'images'", obj=obj)
        if not _int_id(a.get("category_id")) or a["category_id"] not in categories:
            raise FormatError(path, f"category_id {a.get('category_id')!r:.40} is not a category of 'categories'",
                              obj=obj)
        box = a.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box) and box[2] >= 0
                and box[3] >= 0):
            raise FormatError(path, f"ground-truth bbox {box!r:.60} is not [x, y, width, height] with finite numbers "
                              "and width, height >= 0: fix or remove this object (it would be scored)", obj=obj)
        seg = a.get("segmentation")
        if isinstance(seg, list):  # published ground truth has polygons of under 3 points: only their numbers checked
            if not all(isinstance(part, list) and all(_number(v) for v in part) for part in seg):
                raise FormatError(path, "ground-truth polygon with a coordinate that is not a finite number: fix or "
                                  "remove this object (it would be scored)", obj=obj)
            if seg and a["image_id"] not in sizes:
                raise FormatError(path, f"polygons on image {a['image_id']}, which has no integer width and height "
                                  "to draw them at", obj=obj)
        elif seg is not None:
            mask, why = usable_segmentation(seg, sizes.get(a["image_id"]))
            if mask is None:
                raise FormatError(path, f"ground-truth segmentation: {why}", obj=obj)


def image_sizes(gt: dict) -> dict[int, tuple[int, int]]:
    """(height, width) of each image that gives both as positive integers: the size its masks are drawn at."""
    return {im["id"]: (im["height"], im["width"]) for im in gt["images"]
            if all(_int_id(im.get(k)) and im[k] > 0 for k in ("height", "width"))}


def validate_detections(dets: Any, gt: dict, path: Path) -> tuple[list[dict], list[str]]:
    """Detections in COCO results format that refer to this ground truth: the detections to score (masks as
    compressed RLE) and one line per detection whose segmentation cannot be scored, which is left out (its box is
    still scored; one with no box is not scored at all). A named error when nothing could be scored, or no
    segmentation could while the ground truth has masks."""
    if not isinstance(dets, list):
        raise FormatError(path, "a COCO results file is a JSON list of detections")
    if _plain_boxes_valid(dets, gt):
        return dets, []
    image_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    sizes = image_sizes(gt)
    kept: list[dict] = []
    unusable: list[tuple[int, str]] = []  # (index, the line that names it)
    first_why = ""
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
            mask, why = usable_segmentation(d["segmentation"], sizes.get(d["image_id"]))
            if mask is None:
                first_why = first_why or why
                unusable.append((i, f"{obj} (image {d['image_id']}): {why}"
                                    + ("" if "bbox" in d else ", and it has no bbox: not scored at all")))
                if "bbox" not in d:
                    continue
                d = {k: v for k, v in d.items() if k != "segmentation"}
            elif mask is not d["segmentation"]:
                d = {**d, "segmentation": mask}
        kept.append(d)
    masks_scored = any("segmentation" in a for a in gt["annotations"])
    if unusable and (not kept or masks_scored and not any("segmentation" in d for d in kept)):
        left = ("no detection is left to score" if not kept else
                "none can be scored, while the ground truth has masks to score them against")
        raise FormatError(path, f"{first_why}; {len(unusable)} of its segmentations cannot be scored, and {left}",
                          obj=f"detection {unusable[0][0]}")
    return kept, [line for _, line in unusable]


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


def usable_segmentation(seg: Any, size: tuple[int, int] | None) -> tuple[dict | None, str]:
    """``seg`` as a compressed RLE (counts as text) both evaluators score, or None and why it cannot be scored.
    COCO results hold masks as compressed RLE: polygons (at ``size``, the image's (height, width)) and uncompressed
    RLE are encoded here; a compressed RLE is decoded to check that its runs cover exactly its size."""
    if isinstance(seg, list):
        if why := _polygon_problem(seg):
            return None, why
        if size is None:
            return None, "polygons, but its image has no integer width and height to draw them at"
        return _as_text(mask_utils.merge(mask_utils.frPyObjects(seg, *size))), ""
    if not isinstance(seg, dict):
        return None, f"a {type(seg).__name__}, not polygons or an RLE object"
    rle_size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(_int_id(v) and v > 0 for v in rle_size)):
        return None, f"RLE size {rle_size!r:.40} is not [height, width]"
    if size is not None and tuple(rle_size) != size:
        return None, f"RLE size {rle_size} is not its image's [{size[0]}, {size[1]}]"
    pixels = rle_size[0] * rle_size[1]
    if isinstance(counts, list):
        if not all(_int_id(v) and v >= 0 for v in counts) or sum(counts) != pixels:
            return None, "uncompressed RLE counts are not non-negative integers summing to height*width"
        return _as_text(mask_utils.frPyObjects(seg, *rle_size)), ""
    if not isinstance(counts, str):
        return None, "RLE counts are neither a string nor a list of integers"
    runs = rle_runs(counts)
    if runs is None or min(runs, default=0) < 0 or sum(runs) != pixels:
        return None, "compressed RLE counts do not decode to runs covering height*width pixels"
    return seg, ""


def _polygon_problem(seg: list) -> str:
    """Why a list is not polygons of 3+ finite (x, y) points, or ``""``."""
    if not seg:
        return "an empty list of polygons"
    for part in seg:
        if not isinstance(part, list) or not all(_number(v) for v in part):
            return f"a polygon {part!r:.40} that is not a list of finite numbers"
        if len(part) % 2:
            return f"a polygon of odd length ({len(part)} numbers, not x, y pairs)"
        if len(part) < 6:
            return f"a polygon of {len(part) // 2} points (3 or more make an area)"
    return ""


def _as_text(rle: dict) -> dict:
    """A pycocotools RLE with its counts as text, as a results file holds it."""
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


MAX_RUN_BITS = 35  # 7 groups of 5 bits: a run of 2**32 pixels or more is no image's (pycocotools stores uint32)


def rle_runs(counts: str) -> list[int] | None:
    """The run lengths a COCO compressed RLE string encodes (pycocotools' rleFrString, exactly), or None when the
    string is not one: pycocotools decodes any string, and a run list that stops short of the image's pixels
    hangs faster-coco-eval, so the runs are checked here before either sees them."""
    if not counts.isascii():
        return None
    runs: list[int] = []
    value = shift = 0
    for char in counts.encode("ascii"):
        c = char - 48
        if not 0 <= c < 64 or shift >= MAX_RUN_BITS:
            return None
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:  # more 5-bit groups of this run follow
            continue
        if c & 0x10:  # the sign bit of the last group
            value -= 1 << shift
        if len(runs) > 2:  # runs after the third are stored as differences from the run two before
            value += runs[-2]
        runs.append(value)
        value = shift = 0
    return runs if shift == 0 else None
