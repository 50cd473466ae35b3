"""COCO evaluation for every architecture: the same numbers for YOLO and R-CNN runs."""

from .cocoeval import BACKENDS, STAT_NAMES, IouTypeResult, evaluate, sanitize_groundtruth

__all__ = ["BACKENDS", "STAT_NAMES", "IouTypeResult", "evaluate", "sanitize_groundtruth"]
