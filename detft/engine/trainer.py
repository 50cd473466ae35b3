"""Fine-tuning loop for torchvision detection models.

Everything random is derived from (seed, epoch): the batch order, the augmentations and the torch
RNG used inside the model (proposal sampling), so ``--resume`` continues exactly where a run stopped.
Rank 0 evaluates with the project's COCO evaluator after every epoch and writes the run folder:
args.yaml, weights/{last,best}.pt, metrics.csv, loss/mAP plots and, at the end, eval.json."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..convert import load
from ..dataset import Dataset, ImageRecord
from ..errors import DetftError
from ..evaluation.groundtruth import coco_groundtruth, to_results
from ..evaluation.report import EvalSettings, evaluate_all, format_report, write_report
from ..inference.predictor import RCNNPredictor, pick_device, predict_records
from ..models.freeze import FreezeState, freeze, param_counts, unfreeze
from ..models.labels import LabelMap
from ..models.rcnn import image_sizes
from ..models.registry import ModelSpec, resolve
from ..models.weights import load_into
from ..output import atomic_write_text
from ..progress import progress
from ..report import Report
from ..split import assign_splits
from . import checkpoint, distributed
from .metrics import plot, write_csv
from .optim import build_optimizer, build_scheduler, param_groups

def _embedded_data() -> Path:
    """The default dataset: installed as package data (a wheel), else the checkout's datasets/ folder."""
    from importlib.util import find_spec

    spec = find_spec("detft.datasets")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent / "shapes"
    return Path(__file__).resolve().parents[2] / "datasets" / "shapes"


EMBEDDED_DATA = _embedded_data()


@dataclass
class TrainConfig:
    data: str | None = None  # None: the embedded datasets/shapes
    data_format: str | None = None
    arch: str = "fasterrcnn"
    model: str | None = None
    weights: str | None = None  # None: the model's default (torchvision DEFAULT)
    epochs: int = 10
    batch: int = 4
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_iters: int = 100
    imgsz: int | None = None
    freeze: str = "backbone"
    unfreeze_at: int | None = None
    backbone_lr_factor: float = 0.1
    augment: str | None = None  # None: the architecture's default (R-CNN: flip,scale,color; YOLO: +mosaic)
    amp: bool | None = None  # None: on for CUDA
    clip_grad: float = 10.0
    patience: int | None = None
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    project: str = "runs"
    name: str = "train"
    exist_ok: bool = False
    train_split: str = "train"
    val_split: str = "val"
    max_dets: int = 100
    conf: float = 0.001  # score threshold for validation detections (COCO practice: keep nearly all)
    eval_backend: str = "faster"
    extra: dict[str, Any] = field(default_factory=dict)


def seed_epoch(seed: int, epoch: int) -> None:
    s = seed * 1000 + epoch
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)


def model_kwargs(cfg: TrainConfig) -> dict[str, int]:
    if not cfg.imgsz:
        return {}
    return image_sizes(cfg.imgsz)


