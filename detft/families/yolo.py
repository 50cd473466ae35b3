"""The YOLO family: adapters -> cached YOLO dataset -> ultralytics' trainer -> detft's evaluator.

The run folder ends up with the layout every family has (runs.py); ultralytics' own files stay beside
it (its args as ultralytics_args.yaml, results.csv). Ultralytics checkpoints are pickled modules: every
one detft hands to ultralytics passes its restricted loader first (models/yolo.py), unless the user
trusts it.

Licence: detft is Apache-2.0, but this family trains and predicts through ultralytics, which is AGPL-3.0; it is
used under the AGPL through the ``yolo`` extra (``pip install 'detft[yolo]'``), and a program that uses it is bound
by that licence. Without the extra the family is still registered (``--arch yolo`` resolves here) and says what to
install when it is asked to load a model."""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..data.loading import TrainingData, data_source, load_data
from ..data.split_checks import SplitWarning
from ..data.transforms import AUGMENTATIONS, parse_augment
from ..annotations.dataset import Dataset
from ..util.devices import pick_device, primary, several, ultralytics_device
from ..engine.events import EventLog
from ..engine.metrics import overfitting, plot, write_csv
from ..engine.tracking import NO_TRACKING
from ..errors import DetftError
from ..formats import yolo as yolo_format
from ..models.defaults import DataAmount, Passes, freeze_by_data, resolve_auto
from ..models.labels import LabelMap
from ..models.yolo import (RANDOM_INIT, determinism_kept, freeze_layers, load_checkpoint, prepare_offline, starting_point,
                           verify_checkpoint, yolo_pace, yolo_shift)
from ..util.output import atomic_directory
from ..util.progress import EPOCH_HEARTBEAT_S, epoch_line, ticker
from ..util.threads import torch_threads_kept
from ..annotations.report import Report
from ..runs import Run, RunInfo

if TYPE_CHECKING:
    from tqdm import tqdm

    from ..engine.tracking import Tracker
    from ..util.progress import Heartbeat
    from ..export.metadata import Graph
    from ..inference.predictor import Predictor

