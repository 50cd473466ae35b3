"""The R-CNN family: torchvision Faster/Mask R-CNN and the offline-backbone models (models/registry.py),
trained by detft's own loop (engine/). Its checkpoints are plain state dicts, always read with
``weights_only=True``, so ``trust_weights`` never applies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import DetftError
from ..models.registry import known

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..inference.predictor import Predictor
    from ..runs import Run


class RCNN:
    name = "rcnn"
    summary = "fasterrcnn, maskrcnn or a registered R-CNN model (detft --arch NAME; see models/registry.py)"

    def handles(self, arch: str) -> bool:
        return known(arch)

    def train(self, config: TrainConfig, run: Run, resume: bool = False, trust_weights: bool = False) -> Run:
        from ..engine import checkpoint
        from ..engine.trainer import Trainer

        state = None
        if resume:
            state = checkpoint.load(run.checkpoint("last"))
            if state["epoch"] + 1 >= config.epochs:
                raise DetftError(f"{run.folder} already finished {state['epoch'] + 1} epochs; "
                                 "pass a larger --epochs to extend")
        trainer = Trainer(config, run)
        trainer.setup(state)
        return trainer.fit()

    def predictor(self, run: Run, *, device: str = "auto", conf: float = 0.25, max_dets: int = 100,
                  imgsz: int | None = None, trust_weights: bool = False) -> Predictor:
        from ..devices import pick_device
        from ..engine import checkpoint
        from ..inference.predictor import RCNNPredictor
        from ..models.rcnn import image_sizes
        from ..models.registry import resolve
        from ..models.weights import load_into

        info = run.info
        sizes = image_sizes(imgsz) if imgsz else info.model_kwargs
        model = resolve(info.model).build(num_classes=info.labels.num_classes, weights="none", **sizes)
        load_into(model, checkpoint.load(run.weights)["model"], str(run.weights))
        return RCNNPredictor(model, info.labels, pick_device(device), conf, max_dets)


FAMILY = RCNN()
