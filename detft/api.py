"""The Python API; ``detft``'s CLI is a thin layer over these functions.

    run = detft.train(data="my_export/", arch="yolo", epochs=30)
    model = detft.load(run)
    detections = model.predict(["a.jpg", "b.jpg"])
    report = model.evaluate(split="val")

Defaults are the CLI's: :class:`~detft.config.TrainConfig` holds them, one field per ``detft train`` flag."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .config import EMBEDDED_DATA, TrainConfig, load_config
from .errors import DetftError
from .runs import Run

if TYPE_CHECKING:
    from PIL import Image

    from .evaluation.predictor_eval import Evaluation
    from .inference.detections import Detections
    from .inference.predictor import Predictor
    from .inference.video import RunStats

ImageLike = Union[str, Path, np.ndarray, "Image.Image"]


def train(config: TrainConfig | str | Path | None = None, *, resume: str | Path | Run | None = None,
          trust_weights: bool = False, **fields: Any) -> Run:
    """Fine-tune a model and return its :class:`Run`.

    ``config`` is a TrainConfig, or a run.yaml / config YAML to reproduce; keyword ``fields`` (any
    TrainConfig field: ``data``, ``arch``, ``epochs``...) override it. ``resume`` continues a run with its
    own saved settings; only ``epochs`` may change there (to extend it). ``trust_weights`` lets a YOLO
    checkpoint that the restricted loader refuses run its own code: an argument, never a saved setting,
    so a run folder cannot vouch for itself."""
    from . import families

    if isinstance(config, (str, Path)):
        config = load_config(Path(config))
    base = config or TrainConfig()
    if resume is not None:
        other = sorted(set(fields) - {"epochs"})
        if other:
            raise DetftError(f"resuming uses the run's own settings; only epochs can change, not {', '.join(other)}")
        run = Run.open(resume, "last")
        saved = run.info.config
        epochs = fields.get("epochs", base.epochs if config is not None else 0)
        cfg = saved.replace(epochs=max(saved.epochs, epochs), project=str(run.folder.parent), name=run.folder.name)
        return families.for_run(run).train(cfg, run, resume=True, trust_weights=trust_weights)
    cfg = base.replace(**fields) if fields else base
    family = families.for_arch(cfg.arch)
    run = Run.create(cfg.project, cfg.name, cfg.exist_ok)
    return family.train(cfg, run, resume=False, trust_weights=trust_weights)


def load(weights: str | Path | Run, *, device: str = "auto", conf: float = 0.25, max_dets: int = 100,
         imgsz: int | None = None, trust_weights: bool = False) -> Model:
    """A trained model from a run folder, a checkpoint inside one, or a :class:`Run`, whatever its family.

    ``imgsz`` overrides the size it was trained at; YOLO checkpoints load through the restricted loader
    unless ``trust_weights``."""
    from . import families

    run = Run.open(weights)
    predictor = families.for_run(run).predictor(run, device=device, conf=conf, max_dets=max_dets, imgsz=imgsz,
                                                trust_weights=trust_weights)
    return Model(run, predictor, conf, max_dets)


class Model:
    """A trained model behind one interface for every family."""

    def __init__(self, run: Run, predictor: Predictor, conf: float = 0.25, max_dets: int = 100):
        self.run, self.predictor = run, predictor
        self.conf, self.max_dets = conf, max_dets

    def __repr__(self) -> str:
        return f"Model({self.run.info.family}: {self.run.info.model}, classes={self.classes}, weights={str(self.run.weights)!r})"

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.labels.names)

    @property
    def masks(self) -> bool:
        return self.predictor.masks

    def predict(self, images: ImageLike | Sequence[ImageLike]) -> list[Detections]:
        """Detections for an image file, an RGB uint8 array (H, W, 3), a PIL image, or a list of them;
        labels are the training data's category ids (``names`` maps them)."""
        items = [images] if isinstance(images, (str, Path, np.ndarray)) or hasattr(images, "convert") else list(images)
        return [self.predictor.predict([_rgb(im)])[0] for im in items]

    @property
    def names(self) -> dict[int, str]:
        """Category id -> class name, for the labels :meth:`predict` returns."""
        return self.predictor.labels.names_by_category()

    def evaluate(self, data: str | Path | None = None, split: str = "val", *, data_format: str | None = None,
                 out: str | Path | None = None, conf: float = 0.001, max_dets: int = 100,
                 backend: str = "faster") -> Evaluation:
        """COCO mAP (bbox, and segm for masks) on a split of ``data`` (default: the data it was trained on)
        with detft's evaluator; ``out`` also writes eval.json, detections.json, PR curves and the confusion
        matrix there. Scored at ``conf`` 0.001 by default (COCO practice), whatever :func:`load` was given."""
        from .convert import load as load_dataset
        from .evaluation.predictor_eval import evaluate_predictor
        from .evaluation.report import EvalSettings
        from .report import Report

        settings = EvalSettings(backend=backend, max_dets=max_dets, score_threshold=conf)
        if data is None:  # the dataset it was trained on
            trained = self.run.info.config
            data, data_format = Path(trained.data) if trained.data else EMBEDDED_DATA, data_format or trained.data_format
        report = Report()
        ds = load_dataset(Path(data), data_format, report)
        if len(report):
            print(report.summary())
        self.predictor.set_thresholds(conf, max_dets)
        try:
            return evaluate_predictor(self.predictor, ds, split, settings, Path(out) if out is not None else None,
                                      {"weights": str(self.run.weights), "data": str(data)})
        finally:
            self.predictor.set_thresholds(self.conf, self.max_dets)

    def annotate(self, source: str | Path, out: str | Path) -> Path:
        """``detft predict``: annotated copies of an image or a folder of images, and predictions.jsonl, in ``out``."""
        from .inference.video import predict_images

        return predict_images(self.predictor, Path(source), Path(out))

    def video(self, source: str, **options: Any) -> RunStats:
        """``detft video``: a video file, image folder, webcam index or stream URL; ``options`` are those of
        :func:`detft.inference.video.infer_video` (out, jsonl, track, show, max_frames...)."""
        from .inference.video import infer_video

        return infer_video(self.predictor, source, **options)


def _rgb(image: ImageLike) -> np.ndarray:
    if isinstance(image, (str, Path)):
        from .images import read_bgr

        return np.ascontiguousarray(read_bgr(Path(image))[..., ::-1])
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DetftError(f"an image array must be RGB uint8 of shape (H, W, 3), not {image.dtype} {image.shape}")
        return image
    if hasattr(image, "convert"):  # a PIL image
        return np.array(image.convert("RGB"))  # a writable copy: torch refuses read-only memory
    raise DetftError(f"cannot predict on a {type(image).__name__}: give a path, an RGB array or a PIL image")