def load_data(cfg: TrainConfig) -> tuple[Dataset, list[ImageRecord], list[ImageRecord]]:
    report = Report()
    src = Path(cfg.data) if cfg.data else EMBEDDED_DATA
    ds = load(src, cfg.data_format, report)
    if len(report):
        print(report.summary())
    if not any((im.split or "train") == cfg.val_split for im in ds.images):
        assign_splits(ds, (0.8, 0.2), cfg.seed)
        print(f"no '{cfg.val_split}' split in {src}: using a seeded 80/20 split of all {len(ds.images)} images")
        train, val = ds.images_in("train"), ds.images_in("val")
    else:
        train, val = ds.images_in(cfg.train_split), ds.images_in(cfg.val_split)
    if not train:
        raise DetftError(f"no training images in split '{cfg.train_split}' of {src}")
    return ds, train, val


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.dist = distributed.init(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.run = Path(cfg.project) / cfg.name
        self.spec: ModelSpec = resolve(cfg.arch, cfg.model)
        self.amp = (self.device.type == "cuda") if cfg.amp is None else (cfg.amp and self.device.type == "cuda")

    # ---------------------------------------------------------------- setup
    def setup(self, resume: dict | None = None) -> None:
        cfg = self.cfg
        self.dataset, train_images, val_images = load_data(cfg)
        self.labels = LabelMap.from_dataset(self.dataset)
        self.val_images = val_images
        self.gt = coco_groundtruth(self.dataset, val_images)
        weights = "none" if resume else (cfg.weights or self.spec.default_weights)
        torch.manual_seed(cfg.seed)  # the same initial heads in every run and on every DDP rank
        self.model = self.spec.build(num_classes=self.labels.num_classes, weights=weights, **model_kwargs(cfg))
        if resume:
            load_into(self.model, resume["model"], "last.pt")
        self.freeze_state: FreezeState = freeze(self.model, cfg.freeze)
        if resume and cfg.unfreeze_at is not None and resume["epoch"] + 1 >= cfg.unfreeze_at:
            unfreeze(self.model, self.freeze_state)
        self.model.to(self.device)
        trainable, total = param_counts(self.model)
        if self.dist.main:
            print(f"{self.spec.name}: {trainable:,} trainable / {total:,} parameters "
                  f"(freeze={cfg.freeze}, weights={weights}, device={self.device}, amp={self.amp})")
        from ..data.sampler import GroupedBatchSampler
        from ..data.torch_dataset import DetectionDataset, collate
        from ..data.transforms import DEFAULT_AUGMENT

        self.train_set = DetectionDataset(train_images, self.labels, masks=self.spec.masks,
                                          augment=cfg.augment or DEFAULT_AUGMENT, seed=cfg.seed)
        self.sampler = GroupedBatchSampler(self.train_set.aspect_ratios(), cfg.batch, seed=cfg.seed,
                                           rank=self.dist.rank, world_size=self.dist.world_size)
        self.loader = DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=cfg.workers,
                                 collate_fn=collate, persistent_workers=False, pin_memory=self.device.type == "cuda")
        groups = param_groups(self.model, cfg.lr, cfg.weight_decay, cfg.backbone_lr_factor)
        self.optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum)
        total_steps = cfg.epochs * len(self.sampler)
        self.scheduler = build_scheduler(self.optimizer, total_steps, min(cfg.warmup_iters, total_steps // 2), cfg.schedule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.start_epoch, self.best, self.rows, self.stale = 0, -1.0, [], 0
        if resume:
            self.optimizer.load_state_dict(resume["optimizer"])
            self.scheduler.load_state_dict(resume["scheduler"])
            self.scaler.load_state_dict(resume["scaler"])
            self.start_epoch, self.best, self.stale = resume["epoch"] + 1, resume["best"], resume["stale"]
            self.rows = list(resume["rows"])
        self.ddp = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None) \
            if self.dist.enabled else None

    # ---------------------------------------------------------------- loop
    def step(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, float]:
        """One optimizer step; returns the loss terms."""
        net = self.ddp or self.model
        images = [im.to(self.device, non_blocking=True) for im in images]
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            losses = net(images, targets)
            loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise DetftError(f"loss became {loss.item()} ({ {k: round(float(v), 4) for k, v in losses.items()} }); "
                             "lower --lr or check the data")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {"loss": float(distributed.mean(loss.detach(), self.dist)),
                **{k: float(distributed.mean(v.detach(), self.dist)) for k, v in losses.items()}}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        seed_epoch(self.cfg.seed, epoch)
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        if self.cfg.unfreeze_at is not None and epoch == self.cfg.unfreeze_at and self.freeze_state.active:
            n = unfreeze(self.model, self.freeze_state)
            if self.ddp is not None:  # DDP only syncs parameters that required grad when it was built
                self.ddp = DistributedDataParallel(self.model, device_ids=self.ddp.device_ids)
            if self.dist.main:
                print(f"epoch {epoch}: unfroze {n:,} parameters (lr x{self.cfg.backbone_lr_factor})")
        self.model.train()
        sums: dict[str, float] = {}
        n, t0 = 0, time.perf_counter()
        bar = progress(self.loader, f"epoch {epoch + 1}/{self.cfg.epochs}", total=len(self.sampler), unit="batch")
        for images, targets in bar:
            losses = self.step(images, targets)
            n += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{sums['loss'] / n:.3f}", ips=f"{n * self.cfg.batch / (time.perf_counter() - t0):.1f}")
        return {k: v / max(n, 1) for k, v in sums.items()} | {"time_s": time.perf_counter() - t0,
                                                              "lr": self.optimizer.param_groups[0]["lr"]}

    def evaluate(self) -> tuple[dict[str, float], list[dict]]:
        predictor = RCNNPredictor(self.model, self.labels, self.device, score_threshold=self.cfg.conf,
                                  max_dets=self.cfg.max_dets)
        dets = predict_records(predictor, self.val_images, "val")
        self.model.train()
        results = to_results(self.dataset, dets)
        metrics, _ = evaluate_all(self.gt, results, self.eval_settings())
        out = {}
        for t, r in metrics.items():
            out[f"{t}_AP"], out[f"{t}_AP50"] = r.stats[0], r.stats[1]
        return out, results

    def eval_settings(self) -> EvalSettings:
        return EvalSettings(backend=self.cfg.eval_backend, max_dets=self.cfg.max_dets, score_threshold=self.cfg.conf)

    def fitness(self, metrics: dict[str, float]) -> float:
        return metrics.get("segm_AP", metrics.get("bbox_AP", -1.0)) if self.spec.masks else metrics.get("bbox_AP", -1.0)

    def meta(self) -> dict:
        return {"model_name": self.spec.name, "family": self.spec.family, "labels": self.labels.to_json(),
                "model_kwargs": model_kwargs(self.cfg), "config": asdict(self.cfg)}

    def fit(self) -> Path:
        cfg = self.cfg
        weights_dir = self.run / "weights"
        if self.dist.main:
            atomic_write_text(self.run / "args.yaml", yaml.safe_dump(asdict(self.cfg), sort_keys=False))
        for epoch in range(self.start_epoch, cfg.epochs):
            row = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            stop = False
            if self.dist.main:
                metrics, _ = self.evaluate() if self.val_images else ({}, [])
                row.update(metrics)
                self.rows.append(row)
                score = self.fitness(metrics)
                improved = score > self.best
                self.best, self.stale = (score, 0) if improved else (self.best, self.stale + 1)
                print(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.4f}, "
                      + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + (" (best)" if improved else ""))
                state = {"model": self.model.state_dict(), "meta": self.meta(), "epoch": epoch, "best": self.best}
                checkpoint.save(weights_dir / "last.pt", {
                    **state, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(), "stale": self.stale, "rows": self.rows})
                if improved:
                    checkpoint.save(weights_dir / "best.pt", state)
                write_csv(self.run / "metrics.csv", self.rows)
                plot(self.run, self.rows)
                stop = cfg.patience is not None and self.stale >= cfg.patience
                if stop:
                    print(f"early stop: no improvement in {cfg.patience} epoch(s); best {self.best:.4f}")
            distributed.barrier(self.dist)
            if distributed.broadcast_flag(stop, self.dist):
                break
        if self.dist.main and self.val_images and (weights_dir / "best.pt").exists():
            self.final_eval(weights_dir / "best.pt")
        distributed.cleanup(self.dist)
        return self.run

    def final_eval(self, best: Path) -> None:
        load_into(self.model, checkpoint.load(best)["model"], str(best))
        _, results = self.evaluate()
        doc = write_report(self.run, self.gt, results, self.eval_settings(),
                           extra={"weights": str(best), "split": self.cfg.val_split})
        print(format_report(doc))


