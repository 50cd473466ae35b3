"""``detft train --arch yolo``: adapters -> cached YOLO dataset -> ultralytics' trainer -> detft evaluator.

The run folder ends up with the same layout as the R-CNN path (args.yaml, weights/{last,best}.pt,
metrics.csv, plots, eval.json); ultralytics' own files stay beside them (its args as
ultralytics_args.yaml, results.csv). Ultralytics checkpoints are pickled modules: every one detft
hands to ultralytics passes its restricted loader first (models/yolo.py), unless the user trusts it."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from ..dataset import Dataset
from ..errors import DetftError
from ..evaluation.groundtruth import coco_groundtruth, to_results
from ..evaluation.report import EvalSettings, format_report, write_report
from ..formats import yolo as yolo_format
from ..inference.predictor import pick_device, predict_records, ultralytics_device
from ..inference.yolo_predictor import YOLOPredictor
from ..models.labels import LabelMap
from ..models.yolo import freeze_layers, load_checkpoint, prepare_offline, read_meta, starting_point, verify_checkpoint
from ..output import atomic_directory, atomic_write_text
from ..report import Report
from .metrics import write_csv
from .trainer import EMBEDDED_DATA, TrainConfig, load_data

META = "detft_meta.json"
CACHE_VERSION = "1"
# detft --augment names -> ultralytics hyperparameters (what each turns on; 0 turns it off)
YOLO_AUGMENT = {"flip": {"fliplr": 0.5}, "scale": {"scale": 0.5, "translate": 0.1},
                "color": {"hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4}, "mosaic": {"mosaic": 1.0}}


def augment_args(spec: str | None) -> dict[str, Any]:
    """Explicit augmentation: every knob set, and ultralytics' implicit albumentations replaced by a no-op."""
    import albumentations as A

    names = ["flip", "scale", "color", "mosaic"] if spec is None else \
        [s.strip() for s in spec.split(",") if s.strip() and s.strip() != "none"]
    unknown = [n for n in names if n not in YOLO_AUGMENT]
    if unknown:
        raise DetftError(f"--augment for YOLO: unknown {unknown}; choose from {', '.join(YOLO_AUGMENT)} or none")
    out: dict[str, Any] = {k: 0.0 for d in YOLO_AUGMENT.values() for k in d}
    for n in names:
        out.update(YOLO_AUGMENT[n])
    out["augmentations"] = [A.NoOp()]  # without this ultralytics adds Blur/CLAHE/ToGray whenever albumentations is installed
    return out


def fingerprint(src: Path, task: str, seed: int) -> str:
    """Changes when any file under the source (annotations or images) changes size or time."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{task}|{seed}|{src.resolve()}".encode())
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def yolo_dataset(ds: Dataset, src: Path, task: str, cfg: TrainConfig) -> Path:
    """The YOLO copy of ``ds`` in the project's cache, written once per source version."""
    out = Path(cfg.project) / ".cache" / f"yolo-{task}-{fingerprint(src, task, cfg.seed)}"
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


def run_folder(resume: str) -> Path:
    """The run folder of ``--resume RUN`` or ``--resume RUN/weights/last.pt``."""
    path = Path(resume)
    return path if path.is_dir() else path.parent.parent


def write_meta(run: Path, ds: Dataset, cfg: TrainConfig, task: str) -> None:
    """What detft needs to evaluate, predict with or resume this run (written before training starts)."""
    labels = LabelMap.from_dataset(ds, background=False)
    atomic_write_text(run / META, json.dumps({"family": "yolo", "labels": labels.to_json(), "task": task,
                                              "imgsz": cfg.imgsz or 640, "config": asdict(cfg)}, indent=1))


