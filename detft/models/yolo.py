"""Ultralytics YOLO (detect and segment) behind detft: offline set-up, weights, backbone freezing.

Ultralytics reaches for the network in several places (font download for plots, AMP self-check
weights, hub, update checks). :func:`prepare_offline` turns all of that off before ultralytics is
imported, with a private config folder, and gives it a font it would otherwise download.

Ultralytics checkpoints are pickled modules: its default loader runs whatever a crafted ``.pt``
asks for. detft turns on ultralytics' restricted loader (``weights_only`` plus an allow-list of
model classes) for every load, and :func:`load_checkpoint` names what a refused file references;
only ``trust=True`` (``--trust-weights``) falls back to the full unpickler, for that one file. A refused
YOLOv5 segmentation checkpoint (YOLOv5's own classes pickled) is read without running it and mapped into
ultralytics' network instead (:mod:`.yolov5_seg`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DetftError
from ..util.threads import torch_threads_kept
from .packaged import PACKAGED, available, locate

CONFIG_DIR = Path(os.environ.get("DETFT_CACHE", Path.home() / ".cache" / "detft")) / "ultralytics"
YOLO_EXTRA = "pip install 'detft[yolo]'"
ASSETS = "https://github.com/ultralytics/assets/releases/download/v8.4.0"
# packaged starts (models/packaged.py), the first installed one is the default: COCO before the person detector.
# Masks start from the YOLO11n COCO detector too: its box and class branches carry over, and the mask branch learns
# within a few epochs; YOLOv5s-seg brings a COCO mask prototype but no head ultralytics can use (bench/transfer.py)
DEFAULT_STARTS = {"detect": ("yolo11n-coco", "fall-detection"),
                  "segment": ("yolo11n-coco", "yolov5s-seg-coco", "fall-detection")}
SAFE_LOAD_ENV = "ULTRALYTICS_SAFE_LOAD"
TRUST_HINT = ("load it only if you trust where it came from, with --trust-weights (Python: trust_weights=True), "
              "which lets it run code")
# modules whose globals ultralytics' restricted loader may admit: anything else in a refusal is named
_MODEL_MODULES = ("torch.", "ultralytics.", "numpy.", "collections.", "pathlib.", "builtins.getattr",
                  "torchvision.transforms.")


class UntrustedCheckpoint(DetftError):
    """A checkpoint the restricted loader refused: loading it would let the file run code."""


def prepare_offline(config_dir: Path = CONFIG_DIR, purpose: str = "the YOLO family") -> None:
    """Environment for ultralytics that never needs the network; call before importing it. ``purpose`` names what
    needs ultralytics in the error a core install (no ``yolo`` extra) gets."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ[SAFE_LOAD_ENV] = "1"  # not setdefault: a checkpoint never runs code unless the user says so per load
    font_dirs = {Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"}
    if "ultralytics.utils" in sys.modules:
        # imported before us: its flags and config folder were fixed at import time, so correct them
        for name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events"):
            module = sys.modules.get(name)
            for flag in ("ONLINE", "AUTOINSTALL"):
                if module is not None and hasattr(module, flag):
                    setattr(module, flag, False)
        for name in ("ultralytics.utils", "ultralytics.nn.tasks"):
            if name in sys.modules:
                sys.modules[name].SAFE_LOAD = True
        font_dirs.add(Path(sys.modules["ultralytics.utils"].USER_CONFIG_DIR))
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for fonts in font_dirs:
        fonts.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # the fonts ultralytics' plots probe for
            if not (fonts / name).exists():
                shutil.copyfile(dejavu, fonts / name)
    try:
        from ultralytics import settings
    except ModuleNotFoundError as e:
        if e.name != "ultralytics":
            raise
        raise DetftError(f"{purpose} needs ultralytics, which is not installed: {YOLO_EXTRA} (ultralytics is "
                         "AGPL-3.0; the rest of detft does without it)") from None

    # no usage sync, no experiment-tracker callbacks (each would try the network if its package is installed)
    off = {k: False for k in ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "wandb", "vscode_msg")
           if settings.get(k)}
    if off:
        settings.update(off)