def train(cfg: TrainConfig, resume: str | None = None, trust_weights: bool = False) -> Path:
    """Train (or resume, extending ``cfg.epochs`` if it is larger) and return the run folder.

    ``trust_weights`` lets a YOLO checkpoint the restricted loader refuses run its own code; it is an
    argument, never a saved setting, so a run folder cannot vouch for itself."""
    from ..output import safe_component
    from .yolo_trainer import META, run_folder, train_yolo

    if not resume and safe_component(cfg.name, "run name") != cfg.name:
        raise DetftError(f"run name {cfg.name!r} must be one folder name (no '/', '..' or control characters); "
                         "--project chooses where runs go")
    if cfg.arch == "yolo" or (resume and (run_folder(resume) / META).is_file()):
        return train_yolo(cfg, resume, trust_weights)
    state = None
    if resume:
        last = checkpoint.weights_path(Path(resume), "last")
        state = checkpoint.load(last)
        try:
            saved = TrainConfig(**{**state["meta"]["config"], "extra": state["meta"]["config"].get("extra", {})})
        except (KeyError, TypeError, AttributeError) as e:
            raise DetftError(f"{last}: damaged training config in the checkpoint ({e})") from None
        saved.epochs = max(saved.epochs, cfg.epochs)  # cfg.epochs 0: keep the saved count
        saved.project, saved.name = str(last.parent.parent.parent), last.parent.parent.name
        cfg = saved
        if state["epoch"] + 1 >= cfg.epochs:
            raise DetftError(f"{resume} already finished {state['epoch'] + 1} epochs; pass a larger --epochs to extend")
    else:
        run = Path(cfg.project) / cfg.name
        if (run / "weights").exists() and not cfg.exist_ok:
            raise DetftError(f"{run} already holds a run; use --name, --exist-ok or --resume {run}")
    trainer = Trainer(cfg)
    trainer.setup(state)
    return trainer.fit()