def train_yolo(cfg: TrainConfig, resume: str | None = None, trust_weights: bool = False) -> Path:
    prepare_offline()
    if resume:  # the run's own settings, as for R-CNN; ultralytics restores its optimizer and epoch
        meta_file = run_folder(resume) / META
        if not meta_file.is_file():
            raise DetftError(f"{run_folder(resume)} is not a detft YOLO run (no {META})")
        cfg = saved_config(meta_file)
    src = Path(cfg.data) if cfg.data else EMBEDDED_DATA
    ds, train_images, val_images = load_data(cfg)
    if not val_images:
        raise DetftError("YOLO training needs validation images")
    if resume:
        last = run_folder(resume) / "weights" / "last.pt"
        if not last.is_file():
            raise DetftError(f"no {last} to resume")
        model = load_checkpoint(last, trust_weights)
        best = last.with_name("best.pt")
        if best.is_file():  # ultralytics unpickles it in full when the resumed run ends
            verify_checkpoint(best, trust_weights)
        ckpt = getattr(model, "ckpt", None) or {}
        if ckpt.get("epoch", -1) == -1 or ckpt.get("optimizer") is None:
            # a completed run: ultralytics would silently start a new training on its default coco8.yaml
            raise DetftError(f"cannot resume {last}: that run finished (ultralytics can only resume interrupted runs)")
        model.train(resume=True, data=ckpt["train_args"]["data"])
        return finish(model, ds, cfg, val_images, Path(model.trainer.save_dir), src)
    run = Path(cfg.project) / cfg.name
    if (run / "weights").exists() and not cfg.exist_ok:
        raise DetftError(f"{run} already holds a run; use --name, --exist-ok or --resume {run}")
    model, origin = starting_point(cfg.model, cfg.weights, ds.has_masks(), trust_weights)
    print(f"start: {origin}")
    cfg.extra["start"] = origin
    task = "segment" if model.task == "segment" else "detect"
    data_dir = yolo_dataset(ds, src, task, cfg)
    frozen = freeze_layers(model, cfg.freeze)
    device = pick_device(cfg.device)
    if cfg.unfreeze_at is not None:
        model.add_callback("on_train_epoch_start", _unfreezer(cfg.unfreeze_at))
    write_meta(run.resolve(), ds, cfg, task)
    model.train(
        data=str(data_dir / "data.yaml"), epochs=cfg.epochs, batch=cfg.batch, imgsz=cfg.imgsz or 640,
        lr0=cfg.lr, optimizer={"sgd": "SGD", "adamw": "AdamW"}[cfg.optimizer], momentum=cfg.momentum,
        weight_decay=cfg.weight_decay if cfg.weight_decay != 1e-4 else 5e-4, cos_lr=cfg.schedule == "cosine",
        warmup_epochs=0 if cfg.warmup_iters == 0 else 3.0, device=ultralytics_device(device),
        workers=cfg.workers, seed=cfg.seed, deterministic=True, project=str(Path(cfg.project).resolve()),
        name=cfg.name, exist_ok=True, amp=bool(cfg.amp) if cfg.amp is not None else device.type == "cuda",
        patience=cfg.patience or 100, freeze=frozen or None, plots=True, val=True, verbose=False,
        **augment_args(cfg.augment))
    return finish(model, ds, cfg, val_images, Path(model.trainer.save_dir), src)


def saved_config(meta_file: Path) -> TrainConfig:
    """The TrainConfig a run was started with, from its metadata; a damaged one is a named error."""
    config = read_meta(meta_file).get("config", {})
    try:
        return TrainConfig(**config)
    except TypeError as e:
        raise DetftError(f"{meta_file}: damaged 'config' ({e})") from None


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


def finish(model: Any, ds: Dataset, cfg: TrainConfig, val_images: list, run: Path, src: Path) -> Path:
    """Make the run folder look like every detft run and evaluate best.pt with the project's evaluator."""
    write_meta(run, ds, cfg, model.task)
    if (run / "args.yaml").is_file() and not (run / "ultralytics_args.yaml").exists():
        (run / "args.yaml").rename(run / "ultralytics_args.yaml")
    atomic_write_text(run / "args.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
    write_csv(run / "metrics.csv", _metrics_rows(run / "results.csv"))
    best = run / "weights" / "best.pt"
    doc = evaluate_run(best, ds, val_images, cfg, run)
    print(format_report(doc))
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
                elif k.startswith("metrics/mAP50-95"):
                    k = f"ultralytics_{rename[k[-3:]]}_AP"
                elif k.startswith("metrics/mAP50"):
                    k = f"ultralytics_{rename[k[-3:]]}_AP50"
                row[k] = float(v) if v not in ("", None) else None
            row["epoch"] = int(row["epoch"])
            row["loss"] = sum(v for k, v in row.items() if k.startswith("loss_") and v is not None)
            rows.append(row)
    return rows


def evaluate_run(best: Path, ds: Dataset, val_images: list, cfg: TrainConfig, out: Path) -> dict:
    """COCO metrics of ``best`` from detft's evaluator, with ultralytics' own numbers beside them."""
    model = load_checkpoint(best)  # written by this run's own trainer: the restricted loader reads it
    labels = LabelMap.from_dataset(ds, background=False)
    imgsz = cfg.imgsz or 640
    device = ultralytics_device(cfg.device)
    predictor = YOLOPredictor(model, labels, device=device, score_threshold=cfg.conf, max_dets=cfg.max_dets, imgsz=imgsz)
    results = to_results(ds, predict_records(predictor, val_images, "val"))
    data_yaml = Path(model.ckpt["train_args"]["data"]) if getattr(model, "ckpt", None) else None
    theirs = model.val(data=str(data_yaml), imgsz=imgsz, batch=cfg.batch, conf=0.001, iou=0.7, plots=False,
                       device=device, verbose=False, split="val")
    ultra = {"bbox_AP": float(theirs.box.map), "bbox_AP50": float(theirs.box.map50), "max_det": 300,
             "note": "ultralytics' own evaluator (its interpolation and matching), for reference"}
    if model.task == "segment":
        ultra.update(segm_AP=float(theirs.seg.map), segm_AP50=float(theirs.seg.map50))
    settings = EvalSettings(backend=cfg.eval_backend, max_dets=cfg.max_dets, score_threshold=cfg.conf)
    return write_report(out, coco_groundtruth(ds, val_images), results, settings,
                        extra={"weights": str(best), "split": cfg.val_split, "ultralytics": ultra, "out": str(out)})
