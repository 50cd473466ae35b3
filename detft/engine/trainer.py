"""Fine-tuning loop for torchvision detection models (the R-CNN family's trainer).

Everything random is derived from (seed, epoch): the batch order, the augmentations and the torch
RNG used inside the model (proposal sampling), so ``--resume`` continues exactly where a run stopped.
Rank 0 evaluates with the project's COCO evaluator after every epoch and fills the run folder
(runs.py owns its layout): run.yaml, weights/{last,best}.pt, metrics.csv, loss/mAP plots, eval.json."""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..data.image_cache import ImageCache
from ..data.loading import load_data
from ..data.transforms import DEFAULT_VIEWS, RCNN_AUGMENTATIONS, parse_augment
from ..errors import DetftError
from ..evaluation.predictor_eval import evaluate_predictor
from ..evaluation.report import EvalSettings, format_report
from ..inference.predictor import RCNNPredictor
from ..models.defaults import AUTO, resolve_auto
from ..models.freeze import FreezeState, freeze, param_counts, parse_freeze, unfreeze
from ..models.heads import build_detector, set_sampling
from ..models.labels import LabelMap
from ..models.rcnn import image_sizes
from ..models.registry import ModelSpec, resolve
from ..models.weights import load_into
from ..runs import Run, RunInfo
from ..util.devices import pick_device
from ..util.progress import EPOCH_HEARTBEAT_S, epoch_line, progress
from . import checkpoint, distributed
from .events import EventLog
from .feature_cache import FeatureStore, FrozenTrunk, default_budget, free_disk
from .metrics import overfitting, plot, write_csv
from .optim import build_optimizer, build_scheduler, param_groups
from .tracking import NO_TRACKING, Tracker

if TYPE_CHECKING:
    from ..data.torch_dataset import DetectionDataset


def seed_epoch(seed: int, epoch: int) -> None:
    s = seed * 1000 + epoch
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """What rebuilding the network needs beyond its classes (saved in run.yaml): image sizes and the box head."""
    kwargs: dict[str, Any] = image_sizes(cfg.imgsz) if cfg.imgsz else {}
    if cfg.box_head != "default":
        kwargs["box_head"] = cfg.box_head
    return kwargs