CACHE_VERSION = "1"
# the shared --augment names -> ultralytics hyperparameters (what each turns on; 0 turns it off)
YOLO_AUGMENT: dict[str, dict[str, float]] = {
    "flip": {"fliplr": 0.5}, "scale": {"scale": 0.5, "translate": 0.1},
    "color": {"hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4}, "mosaic": {"mosaic": 1.0}}


def augment_args(spec: str | None) -> dict[str, Any]:
    """Explicit augmentation: every knob set, and ultralytics' implicit albumentations replaced by a no-op."""
    import albumentations as A

    names = parse_augment(spec, AUGMENTATIONS, "YOLO")
    out: dict[str, Any] = {k: 0.0 for d in YOLO_AUGMENT.values() for k in d}
    for n in names:
        out.update(YOLO_AUGMENT[n])
    out["augmentations"] = [A.NoOp()]  # without this ultralytics adds Blur/CLAHE/ToGray whenever albumentations is installed
    return out


def fingerprint(src: Path, task: str, seed: int, variant: str = "") -> str:
    """Changes when any file under the source (annotations or images) changes size or time, or ``variant`` (how
    the source is read: images folder, format, tiling) does."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{task}|{seed}|{src.resolve()}|{variant}".encode())
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def yolo_dataset(ds: Dataset, src: Path, task: str, cfg: TrainConfig) -> Path:
    """The YOLO copy of ``ds`` in the project's cache, written once per source version."""
    variant = "|".join(str(v) for v in (cfg.images_dir, cfg.data_format, cfg.tiling, cfg.pseudo_labels))
    out = Path(cfg.project) / ".cache" / f"yolo-{task}-{fingerprint(src, task, cfg.splitting_seed, variant)}"
    if (out / "data.yaml").is_file():
        print(f"reusing converted dataset {out}")
        return out
    with atomic_directory(out, overwrite=True) as tmp:
        report = Report()
        yolo_format.write(ds, tmp, report, task=task)
        report.write(tmp / "convert_report.json")
    if len(report):
        print(report.summary())
    return out


class YOLO:
    name = "yolo"
    summary = "yolo: ultralytics YOLO detect/segment (--model picks the network, --weights the start)"
    int8 = True

    def handles(self, arch: str) -> bool:
        return arch == "yolo"

    def check_model(self, arch: str, model: str | None) -> None:
        if model is not None and not model.endswith((".yaml", ".yml", ".pt")):
            raise DetftError(f"YOLO --model {model!r}: a network yaml (yolov8s.yaml) or a .pt checkpoint")

    def train(self, config: TrainConfig, run: Run, resume: bool = False, trust_weights: bool = False,
              tracker: Tracker = NO_TRACKING) -> Run:
        # ultralytics' trainer and validator lower the process's torch threads, and its deterministic=True switches
        # deterministic algorithms on for the whole process: both are put back when this training ends
        with torch_threads_kept(), determinism_kept():
            return self._train(config, run, resume, trust_weights, tracker)

    def _train(self, config: TrainConfig, run: Run, resume: bool, trust_weights: bool, tracker: Tracker) -> Run:
        prepare_offline()
        from ..models.yolo_trainers import TRAINERS  # after the offline set-up: it imports ultralytics

        ds, train_images, val_images, split, warned = load_data(config)
        if not val_images:
            raise DetftError("YOLO training needs validation images")
        if resume:  # ultralytics restores its optimizer and epoch from last.pt
            last = run.checkpoint("last")
            model = load_checkpoint(last, trust_weights)
            best = run.checkpoint_path("best")
            if best.is_file():  # ultralytics unpickles it in full when the resumed run ends
                verify_checkpoint(best, trust_weights)
            ckpt = getattr(model, "ckpt", None) or {}
            if ckpt.get("epoch", -1) == -1 or ckpt.get("optimizer") is None:
                # a completed run: ultralytics would silently start a new training on its default coco8.yaml
                raise DetftError(f"cannot resume {last}: that run finished (ultralytics can only resume interrupted runs)")
            tracker.start(run, run.info, ds)
            track_epochs(model, tracker)
            EpochLines().register(model)
            model.train(resume=True, data=ckpt["train_args"]["data"])
            return finish(model, ds, val_images, run, run.info, warned)
        import torch

        # ultralytics seeds its trainer, then copies every tensor of this model into the one it trains, the freshly
        # initialised heads included: unseeded, they made every run of the same command differ
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model, origin = starting_point(config.model, config.weights, ds.has_masks(), trust_weights)
        print(f"start: {origin}")
        task = "segment" if model.task == "segment" else "detect"
        data_dir = yolo_dataset(ds, data_source(config), task, config)
        # resolved here, so run.yaml says what was frozen and why
        gpus = several(config.device)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise DetftError("YOLO under torchrun: ultralytics starts its own DDP processes; run detft train once, "
                             "without torchrun, with --device 0,1 (the GPUs to use)")
        device = pick_device(primary(config.device))
        config, said = decide_freeze(config, model, origin, ds, train_images, len(val_images), device)
        if said:
            print(said)
        frozen = freeze_layers(model, config.freeze)
        if config.unfreeze_at is not None:
            model.add_callback("on_train_epoch_start", _unfreezer(config.unfreeze_at))
        info = RunInfo(family=self.name, model=config.model or config.weights or "yolo", task=task,
                       labels=LabelMap.from_dataset(ds, background=False), config=config, imgsz=config.imgsz or 640,
                       start=origin, split=split, auto=said)
        model.add_callback("on_train_start", _count_parameters(info))
        EpochLines().register(model)
        run.save_info(info)  # before training: an interrupted run can be resumed
        tracker.start(run, info, ds)
        track_epochs(model, tracker)
        model.train(
            data=str(data_dir / "data.yaml"), epochs=config.epochs, batch=config.batch, imgsz=info.imgsz,
            lr0=config.lr, optimizer={"sgd": "SGD", "adamw": "AdamW"}[config.optimizer], momentum=config.momentum,
            weight_decay=config.weight_decay if config.weight_decay != 1e-4 else 5e-4,
            cos_lr=config.schedule == "cosine", warmup_epochs=0 if config.warmup_iters == 0 else 3.0,
            device=ultralytics_device(config.device if gpus else device), workers=config.workers, seed=config.seed,
            deterministic=True, trainer=TRAINERS[task],
            project=str(run.folder.parent.resolve()), name=run.folder.name, exist_ok=True,
            amp=bool(config.amp) if config.amp is not None else device.type == "cuda",
            patience=config.patience or 100, freeze=frozen or None, plots=True, val=True, verbose=False,
            **({"time": config.time_budget / 60} if config.time_budget else {}), **augment_args(config.augment))
        return finish(model, ds, val_images, Run(Path(model.trainer.save_dir)), info, warned)

    def auto_freeze(self, config: TrainConfig, data: TrainingData) -> tuple[str, str | None]:
        prepare_offline()
        model, origin = starting_point(config.model, config.weights, data.dataset.has_masks())
        chosen, said = decide_freeze(config.replace(freeze="auto"), model, origin, data.dataset, data.train,
                                     len(data.val), pick_device(primary(config.device)))
        return str(chosen.freeze), said

    def predictor(self, run: Run, *, device: str = "auto", conf: float = 0.25, max_dets: int = 100,
                  imgsz: int | None = None, trust_weights: bool = False) -> Predictor:
        from ..inference.yolo_predictor import YOLOPredictor

        info = run.info
        return YOLOPredictor(load_checkpoint(run.weights, trust_weights), info.labels, device=ultralytics_device(device),
                             score_threshold=conf, max_dets=max_dets, imgsz=imgsz or info.imgsz or 640)

    def export(self, run: Run, path: Path, *, imgsz: int | None, dynamic: bool, half: bool, opset: int | None,
               max_dets: int, trust_weights: bool = False) -> tuple[RunInfo, Graph]:
        from dataclasses import replace

        from ..export.metadata import Graph
        from ..export.yolo import write_yolo_onnx

        size = imgsz or run.info.imgsz or 640
        # any input size by default: the checkpoint predicts on the stride-aligned rectangle that fits each image,
        # a fixed square graph on a padded square, which moves boxes on 16:9 and 4:3 images (measured: 0.019 AP)
        dynamic = True if dynamic is None else dynamic
        graph = write_yolo_onnx(run.weights, path, imgsz=size, dynamic=dynamic, half=half, opset=opset,
                                trust=trust_weights)
        return replace(run.info, imgsz=size), Graph("yolo", imgsz=size, dynamic=dynamic, half=half, opset=graph["opset"],
                                                    max_dets=max_dets, stride=graph["stride"], end2end=graph["end2end"])


FAMILY = YOLO()


def decide_freeze(config: TrainConfig, model: Any, origin: str, ds: Dataset, train_images: list,
                  val_count: int, device: Any) -> tuple[TrainConfig, str | None]:
    """``config`` with ``--freeze auto`` decided and the line saying why (None when it was not auto). A start that
    learnt detection decides by the data (:func:`..models.defaults.freeze_by_data`): its feature shift on the
    training images, how many there are, and how many epochs training will run (under a time budget, measured on
    ``device`` only when the shift makes it matter); random init trains everything."""
    if config.freeze not in ("auto", None) or RANDOM_INIT in origin:
        return resolve_auto(config, "none" if RANDOM_INIT in origin else "detector", fields=("freeze",))
    shift = yolo_shift(model, train_images)

    def passes() -> Passes:
        if not config.time_budget:
            return Passes(config.epochs, f"--epochs {config.epochs}")
        pace = yolo_pace(model, train_images, imgsz=config.imgsz or 640, batch=config.batch, device=device)
        epochs = pace.epochs_in(config.time_budget * 60, len(train_images), val_count,
                                len(several(config.device) or [0]))
        return Passes(epochs, f"a {config.time_budget:g}-minute budget at {pace.describe()}")

    freeze, why = freeze_by_data(shift.distance, DataAmount.of(train_images, {c.id: c.name for c in ds.categories}),
                                 passes)
    return config.replace(freeze=freeze), f"auto: --freeze {freeze} ({why}; {shift.describe()})"


def _unfreezer(epoch: int):
    def on_train_epoch_start(trainer: Any) -> None:
        if trainer.epoch == epoch:
            names = [n for n in trainer.freeze_layer_names if n != ".dfl"]
            n = 0
            for k, p in trainer.model.named_parameters():
                if any(f in k for f in names) and not p.requires_grad:
                    p.requires_grad_(True)
                    n += p.numel()
            trainer.freeze_layer_names = [".dfl"]  # BN statistics of these layers train again too
            trainer._model_train()
            print(f"epoch {epoch}: unfroze {n:,} parameters")

    return on_train_epoch_start


def _count_parameters(info: RunInfo):
    def on_train_start(trainer: Any) -> None:  # after ultralytics applied the freeze
        params = list(trainer.model.parameters())
        info.parameters = {"total": sum(p.numel() for p in params),
                           "trainable": sum(p.numel() for p in params if p.requires_grad)}

    return on_train_start


class EpochLines:
    """ultralytics callbacks that give a YOLO run the R-CNN family's progress: one line per epoch after validation
    (:func:`..util.progress.epoch_line`) and, within the epoch, a bar on a terminal or a line a minute in a log.
    detft keeps ultralytics quiet (YOLO_VERBOSE=false), so without these a run said nothing from its start to its
    results; a user who turns ultralytics' output back on gets its own bar and table on a terminal, not ours too."""

    def __init__(self) -> None:
        self.batches: tqdm | Heartbeat | None = None
        self.trained = False  # an epoch trained and not yet said: ultralytics' final_eval fires on_fit_epoch_end too

    def register(self, model: Any) -> None:
        from ultralytics.utils import VERBOSE

        if VERBOSE and sys.stdout.isatty():
            return
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        model.add_callback("on_train_batch_end", self.on_train_batch_end)
        model.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)

    @staticmethod
    def main_process() -> bool:
        """ultralytics' DDP workers get these callbacks too (pickled): only its rank 0 speaks."""
        from ultralytics.utils import RANK

        return RANK in (-1, 0)

    def on_train_epoch_start(self, trainer: Any) -> None:
        if not self.main_process():
            return
        if self.batches is not None:  # an epoch ultralytics restarts (out of memory, NaN losses)
            self.batches.close()
        self.batches = ticker(f"epoch {trainer.epoch + 1}/{trainer.epochs}", len(trainer.train_loader), "batch",
                              EPOCH_HEARTBEAT_S)

    def on_train_batch_end(self, trainer: Any) -> None:
        if self.batches is not None:
            self.batches.update()

    def on_train_epoch_end(self, trainer: Any) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None
        self.trained = self.main_process()

    def on_fit_epoch_end(self, trainer: Any) -> None:
        """After validation, the time budget's refit (``trainer.epochs`` as it now stands) and best.pt's save."""
        if not self.trained:
            return
        self.trained = False
        parts = {k.removeprefix("train/").removesuffix("_loss"): float(v)
                 for k, v in trainer.label_loss_items(trainer.tloss).items()}  # a dict or a tensor, as versions go
        metrics = trainer.metrics or {}
        val = [float(v) for k, v in metrics.items() if k.startswith("val/")]
        ap = {task: (float(metrics[f"metrics/mAP50-95({key})"]), float(metrics[f"metrics/mAP50({key})"]))
              for task, key in (("bbox", "B"), ("segm", "M")) if f"metrics/mAP50-95({key})" in metrics}
        stopper = trainer.stopper  # what best.pt follows: box mAP50-95, plus mask mAP50-95 for segmentation
        best = ("val AP" if "segm" not in ap else "val bbox+segm AP", float(stopper.best_fitness), stopper.best_epoch)
        print(epoch_line(trainer.epoch + 1, trainer.epochs, sum(parts.values()), parts,
                         val_loss=sum(val) if val else None, ap=ap, evaluator="ultralytics' evaluator",
                         best=best if stopper.best_epoch else None, elapsed=time.time() - trainer.train_time_start,
                         done=trainer.epoch + 1 - trainer.start_epoch), flush=True)


def track_epochs(model: Any, tracker: Tracker) -> None:
    """Each epoch's row to the tracker as the epoch ends: the last line of results.csv, which ultralytics writes just
    before ``on_fit_epoch_end``, read as metrics.csv will have it. Its final validation of best.pt fires that callback
    once more: a row already sent is not sent again."""
    sent = [0]

    def on_fit_epoch_end(trainer: Any) -> None:
        if not EpochLines.main_process():
            return
        rows = _metrics_rows(Path(trainer.csv))
        if rows and rows[-1]["epoch"] > sent[0]:
            sent[0] = rows[-1]["epoch"]
            tracker.log_epoch(rows[-1])

    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)


