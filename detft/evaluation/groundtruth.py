"""COCO ground truth and results from detft objects, without decoding a single image.

Ground truth comes from the annotations and the image sizes the Dataset already holds (torchvision's
reference scripts decode every image to build it, which dominates their evaluation time)."""

from __future__ import annotations

from ..annotations.dataset import Dataset, ImageRecord
from ..formats.coco import to_coco_dict
from ..inference.detections import Detections


def coco_groundtruth(dataset: Dataset, images: list[ImageRecord]) -> dict:
    """Instances dict for ``images``: image ids 1..N in list order, annotation ids from 1."""
    return to_coco_dict(dataset, images, [im.file_name for im in images])


def to_results(dataset: Dataset, detections: list[Detections], model_names: dict[int, str] | None = None) -> list[dict]:
    """COCO results for per-image detections aligned with :func:`coco_groundtruth`'s image order.

    ``model_names`` (the model's category id -> name) matches classes by name, for a model evaluated on
    the same classes in another format (YOLO numbers classes from 0, COCO from 1)."""
    cat_map = dataset.coco_category_ids()
    if model_names is not None:
        by_name = {c.name: cat_map[c.id] for c in dataset.categories}
        cat_map = {model_id: by_name[name] for model_id, name in model_names.items()}
    return [d for image_id, det in enumerate(detections, start=1) for d in det.to_coco(image_id, cat_map)]