class Trainer:
    def __init__(self, cfg: TrainConfig, run: Run | None = None, tracker: Tracker = NO_TRACKING):
        self.cfg = cfg
        self.tracker = tracker
        self.device = pick_device(cfg.device)
        self.dist = distributed.init(self.device, cfg.dist_timeout)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.run = run or Run(Path(cfg.project) / cfg.name)
        self.spec: ModelSpec = resolve(cfg.arch, cfg.model)
        # AMP by default on CUDA; an explicit --amp elsewhere is honoured (fp16 autocast and the scaler on the CPU:
        # slow there, but the same code path, which is how CI runs it)
        self.amp = (self.device.type == "cuda") if cfg.amp is None else bool(cfg.amp)

    # ---------------------------------------------------------------- setup
    def setup(self, resume: dict[str, Any] | None = None) -> None:
        cfg = self.cfg
        self.dataset, train_images, val_images, self.split_made, self.data_warnings = load_data(cfg)
        self.labels = LabelMap.from_dataset(self.dataset)
        self.val_images = val_images
        weights = "none" if resume else (cfg.weights or self.spec.default_weights)
        self.start = self.run.info.start if resume else weights
        learnt = self.spec.learnt(self.start)
        if resume:  # the head the network was built with (a config saved before --box-head existed lacks it)
            cfg = cfg.replace(box_head=self.run.info.model_kwargs.get("box_head", "default"))
        # here, so run.yaml says what was chosen; a run resumed from before the RoI default keeps torchvision's
        self.cfg, said = resolve_auto(cfg, learnt, ("freeze", "box_head") + (() if resume else ("roi_batch",)))
        cfg = self.cfg
        self.auto_said = said if not resume else self.run.info.auto
        if said and self.dist.main:
            print(said)
        self.backbone_lr_factor = cfg.backbone_lr_factor if cfg.backbone_lr_factor is not None else \
            AUTO[learnt].backbone_lr_factor
        torch.manual_seed(cfg.seed)  # the same initial heads in every run and on every DDP rank
        self.model = build_detector(self.spec, num_classes=self.labels.num_classes, weights=weights, **model_kwargs(cfg))
        set_sampling(self.model, cfg.rpn_batch, cfg.roi_batch)
        if resume:
            load_into(self.model, resume["model"], "last.pt")
        self.freeze_state: FreezeState = freeze(self.model, cfg.freeze)
        # grouped as the run started (frozen layers in their own group), which is what last.pt's optimizer holds
        groups = param_groups(self.model, cfg.lr, cfg.weight_decay, self.backbone_lr_factor)
        if resume and cfg.unfreeze_at is not None and resume["epoch"] + 1 >= cfg.unfreeze_at:
            unfreeze(self.model, self.freeze_state)
        self.model.to(self.device)
        trainable, total = param_counts(self.model)
        self.parameters = {"total": total, "trainable": trainable}
        if self.dist.main:
            print(f"{self.spec.name}: {trainable:,} trainable / {total:,} parameters "
                  f"(freeze={cfg.freeze}, weights={weights}, device={self.device}, amp={self.amp})")
        from ..data.sampler import GroupedBatchSampler
        from ..data.torch_dataset import DetectionDataset, collate

        resize = (max(self.model.transform.min_size), self.model.transform.max_size)  # what the model works at
        self.train_set = DetectionDataset(train_images, self.labels, masks=self.spec.masks,
                                          augment=cfg.augment, seed=cfg.seed, resize=resize)
        val_set = DetectionDataset(self.val_images, self.labels, masks=self.spec.masks, augment="none",
                                   seed=cfg.seed, resize=resize)
        self.sampler = GroupedBatchSampler(self.train_set.aspect_ratios(), cfg.batch, seed=cfg.seed,
                                           rank=self.dist.rank, world_size=self.dist.world_size)
        # the machine's budget is shared by the training processes on it; each caches its own shard alone
        budget = int(cfg.cache_budget * 2**30) if cfg.cache_budget is not None else default_budget()
        budget //= self.dist.local_world_size
        self.image_caches = self.image_cache([self.train_set, val_set], budget // 2)
        self.trunk = self.frozen_trunk(budget - sum(c.bytes for c in self.image_caches))
        self.cfg = cfg = cfg.replace(augment_views=self.augment_views(resumed=resume is not None))  # run.yaml says it
        self.train_set.use_views(cfg.augment_views, cfg.unfreeze_at)
        self.describe_cache()
        # a DataLoader iterator draws its workers' base seed from the global RNG, which the model's proposal
        # sampling uses; persistent workers draw it in a process's first epoch only, so a resumed run would draw
        # where the uninterrupted one did not. Its own generator keeps the global RNG for the model alone (the
        # dataset seeds its augmentation from (seed, epoch, index), not from the workers' seeds).
        self.loader = DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=cfg.workers,
                                 collate_fn=collate, persistent_workers=cfg.workers > 0,  # no process start-up every epoch
                                 pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed))
        # no augmentation and no sampler: the same val batches every epoch, so their losses compare
        self.val_loader = DataLoader(val_set, batch_size=cfg.batch, num_workers=cfg.workers, collate_fn=collate,
                                     pin_memory=self.device.type == "cuda") if self.val_images else None
        self.optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.momentum)
        total_steps = cfg.epochs * len(self.sampler)
        self.scheduler = build_scheduler(self.optimizer, total_steps, min(cfg.warmup_iters, total_steps // 2), cfg.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.start_epoch, self.best, self.rows, self.stale, self.epochs = 0, -math.inf, [], 0, cfg.epochs
        if resume:
            saved = [g.get("name") for g in resume["optimizer"]["param_groups"]]
            if saved != [g["name"] for g in groups]:  # an older detft had no 'backbone' group
                raise DetftError(f"{self.run.folder}: last.pt's optimizer has parameter groups {saved}, this detft "
                                 f"makes {[g['name'] for g in groups]} (trainable backbone layers now learn at "
                                 "--backbone-lr-factor); finish it with the detft that started it, or train anew")
            self.optimizer.load_state_dict(resume["optimizer"])
            self.scheduler.load_state_dict(resume["scheduler"])
            self.resume_scaler(resume["scaler"])
            self.start_epoch, self.best, self.stale = resume["epoch"] + 1, resume["best"], resume["stale"]
            self.rows = list(resume["rows"])
        self.ddp = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None) \
            if self.dist.enabled else None

    def resume_scaler(self, saved: dict[str, Any]) -> None:
        """Continue the gradient scaler a run saved. AMP follows the device the run resumes on, not the one it
        started on: a disabled scaler (a CPU run) saves nothing, so a run resumed with AMP on starts its scaler at
        the initial scale (said), and a scaler saved with AMP on is not needed by a run resumed without it."""
        if self.amp and not saved:
            if self.dist.main:
                print("resume: last.pt was saved without mixed precision; AMP is on now "
                      f"({self.device}), so the gradient scaler starts at its initial scale")
            return
        self.scaler.load_state_dict(saved)

    def image_cache(self, datasets: list[DetectionDataset], budget: int) -> list[ImageCache]:
        """``--cache-images``: one cache per dataset that has images, sharing ``budget`` bytes in order, never more
        than this process's part of half the disk space free under the run folder (the file the OS keeps in RAM
        lives there). The training set's cache holds this rank's shard; the val set's exists on rank 0, which
        validates."""
        if self.cfg.cache_images == "off":
            return []
        folder = self.run.image_cache_dir(self.dist.rank)
        folder.mkdir(parents=True, exist_ok=True)
        budget = min(budget, shutil.disk_usage(folder).free // 2 // self.dist.local_world_size)
        caches = []
        for name, ds in zip(("train", "val"), datasets):
            if len(ds) and (name == "train" or self.dist.main):
                only = set(self.sampler.shard()) if name == "train" and self.dist.enabled else None
                ds.cache = ImageCache(folder / f"{name}.u8", ds.sizes, budget, only)  # replaces a stale file
                budget -= ds.cache.bytes
                caches.append(ds.cache)
        if self.dist.main:
            kept, n = sum(c.cached for c in caches), sum(c.wanted for c in caches)
            print(f"image cache: {kept}/{n} images{' of this process' if self.dist.enabled else ''} kept decoded at "
                  f"the model's input size after their first read ({sum(c.bytes for c in caches) / 2**20:.0f} MiB)"
                  + ("" if kept == n else "; the rest over the budget"))
        return caches

    def frozen_trunk(self, budget: int) -> FrozenTrunk | None:
        """The frozen trunk run per image at its own extent, through the store ``--cache-features`` asks for
        (None when no trunk is frozen, said why when a store was asked for)."""
        cfg = self.cfg
        what = parse_freeze(cfg.freeze)
        trunk = {"backbone": "backbone.body", "backbone+neck": "backbone"}.get(what) if isinstance(what, str) else None
        if trunk is None and cfg.cache_features not in ("auto", "off"):
            raise DetftError(f"--cache-features {cfg.cache_features} reuses a frozen trunk: it needs --freeze "
                             f"backbone or backbone+neck (not {cfg.freeze})")
        if trunk is None or not self.freeze_state.active:  # nothing frozen, or a resume past --unfreeze-at
            return None
        folder = self.run.feature_cache_dir(self.dist.rank)
        store = None if cfg.cache_features == "off" else \
            FeatureStore(cfg.cache_features, folder, budget, cfg.cache_precision,
                         free_disk(folder) // 2 // self.dist.local_world_size)
        return FrozenTrunk(self.model, trunk, store)

    def describe_cache(self) -> None:
        """Say what the feature cache keeps, once the augmentation views are settled."""
        cfg, store = self.cfg, self.cache
        if store is None or not self.dist.main:
            return
        changing = [a for a in parse_augment(cfg.augment, RCNN_AUGMENTATIONS, "R-CNN") if a != "flip"]
        views = f"{cfg.augment_views} augmented views" if changing and cfg.augment_views else "flip"
        print(f"feature cache ({cfg.cache_features}, {cfg.cache_precision}, RAM budget {store.budget / 2**30:.1f} GiB"
              f"{' per process' if self.dist.enabled else ''}): the frozen {self.trunk.name} runs once per image and "
              f"{views}, its features are reused every epoch"
              + (f"; samples that fresh --augment {','.join(changing)} draws change run it as usual"
                 if changing and not cfg.augment_views else "")
              + (f"; dropped at --unfreeze-at {cfg.unfreeze_at}" if cfg.unfreeze_at is not None else ""))

    def augment_views(self, resumed: bool) -> int:
        """``--augment-views``, unset resolved: views pay where a store keeps the features of backbone and neck
        (with the FPN training, its backward through RoIAlign is most of a step and the cache saves little:
        bench/RESULTS.md), and only for an augmentation that changes pixels beyond a flip (a flip's two outcomes
        are cached already); fresh draws otherwise, as every run resumed from before views existed had."""
        cfg = self.cfg
        if cfg.augment_views is not None:
            return cfg.augment_views
        changing = any(a != "flip" for a in parse_augment(cfg.augment, RCNN_AUGMENTATIONS, "R-CNN"))
        whole = self.trunk is not None and self.trunk.name == "backbone"  # backbone+neck: a cached step is heads only
        return DEFAULT_VIEWS if changing and whole and self.cache is not None and not resumed else 0

    @property
    def cache(self) -> FeatureStore | None:
        """The feature store in use (None: no frozen trunk, ``--cache-features off``, or unfrozen)."""
        return self.trunk.store if self.trunk is not None else None

    # ---------------------------------------------------------------- loop
    def batch_keys(self, targets: list[dict]) -> None:
        """Take the dataset's (image, variant) keys off the targets; the frozen trunk's store, when there is one,
        gets them."""
        keys = [tuple(t.pop("cache_key").tolist()) for t in targets if "cache_key" in t]
        if self.cache is not None and len(keys) == len(targets):
            self.trunk.next_keys(keys)  # type: ignore[union-attr,arg-type]

    def losses(self, net: nn.Module, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        """The loss terms of one batch on the training device (autocast with AMP): training and val loss alike."""
        images = [im.to(self.device, non_blocking=True) for im in images]
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            return net(images, targets)

    def step(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, float]:
        """One optimizer step; returns the loss terms."""
        self.batch_keys(targets)
        losses = self.losses(self.ddp or self.model, images, targets)
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
        self.sampler.set_epoch(epoch)  # its batches carry the epoch to the workers' datasets
        if self.cfg.unfreeze_at is not None and epoch == self.cfg.unfreeze_at and self.freeze_state.active:
            n = unfreeze(self.model, self.freeze_state)
            if self.trunk is not None:  # the trunk trains now: its features change every step
                self.trunk.detach()
                self.trunk = None
            if self.ddp is not None:  # DDP only syncs parameters that required grad when it was built
                self.ddp = DistributedDataParallel(self.model, device_ids=self.ddp.device_ids)
            if self.dist.main:
                print(f"epoch {epoch}: unfroze {n:,} parameters (lr x{self.backbone_lr_factor:g})")
        self.model.train()
        sums: dict[str, float] = {}
        n, t0 = 0, time.perf_counter()
        bar = progress(self.loader, f"epoch {epoch + 1}/{self.epochs}", total=len(self.sampler), unit="batch",
                       every=EPOCH_HEARTBEAT_S)
        for images, targets in bar:
            losses = self.step(images, targets)
            n += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{sums['loss'] / n:.3f}", ips=f"{n * self.cfg.batch / (time.perf_counter() - t0):.1f}")
        return {k: v / max(n, 1) for k, v in sums.items()} | {"time_s": time.perf_counter() - t0,
                                                              "lr": self.optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def val_losses(self) -> dict[str, float]:
        """The training losses on the val split, learning nothing from it: no gradient, every BatchNorm that
        trains put in eval mode for the pass (its running statistics stay as training left them), and the
        proposal sampling seeded, so every epoch's number is measured the same way."""
        if self.val_loader is None:
            return {}
        model = self.model
        model.train()  # torchvision detectors return losses only in training mode
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.eval()
        sums: dict[str, float] = {}
        n = 0
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.cfg.seed)
                for images, targets in progress(self.val_loader, "val loss", total=len(self.val_loader), unit="batch",
                                                every=EPOCH_HEARTBEAT_S):
                    for t in targets:  # validation images are not the training set's: no cache keys
                        t.pop("cache_key", None)
                    losses = self.losses(model, images, targets)
                    for k, v in {"loss": sum(losses.values()), **losses}.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * len(images)
                    n += len(images)
        finally:
            for m in norms:
                m.train()
        return {f"val_{k}": v / max(n, 1) for k, v in sums.items()}

    def evaluate(self, out: Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, float]:
        """Validation metrics of the model as it is now (with ``out``, the full report written there)."""
        predictor = RCNNPredictor(self.model, self.labels, self.device, score_threshold=self.cfg.conf,
                                  max_dets=self.cfg.max_dets)
        result = evaluate_predictor(predictor, self.dataset, self.val_images, self.eval_settings(), out, extra,
                                    EPOCH_HEARTBEAT_S)
        self.model.train()
        if result.doc is not None:
            print(format_report(result.doc))
        return result.metrics

    def eval_settings(self) -> EvalSettings:
        return EvalSettings(backend=self.cfg.eval_backend, max_dets=self.cfg.max_dets, score_threshold=self.cfg.conf)

    def fitness(self, row: dict[str, float]) -> tuple[float, str]:
        """What best.pt maximises, and its name: val AP (segm for masks); when AP cannot be computed (the val split
        holds no objects, or there is no val split) the lowest val loss, else the latest epoch, so every run that
        trained has a best.pt for eval, predict and export."""
        ap = row.get("segm_AP", row.get("bbox_AP", -1.0)) if self.spec.masks else row.get("bbox_AP", -1.0)
        if ap >= 0:
            return ap, "val AP"
        if "val_loss" in row:
            return -row["val_loss"], "val loss"
        return float(row["epoch"]), "the latest epoch"

    def info(self) -> RunInfo:
        return RunInfo(family="rcnn", model=self.spec.name, task="segment" if self.spec.masks else "detect",
                       labels=self.labels, config=self.cfg, imgsz=self.cfg.imgsz, model_kwargs=model_kwargs(self.cfg),
                       start=self.start, parameters=self.parameters, split=self.split_made, auto=self.auto_said)

    def fit_to_budget(self, epoch: int, started: float) -> bool:
        """With ``--time-budget``, refit the epoch count to the time left, as ultralytics' ``time=`` does (mean
        epoch time so far, rounded up, the schedule stretched or shortened to match); True when time is up."""
        budget = self.cfg.time_budget
        if not budget:
            return False
        elapsed = time.perf_counter() - started
        done = epoch + 1 - self.start_epoch
        fitted = max(epoch + 1, self.start_epoch + math.ceil(budget * 60 / (elapsed / done)))
        self.epochs = distributed.broadcast_int(fitted, self.dist)  # rank 0's clock: one schedule on every rank
        self.scheduler.lr_lambdas[0].total = self.epochs * len(self.sampler)
        return bool(distributed.broadcast_int(elapsed >= budget * 60, self.dist))

    def validate(self, row: dict[str, float]) -> None:
        """Rank 0: the val losses and metrics of the epoch into ``row``."""
        row.update(self.val_losses())
        row.update(self.evaluate() if self.val_images else {})

    def record(self, epoch: int, row: dict[str, float], info: RunInfo, events: EventLog, elapsed: float) -> bool:
        """Rank 0: the epoch's line (``elapsed``: seconds since this process's first epoch began), the epoch into
        last.pt (and best.pt when it is the best), metrics.csv, the plots, the event log and the tracker; True when
        early stopping ends the run."""
        cfg = self.cfg
        self.rows.append(row)
        score, by = self.fitness(row)
        if by != "val AP" and epoch == self.start_epoch:
            print(f"no val AP ({'the val split holds no objects' if self.val_images else 'no val images'}): "
                  f"best.pt is the epoch with {'the lowest val loss' if by == 'val loss' else 'the latest weights'}")
        improved = score > self.best
        self.best, self.stale = (score, 0) if improved else (self.best, self.stale + 1)
        parts = {k.removeprefix("loss_"): v for k, v in row.items() if k.startswith("loss_")}
        ap = {t: (row[f"{t}_AP"], row[f"{t}_AP50"]) for t in ("bbox", "segm") if f"{t}_AP" in row}
        print(epoch_line(epoch + 1, self.epochs, row["loss"], parts, val_loss=row.get("val_loss"), ap=ap,
                         best=(by, abs(self.best), epoch + 1 - self.stale) if by != "the latest epoch" else None,
                         elapsed=elapsed, done=epoch + 1 - self.start_epoch), flush=True)
        state = {"model": self.model.state_dict(), "meta": info.to_dict(), "epoch": epoch, "best": self.best}
        checkpoint.save(self.run.checkpoint_path("last"), {
            **state, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "stale": self.stale, "rows": self.rows})
        if improved:
            checkpoint.save(self.run.checkpoint_path("best"), state)
        write_csv(self.run.metrics_csv, self.rows)
        plot(self.run.folder, self.rows)
        events.log(row)
        self.tracker.log_epoch(row)
        stop = cfg.patience is not None and self.stale >= cfg.patience
        if stop:
            print(f"early stop: no improvement of the {by} in {cfg.patience} epoch(s); best {abs(self.best):.4f}")
        return stop

    def final_evaluation(self, events: EventLog) -> None:
        """Rank 0: the overfitting note and the full report of best.pt in the run folder."""
        events.close()
        watch = overfitting(self.rows)
        if watch:
            print(watch["note"])
        best = self.run.checkpoint_path("best")
        if self.val_images and best.exists():
            load_into(self.model, checkpoint.load(best)["model"], str(best))
            self.evaluate(self.run.folder, {"weights": str(best), "split": self.cfg.val_split, "overfitting": watch,
                                            "warnings": self.data_warnings})

    def fit(self) -> Run:
        cfg = self.cfg
        info = self.info()
        if self.dist.main:
            self.run.save_info(info)
        # through on_main: a tracker that cannot start (a server that does not answer) stops every rank at once
        distributed.on_main(self.dist, lambda: self.tracker.start(self.run, info, self.dataset))
        events = EventLog(self.run.folder) if self.dist.main else None
        started, epoch = time.perf_counter(), self.start_epoch
        while epoch < self.epochs:
            row = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            distributed.on_main(self.dist, lambda: self.validate(row))
            out_of_time = self.fit_to_budget(epoch, started)  # before last.pt is saved: it holds the refitted schedule
            stop = bool(distributed.on_main(self.dist, lambda: self.record(epoch, row, info, events,
                                                                           time.perf_counter() - started)))
            if out_of_time:
                stop = True
                if self.dist.main:
                    print(f"time budget of {cfg.time_budget:g} min used after {epoch + 1} epoch(s)")
            if distributed.broadcast_int(stop, self.dist):
                break
            epoch += 1
        if self.trunk is not None:
            if self.dist.main and self.cache is not None:
                print(self.cache.describe())
            self.trunk.detach()  # the store's files under the run folder go too
        for images in self.image_caches:
            if self.dist.main:
                print(images.describe())
            images.close()
        shutil.rmtree(self.run.image_cache_dir(self.dist.rank), ignore_errors=True)
        if self.device.type == "cuda" and self.dist.main:
            print(f"peak GPU memory {torch.cuda.max_memory_allocated(self.device) / 2**20:.0f} MiB (rank 0)")
        distributed.on_main(self.dist, lambda: self.final_evaluation(events))
        distributed.cleanup(self.dist)
        return self.run