@contextlib.contextmanager
def determinism_kept() -> Iterator[None]:
    """Undo what ultralytics' ``deterministic=True`` does for the whole process (deterministic algorithms, cuDNN's
    deterministic mode, the environment it sets), so what runs after a YOLO training, such as the next trial of
    ``detft benchmark``, runs as it would have without it."""
    import torch
    import torch.utils.deterministic

    algorithms = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    fill = torch.utils.deterministic.fill_uninitialized_memory
    env = {k: os.environ.get(k) for k in ("CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED")}
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(algorithms[0], warn_only=algorithms[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.utils.deterministic.fill_uninitialized_memory = fill
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_model(model: str, trust: bool = False) -> Any:
    """An ultralytics YOLO from a yaml (random init), a local .pt or packaged weights by name."""
    prepare_offline()
    from ultralytics import YOLO

    if model in PACKAGED:
        if PACKAGED[model].loader == "yolov5-seg":
            from .yolov5_seg import load_yolov5_seg

            return load_yolov5_seg(locate(model))
        return load_checkpoint(locate(model), trust)
    path = Path(model)
    if path.suffix in (".yaml", ".yml"):
        return YOLO(model)
    if not path.is_file():
        raise DetftError(
            f"YOLO weights {model} not found. detft never downloads at run time: on a connected machine get\n"
            f"    {ASSETS}/{path.name}\n  and pass its path, use an offline checkpoint (--weights "
            f"{' / '.join(DEFAULT_STARTS['segment'])}, {YOLO_EXTRA}), or train from scratch with --model {path.stem}.yaml")
    return load_checkpoint(path, trust)


def load_checkpoint(path: Path, trust: bool = False) -> Any:
    """A YOLO from a ``.pt`` through ultralytics' restricted loader; ``trust`` allows the full unpickler.

    Damaged files (empty, truncated, another kind of file) and refused ones get errors naming the file."""
    prepare_offline()
    from ultralytics import YOLO

    path = Path(path)
    if path.suffix != ".pt":
        raise DetftError(f"{path}: YOLO weights are a .pt file")
    _check_archive(path, trust)
    try:
        with _unrestricted() if trust else contextlib.nullcontext():
            return YOLO(str(path))
    except TypeError as e:
        if "outside the supported" in str(e):
            globals_used = _pickle_globals(path)
            if not trust and "models.yolo.SegmentationModel" in globals_used:  # YOLOv5's own code pickled
                from .yolov5_seg import load_yolov5_seg

                return load_yolov5_seg(path)  # its tensors, read without running it
            foreign = [g for g in globals_used if not g.startswith(_MODEL_MODULES)] or globals_used
            raise UntrustedCheckpoint(
                f"{path} was refused by the safe checkpoint loader: it references {', '.join(foreign[:8])}, which "
                f"unpickling would call (a checkpoint can run any code this way); {TRUST_HINT}") from None
        raise DetftError(f"cannot load YOLO checkpoint {path}: {_first_line(e)}") from None
    except (RuntimeError, EOFError, AttributeError, KeyError, ModuleNotFoundError, ValueError) as e:
        raise DetftError(f"cannot load YOLO checkpoint {path}: {e.__class__.__name__}: {_first_line(e)}") from None


def verify_checkpoint(path: Path, trust: bool = False) -> None:
    """Refuse ``path`` unless the restricted loader accepts it: for files ultralytics itself will unpickle
    in full later (its trainer strips best.pt and last.pt at the end of a resumed run)."""
    if not trust:
        load_checkpoint(path)


def _check_archive(path: Path, trust: bool) -> None:
    """A named error for files that are no checkpoint at all (empty, truncated, an image renamed .pt)."""
    size = path.stat().st_size
    if size == 0:
        raise DetftError(f"{path} is empty: not a checkpoint")
    if not zipfile.is_zipfile(path) and not trust:  # trusted: a pre-zip (legacy) pickle may still load
        with open(path, "rb") as f:
            head = f.read(8)
        kind = "a JPEG image" if head.startswith(b"\xff\xd8") else "a PNG image" if head.startswith(b"\x89PNG") else \
            "truncated, or another kind of file"
        raise DetftError(f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive; this file is {kind}, "
                         f"{size} bytes)")


def _pickle_globals(path: Path) -> list[str]:
    """The globals a refused checkpoint's pickle references, to name them (only read on refusal: the scan
    costs as much as a load)."""
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001  the refusal itself is the message; the names are a courtesy
        return ["(unreadable)"]


@contextlib.contextmanager
def _unrestricted() -> Iterator[None]:
    """The full unpickler for one load the user vouched for (``--trust-weights``)."""
    import ultralytics.nn.tasks as tasks

    before = tasks.SAFE_LOAD
    tasks.SAFE_LOAD = False
    try:
        yield
    finally:
        tasks.SAFE_LOAD = before


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0]


RANDOM_INIT = "from random init"  # in the origin line of a start that learnt nothing


def starting_point(model: str | None, weights: str | None, masks: bool, trust: bool = False) -> tuple[Any, str]:
    """The YOLO to fine-tune, and a line saying where its weights came from.

    ``--model`` is the network (a yaml, or a .pt that brings its weights); ``--weights`` the starting
    checkpoint (a .pt or packaged weights such as ``yolo11n-coco``). With neither, the first installed packaged
    start for the task (:data:`DEFAULT_STARTS`) is used and random init otherwise, said plainly either way. A
    checkpoint of the other task starts the network of the same scale for this one (``yolo11n.pt`` on data with
    masks: ``yolo11n-seg.yaml``) with every layer that fits taken from the checkpoint (backbone and neck)."""
    task = "segment" if masks else "detect"
    scratch = "yolo11n-seg.yaml" if masks else "yolo11n.yaml"
    default = ""
    if weights is None and model is None:
        installed = [name for name in DEFAULT_STARTS[task] if available(name)]
        if not installed:
            return load_model(scratch), (f"{scratch} {RANDOM_INIT}: no pretrained weights are installed here "
                                       f"({YOLO_EXTRA} gives an offline pretrained start)")
        weights = installed[0]
        default = f"; the default {task} start, {PACKAGED[weights].describes}"
    if weights is None or weights.lower() == "none":
        name = model or scratch
        if name.endswith((".yaml", ".yml")):
            return load_model(name), f"{name} {RANDOM_INIT}"
        if weights is not None:
            raise DetftError(f"--weights none with --model {name}: a checkpoint brings its weights; pass a yaml "
                             "(e.g. yolov8s.yaml) to train from scratch")
        return load_model(name, trust), f"{name} fine-tuned from its own weights"
    start = load_model(weights, trust)
    if model is None and start.task != task and start.task in DEFAULT_STARTS:
        stem = Path(start.model.yaml.get("yaml_file", "yolov8s.yaml")).stem.removesuffix("-seg")
        model = f"{stem}-seg.yaml" if masks else f"{stem}.yaml"
    if model is None:
        return start, f"{weights} ({start.task}, {len(start.names)} classes{default}) fine-tuned"
    net = load_model(model, trust)
    net.load(start.model)  # the module already loaded (safely): no second unpickling of the file
    return net, f"{model} with every layer that fits taken from {weights} ({start.task}{default})"


def backbone_layers(model: Any) -> int:
    """How many leading layers form the backbone, read from the model's own yaml."""
    cfg = getattr(model.model, "yaml", None) or {}
    if "backbone" not in cfg:
        raise DetftError("this YOLO model has no 'backbone' section in its yaml; give --freeze a number")
    return len(cfg["backbone"])


def freeze_layers(model: Any, spec: str) -> list[int]:
    """Layer indices to freeze for ``--freeze`` in the shared vocabulary: 'backbone+neck' is every layer
    but the detect/segment head (the last one), N the first N backbone layers."""
    from .freeze import parse_freeze

    what = parse_freeze(spec)
    if what == "none":
        return []
    n_backbone = backbone_layers(model)
    if what == "backbone":
        return list(range(n_backbone))
    if what == "backbone+neck":
        return list(range(len(model.model.model) - 1))
    if what > n_backbone:
        raise DetftError(f"--freeze {what}: this YOLO backbone has only {n_backbone} layers "
                         "(backbone+neck freezes everything but the head)")
    return list(range(what))


def _letterboxed(images: list, size: int, tight: bool, batch: int = 1) -> Iterator[Any]:
    """Network inputs of ``batch`` images each, read from disk and letterboxed to ``size``: ``tight`` pads each
    image only to the stride (one image per batch), else to the ``size`` square training feeds."""
    import numpy as np
    import torch

    from ..annotations.images import read_rgb
    from ..inference.yolo_graph import Letterbox

    for i in range(0, len(images) - batch + 1, batch):
        xs = []
        for image in images[i:i + batch]:
            rgb = read_rgb(image)
            box = Letterbox.fit(rgb.shape[0], rgb.shape[1], size, 32, tight=tight)
            xs.append(torch.from_numpy(box.apply(rgb, np.float32)))
        yield torch.cat(xs)


def yolo_shift(model: Any, images: list, sample: int = 32) -> Any:
    """How far ``images`` (image records) lie from the start's pretraining domain
    (:func:`.domain_shift.feature_shift` over the backbone's BatchNorm layers), on ``sample`` of them letterboxed to
    the size the start's statistics were gathered at (:func:`start_size`), whatever size this training uses: the
    same data measured at 320 reads farther than at 640 (fewer pixels per object, other scales), and the rule's
    threshold must mean one thing. 32 images at 640 read within 0.02 of 64 on the development suite."""
    import copy

    import torch

    from .domain_shift import feature_shift, spread_sample

    net = copy.deepcopy(model.model).float().eval()  # the trainer gets the start untouched (no fused layers)
    trunk = torch.nn.Sequential(*list(net.model)[:backbone_layers(model)])
    # a backbone whose layers each take the one before (every YOLO detect/segment backbone) runs alone: the neck and
    # head hold none of the statistics read and would cost another third of the time
    chained = all(getattr(m, "f", -1) == -1 for m in trunk)
    inputs = _letterboxed(spread_sample(images, sample), start_size(model), tight=True)
    return feature_shift(trunk if chained else net, trunk, inputs)


def yolo_pace(model: Any, images: list, *, imgsz: int, batch: int, device: Any) -> Any:
    """How fast training goes on ``images`` with every layer of ``model`` training (:func:`.pace.measure_pace`): on
    a copy, in batches of ``batch`` squares of ``imgsz``, on ``device``. On a CPU it runs on the threads
    ultralytics' training will use (its ``select_device`` sets cpu_count - 1, at most 8), not the process's: on a
    machine shared with other work, two spinning threads slow far more than one, and a probe timed on more threads
    than training gets misreads the pace (8x on 2 busy cores, bench/RESULTS.md)."""
    import copy

    import torch
    from ultralytics.utils import NUM_THREADS

    from .domain_shift import spread_sample
    from .pace import measure_pace

    steps = 3
    needed = (2 * steps + 1) * batch  # the warm-up, training and evaluation steps
    sample = spread_sample(images, needed)
    sample = (sample * -(-needed // max(len(sample), 1)))[:needed]  # fewer images than that: read again
    net = copy.deepcopy(model.model).float()
    with torch_threads_kept():
        if torch.device(device).type == "cpu":
            torch.set_num_threads(NUM_THREADS)
        return measure_pace(net, lambda: _letterboxed(sample, imgsz, tight=False, batch=batch), device, _output_sum,
                            steps=steps)


def _output_sum(out: Any) -> Any:
    """A scalar that every output of a training-mode forward feeds (the head's maps, a segment head's
    prototypes), so backward runs through the whole network as the real loss does."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return sum(_output_sum(o) for o in out if o is not None)
    return out.float().mean()


def start_size(model: Any) -> int:
    """The image size a start was trained at, where its checkpoint records it; else 640, the size ultralytics trains
    its COCO releases at."""
    args = (getattr(model, "ckpt", None) or {}).get("train_args") or {}
    size = args.get("imgsz")
    return size if isinstance(size, int) and 32 <= size <= 8192 else 640