def finish(model: Any, ds: Dataset, val_images: list, run: Run, info: RunInfo, warned: list[SplitWarning]) -> Run:
    """Give the run folder the common layout and evaluate best.pt with the project's evaluator."""
    run.save_info(info)
    for name in ("args.yaml", "results.png"):  # ultralytics' own record and plot, kept under names of their own
        if (run.folder / name).is_file():
            (run.folder / name).replace(run.folder / f"ultralytics_{name}")
    rows = _metrics_rows(run.folder / "results.csv")
    write_csv(run.metrics_csv, rows)
    plot(run.folder, rows)
    events = EventLog(run.folder)
    for row in rows:
        events.log(row)
    events.close()
    watch = overfitting(rows)
    if watch:
        print(watch["note"])
    doc = evaluate_run(run, ds, val_images, info.config, {"overfitting": watch, "warnings": warned})
    u = doc["ultralytics"]
    print("\nsame model, two evaluators (ultralytics' own is shown for reference only):")
    for t in ("bbox", "segm"):
        if t in doc["metrics"]:
            s = doc["metrics"][t]["stats"]
            print(f"  {t}: detft/COCO AP {s['AP']:.4f} AP50 {s['AP50']:.4f} | ultralytics mAP50-95 "
                  f"{u[t + '_AP']:.4f} mAP50 {u[t + '_AP50']:.4f}")
    return run


