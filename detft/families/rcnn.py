"""The R-CNN family: torchvision Faster/Mask R-CNN and the offline-backbone models (models/registry.py),
trained by detft's own loop (engine/). Its checkpoints are plain state dicts, always read with
``weights_only=True``, so ``trust_weights`` never applies."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..engine.tracking import NO_TRACKING
from ..errors import DetftError
from ..models.registry import known

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from ..config import TrainConfig
    from ..data.loading import TrainingData
    from ..engine.tracking import Tracker
    from ..export.metadata import Graph
    from ..inference.predictor import Predictor
    from ..runs import Run, RunInfo


class RCNN:
    name = "rcnn"
    summary = "fasterrcnn, maskrcnn or a registered R-CNN model (detft --arch NAME; see models/registry.py)"
    int8 = False  # resizing, RoIAlign and NMS inside torchvision's graph: not quantized

    def handles(self, arch: str) -> bool:
        return known(arch)

    def check_model(self, arch: str, model: str | None) -> None:
        from ..models.registry import resolve

        resolve(arch, model)

    def train(self, config: TrainConfig, run: Run, resume: bool = False, trust_weights: bool = False,
              tracker: Tracker = NO_TRACKING) -> Run:
        from ..engine import checkpoint
        from ..engine.trainer import Trainer

        state = None
        if resume:
            state = checkpoint.load(run.checkpoint("last"))
            if state["epoch"] + 1 >= config.epochs:
                raise DetftError(f"{run.folder} already finished {state['epoch'] + 1} epochs; "
                                 "pass a larger --epochs to extend")
        trainer = Trainer(config, run, tracker)
        trainer.setup(state)
        return trainer.fit()

    def auto_freeze(self, config: TrainConfig, data: TrainingData) -> tuple[str, str | None]:
        from ..models.defaults import resolve_auto
        from ..models.registry import resolve

        learnt = resolve(config.arch, config.model).learnt(config.weights)
        chosen, said = resolve_auto(config.replace(freeze="auto"), learnt, ("freeze",))
        return str(chosen.freeze), said

    def predictor(self, run: Run, *, device: str = "auto", conf: float = 0.25, max_dets: int = 100,
                  imgsz: int | None = None, trust_weights: bool = False) -> Predictor:
        from ..inference.predictor import RCNNPredictor
        from ..util.devices import pick_device

        return RCNNPredictor(_model(run, imgsz), run.info.labels, pick_device(device), conf, max_dets)

    def export(self, run: Run, path: Path, *, imgsz: int | None, dynamic: bool | None, half: bool, opset: int | None,
               max_dets: int, trust_weights: bool = False) -> tuple[RunInfo, Graph]:
        from ..export.metadata import Graph
        from ..export.rcnn import DEFAULT_OPSET, SCORE_FLOOR, write_rcnn_onnx

        if half:
            raise DetftError("--half: R-CNN graphs export in fp32 (torchvision's RoIAlign and NMS are traced in fp32); "
                             "fp16 export is for YOLO models")
        if dynamic:
            print("note: R-CNN graphs always take any image size (the resize is inside the graph); batch stays 1")
        model = _model(run, imgsz)
        size = int(model.transform.min_size[0])
        write_rcnn_onnx(model, path, opset=opset, score_floor=SCORE_FLOOR, max_dets=max_dets, example_size=size)
        info = replace(run.info, imgsz=size, model_kwargs={**run.info.model_kwargs, "min_size": size,
                                                           "max_size": int(model.transform.max_size)})
        # the resize is inside the graph: any image size goes in, whether or not --dynamic was asked
        return info, Graph("rcnn", imgsz=size, dynamic=True, opset=opset or DEFAULT_OPSET, score_floor=SCORE_FLOOR,
                           max_dets=max_dets)


def _model(run: Run, imgsz: int | None) -> nn.Module:
    """The run's chosen checkpoint in a freshly built network, resized for ``imgsz`` when given."""
    from ..engine import checkpoint
    from ..models.heads import build_detector
    from ..models.rcnn import image_sizes
    from ..models.registry import resolve
    from ..models.weights import load_into

    info = run.info
    kwargs = {**info.model_kwargs, **image_sizes(imgsz)} if imgsz else info.model_kwargs
    model = build_detector(resolve(info.model), num_classes=info.labels.num_classes, weights="none", **kwargs)
    load_into(model, checkpoint.load(run.weights)["model"], str(run.weights))
    return model

FAMILY = RCNN()
