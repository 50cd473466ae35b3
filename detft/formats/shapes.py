"""What the writers for the drawing tools (LabelMe, CVAT, VIA) share: an annotation as the outlines a person
edits, and which folder each split goes to; and the score a model gave a pre-label, which those three and COCO
keep (YOLO labels and VOC XML have no place for it).

Those tools edit polygons, not run-length masks, so an RLE mask is written as the outer contours of its pixels
(reported: holes cannot be drawn as one polygon); a crowd region becomes an ordinary object (reported: none of
the three has crowd regions)."""

from __future__ import annotations

from typing import Any

from ..annotations.dataset import Annotation, Dataset
from ..annotations.geometry import decode_mask, mask_to_polygons
from ..annotations.report import Report

SCORE = "score"  # the attribute a prediction's confidence travels in, in every format that can hold one


def outlines(ann: Annotation, report: Report, tool: str) -> list[list[float]] | None:
    """The polygon parts of ``ann``, or None for a box (also for a mask too small to outline, reported)."""
    if ann.iscrowd:
        report.add("converted", "crowd_to_object", ann.where(), f"{tool} has no crowd regions: written as an object")
    if ann.polygons:
        return ann.polygons
    if ann.rle is None:
        return None
    parts = mask_to_polygons(decode_mask(ann.rle))
    if not parts:
        report.add("converted", "mask_to_box", ann.where(), f"mask too small to outline: written to {tool} as its box")
        return None
    report.add("converted", "mask_to_polygon", ann.where(), f"{tool} draws polygons: the mask is written as "
               f"{len(parts)} outer contour(s)")
    return parts


def score_of(ann: Annotation) -> float | None:
    value = ann.attributes.get(SCORE)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def other_attributes(ann: Annotation) -> dict[str, Any]:
    """Attributes besides the score (VOC's difficult/truncated, CVAT's occluded, LabelMe's flags...)."""
    return {k: v for k, v in ann.attributes.items() if k != SCORE}


def report_unkept(ann: Annotation, kept: set[str], report: Report, tool: str) -> None:
    """Say which of ``ann``'s attributes ``tool``'s file cannot hold (``kept`` are those it does)."""
    lost = sorted(set(other_attributes(ann)) - kept)
    if lost:
        report.add("converted", "attributes_not_kept", ann.where(), f"{tool} cannot hold {', '.join(lost)}: not written")


def folder_per_split(dataset: Dataset) -> dict[str, str]:
    """Split -> folder under OUT: the training split alone is written flat (a folder a person opens in the tool);
    several, or one other split (a val set alone), each in a folder of its name (``train/``, ``val/``), as the
    tools' users keep them and detft reads them: flat, a val set would read back as training data."""
    splits = dataset.splits()
    return {"train": ""} if splits == ["train"] else {s: s for s in splits}


def read_score(value: Any) -> float | None:
    """A score read back from a file (a number, or the text a tool stores attribute values as)."""
    try:
        score = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 400-digit integer
        return None
    return score if 0.0 <= score <= 1.0 else None