def _metrics_rows(results_csv: Path) -> list[dict]:
    if not results_csv.is_file():
        return []
    rename = {"(B)": "bbox", "(M)": "segm"}
    rows = []
    with open(results_csv, newline="") as f:
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                k = k.strip()
                if k.startswith("train/"):
                    k = "loss_" + k[6:].removesuffix("_loss")
                elif k.startswith("val/"):
                    k = "val_loss_" + k[4:].removesuffix("_loss")
                elif k.startswith("metrics/mAP50-95"):
                    k = f"ultralytics_{rename[k[-3:]]}_AP"
                elif k.startswith("metrics/mAP50"):
                    k = f"ultralytics_{rename[k[-3:]]}_AP50"
                row[k] = float(v) if v not in ("", None) else None
            row["epoch"] = int(row["epoch"])
            row["loss"] = sum(v for k, v in row.items() if k.startswith("loss_") and v is not None)
            val = [v for k, v in row.items() if k.startswith("val_loss_") and v is not None]
            if val:
                row["val_loss"] = sum(val)
            rows.append(row)
    return rows


def evaluate_run(run: Run, ds: Dataset, val_images: list, cfg: TrainConfig, extra: dict[str, Any] | None = None) -> dict:
    """COCO metrics of best.pt from detft's evaluator, with ultralytics' own numbers beside them."""
    from ..evaluation.predictor_eval import evaluate_predictor
    from ..evaluation.report import EvalSettings, format_report

    best = run.checkpoint("best")
    # written by this run's own trainer, and read through the restricted loader all the same
    device = primary(cfg.device)  # trained on several GPUs: evaluated on the first
    predictor = FAMILY.predictor(Run(run.folder, best, run.info), device=device, conf=cfg.conf, max_dets=cfg.max_dets)
    model = predictor.model
    data_yaml = Path(model.ckpt["train_args"]["data"]) if getattr(model, "ckpt", None) else None
    theirs = model.val(data=str(data_yaml), imgsz=run.info.imgsz, batch=cfg.batch, conf=0.001, iou=0.7, plots=False,
                       device=ultralytics_device(device), verbose=False, split="val")
    ultra = {"bbox_AP": float(theirs.box.map), "bbox_AP50": float(theirs.box.map50), "max_det": 300,
             "note": "ultralytics' own evaluator (its interpolation and matching), for reference"}
    if model.task == "segment":
        ultra.update(segm_AP=float(theirs.seg.map), segm_AP50=float(theirs.seg.map50))
    settings = EvalSettings(backend=cfg.eval_backend, max_dets=cfg.max_dets, score_threshold=cfg.conf)
    doc = evaluate_predictor(predictor, ds, val_images, settings, run.folder,
                             {"weights": str(best), "split": cfg.val_split, "ultralytics": ultra, **(extra or {})}).doc
    print(format_report(doc))
    return doc
