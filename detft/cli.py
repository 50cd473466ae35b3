"""Command line front end. Parsing and printing only: every command calls library functions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DetftError, run_command
from .formats import READERS, WRITERS

if TYPE_CHECKING:
    from .evaluation.report import EvalSettings


def _reader_options(args: argparse.Namespace) -> dict:
    from .formats.csv import parse_columns

    return {
        "classes": [c.strip() for c in args.classes.split(",")] if args.classes else None,
        "images_dir": args.images_dir,
        "class_attr": args.via_class_attr,
        "columns": parse_columns(args.csv_columns) if args.csv_columns else None,
    }


def _add_reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="fmt", choices=sorted(READERS), help="input format (default: detect)")
    p.add_argument("--classes", help="fixed class list 'a,b,c' (order = ids); other names are reported and dropped")
    p.add_argument("--images-dir", type=Path, help="folder holding the images, when the annotations only name them")
    p.add_argument("--csv-columns", help="CSV column names, e.g. 'filename=image,class=label,xmin=x1'")
    p.add_argument("--via-class-attr", help="VIA region attribute that holds the class (default: the first)")
    p.add_argument("--min-size", type=float, default=2.0, help="drop boxes with a side under this many px (default 2)")


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert
    from .split import parse_fractions

    result = convert(args.src, args.out, to=args.to, fmt=args.fmt,
                     split=parse_fractions(args.split) if args.split else None, seed=args.seed,
                     strict=args.strict, overwrite=args.overwrite, image_mode=args.images, task=args.task,
                     min_size=args.min_size, **_reader_options(args))
    ds = result.dataset
    print(f"wrote {args.to} dataset to {result.out}: {len(ds.images)} images, {ds.num_annotations} annotations, "
          f"{len(ds.categories)} classes, splits {', '.join(f'{s}={len(ds.images_in(s))}' for s in ds.splits())}")
    print(result.report.summary())
    print(f"full report: {result.out / 'convert_report.json'}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .convert import load
    from .preview import grid
    from .report import Report
    from .stats import class_table, size_histogram, unlabeled_images

    report = Report()
    ds = load(args.data, args.fmt, report, min_size=args.min_size, **_reader_options(args))
    print(f"{args.data}: {ds.format}, {len(ds.images)} images, {ds.num_annotations} annotations, "
          f"{len(ds.categories)} classes")
    print(class_table(ds))
    print()
    print(size_histogram(ds))
    empty = unlabeled_images(ds)
    print(f"\nimages without labels: {len(empty)}" + (f" (e.g. {', '.join(empty[:5])})" if empty else ""))
    print(report.summary())
    n = grid(ds, args.grid, n=args.n, seed=args.seed)
    print(f"preview of {n} images: {args.grid}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.report import EvalSettings, compare, format_report, load_eval

    if args.compare:
        a, b = args.compare
        print(compare(load_eval(a), load_eval(b), str(a), str(b)))
        return 0
    if args.max_dets <= 0:
        raise DetftError(f"--max-dets must be at least 1, not {args.max_dets}")
    settings = EvalSettings(backend=args.backend, max_dets=args.max_dets, score_threshold=args.conf)
    if args.weights is not None:
        doc = _eval_weights(args, settings)
    elif args.data is not None and args.dets is not None:
        doc = _eval_dets(args, settings)
    else:
        raise DetftError("detft eval needs --weights RUN (and optionally --data), --data with --dets, or --compare A B")
    print(format_report(doc))
    print(f"\nwrote {doc['out']}/eval.json, detections.json, PR curves and confusion matrix")
    return 0


def _eval_dets(args: argparse.Namespace, settings: EvalSettings) -> dict:
    """Evaluate a COCO results file against the COCO JSON its image ids refer to."""
    from .evaluation.report import write_report
    from .evaluation.validate import validate_detections, validate_groundtruth
    from .formats.base import load_json

    if not (args.data.is_file() and args.data.suffix == ".json"):
        raise DetftError("--dets evaluates a COCO results file: --data must be the COCO JSON its image ids refer to")
    gt = load_json(args.data)
    validate_groundtruth(gt, args.data)
    dets = load_json(args.dets)
    validate_detections(dets, gt, args.dets)
    out = args.out or Path("runs/eval")
    return write_report(out, gt, dets, settings, extra={"data": str(args.data), "dets": str(args.dets), "out": str(out)})


def _eval_weights(args: argparse.Namespace, settings: EvalSettings) -> dict:
    """Evaluate a trained model (any architecture, through its Predictor) on a dataset split."""
    from .convert import load
    from .engine import checkpoint
    from .engine.trainer import EMBEDDED_DATA
    from .evaluation.groundtruth import coco_groundtruth, to_results
    from .evaluation.report import write_report
    from .inference.predictor import load_predictor, predict_records, training_config
    from .report import Report

    path = checkpoint.weights_path(args.weights)
    data = args.data
    if data is None:  # the dataset it was trained on (reading the checkpoint only when needed)
        trained_on = training_config(path).get("data")
        data = Path(trained_on) if trained_on else EMBEDDED_DATA
    report = Report()
    ds = load(data, args.fmt, report)
    if len(report):
        print(report.summary())
    images = ds.images_in(args.split)
    if not images:
        raise DetftError(f"no images in split {args.split!r} of {data} (splits: {', '.join(ds.splits())})")
    predictor = load_predictor(path, device=args.device, score_threshold=settings.score_threshold,
                               max_dets=settings.max_dets, trust_weights=args.trust_weights)
    if list(predictor.labels.names) != [c.name for c in ds.sorted_categories()]:
        raise DetftError(f"the model's classes {list(predictor.labels.names)} differ from {data}'s "
                         f"{[c.name for c in ds.sorted_categories()]}")
    dets = predict_records(predictor, images, f"eval {args.split}")
    out = args.out or (Path(args.weights) if Path(args.weights).is_dir() else path.parent)
    results = to_results(ds, dets, predictor.labels.names_by_category())
    return write_report(out, coco_groundtruth(ds, images), results, settings,
                        extra={"weights": str(path), "data": str(data), "split": args.split, "out": str(out)})


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.trainer import TrainConfig, train

    cfg = TrainConfig(
        data=str(args.data) if args.data else None, data_format=args.fmt, arch=args.arch, model=args.model,
        weights=args.weights, epochs=args.epochs or (0 if args.resume else 10), batch=args.batch, lr=args.lr, optimizer=args.optimizer,
        schedule=args.schedule, warmup_iters=args.warmup_iters, imgsz=args.imgsz, freeze=args.freeze,
        unfreeze_at=args.unfreeze_at, backbone_lr_factor=args.backbone_lr_factor, augment=args.augment,
        amp=args.amp, clip_grad=args.clip_grad, patience=args.patience, device=args.device, workers=args.workers,
        seed=args.seed, project=str(args.project), name=args.name, exist_ok=args.exist_ok, conf=args.conf)
    if args.resume:
        print(f"resuming {args.resume}: its saved settings apply; only --epochs can change (to extend it)")
    run = train(cfg, resume=str(args.resume) if args.resume else None, trust_weights=args.trust_weights)
    print(f"run folder: {run}")
    return 0


def add_inference_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``detft predict`` and ``detft video``."""
    p.add_argument("--weights", required=True, type=Path, help="run folder or checkpoint (R-CNN or YOLO, det or seg)")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument("--imgsz", type=int, help="inference size (default: what the model was trained at)")
    p.add_argument("--max-dets", type=int, default=100)
    p.add_argument("--device", default="auto")
    add_trust_arg(p)


def add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-weights", action="store_true",
                   help="load a YOLO checkpoint that the safe loader refuses (it can run code: only files you trust)")


def cmd_video(args: argparse.Namespace) -> int:
    from .inference.video import infer_video

    infer_video(args.weights, args.source, out=args.out, jsonl=args.jsonl, track=args.track, show=args.show,
                conf=args.conf, imgsz=args.imgsz, max_dets=args.max_dets, device=args.device,
                trust_weights=args.trust_weights, fps_overlay=not args.no_fps_overlay, stats_every=args.stats_every,
                max_frames=args.max_frames, timeout=args.timeout, max_backoff=args.max_backoff,
                max_retries=args.max_retries, out_fps=args.out_fps, overwrite=args.overwrite)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference.video import predict_images

    out = predict_images(args.weights, args.source, args.out, conf=args.conf, imgsz=args.imgsz,
                         max_dets=args.max_dets, device=args.device, trust_weights=args.trust_weights)
    print(f"annotated images and predictions.jsonl in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detft", description="Fine-tune detection models on your own data.")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert annotations to COCO JSON, a YOLO dataset or VOC XML")
    p.add_argument("src", type=Path, help="annotation file or dataset folder")
    p.add_argument("out", type=Path, help="output folder (created; written atomically)")
    p.add_argument("--to", choices=sorted(WRITERS), default="coco")
    _add_reader_args(p)
    p.add_argument("--split", help="re-split as train,val,test fractions, e.g. 0.8,0.2,0")
    p.add_argument("--seed", type=int, default=0, help="seed for --split (default 0)")
    p.add_argument("--strict", action="store_true", help="fail, writing nothing, if anything would be dropped or changed")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--images", choices=["symlink", "hardlink", "copy"], default="symlink",
                   help="how images get into OUT (default symlink)")
    p.add_argument("--task", choices=["detect", "segment"], help="YOLO label type (default: segment if masks exist)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("inspect", help="counts per class and split, box sizes, and a preview grid PNG")
    p.add_argument("data", type=Path, help="annotation file or dataset folder")
    _add_reader_args(p)
    p.add_argument("--grid", type=Path, default=Path("inspect.png"), help="preview PNG path (default inspect.png)")
    p.add_argument("-n", type=int, default=16, help="images in the preview (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", help="fine-tune a pretrained detector (R-CNN via torchvision; YOLO via ultralytics)")
    p.add_argument("--data", type=Path, help="dataset in any supported format (default: embedded datasets/shapes)")
    p.add_argument("--from", dest="fmt", choices=sorted(READERS), help="input format (default: detect)")
    p.add_argument("--arch", default="fasterrcnn", help="fasterrcnn, maskrcnn, yolo, or a registered model name")
    p.add_argument("--model", help="R-CNN: a registered model, e.g. fasterrcnn_efficientnet_lite0_fpn (offline "
                                   "ImageNet backbone); YOLO: a model yaml or .pt (yolov8s-seg.yaml, yolo11n.pt)")
    p.add_argument("--weights", help="R-CNN: DEFAULT (torchvision, cached; packaged ImageNet backbone for the "
                                     "*_efficientnet_lite0/_mobilenet_v2 models), a weights name, backbone[:NAME], none, "
                                     "or a file/run. YOLO: fall-detection (offline, the default when installed), a .pt, "
                                     "or none")
    p.add_argument("--epochs", type=int, help="epochs to train (default 10; with --resume: extend to this many)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine")
    p.add_argument("--warmup-iters", type=int, default=100)
    p.add_argument("--imgsz", type=int, help="shorter image side fed to the model (default: the model's own)")
    p.add_argument("--freeze", default="backbone", help="backbone (default), backbone+fpn, none, or N backbone stages")
    p.add_argument("--unfreeze-at", type=int, help="epoch (0-based) at which frozen layers start training")
    p.add_argument("--backbone-lr-factor", type=float, default=0.1, help="lr multiplier for unfrozen layers")
    p.add_argument("--augment", help="comma list of flip,scale,color (YOLO also: mosaic), or none; default: all")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (default: on for CUDA)")
    p.add_argument("--clip-grad", type=float, default=10.0, help="max gradient norm (0: off)")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better mAP")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", type=Path, default=Path("runs"))
    p.add_argument("--name", default="train")
    p.add_argument("--exist-ok", action="store_true", help="train into an existing run folder")
    p.add_argument("--resume", type=Path, help="run folder (or last.pt) to continue; --epochs may extend it")
    p.add_argument("--conf", type=float, default=0.001, help="score threshold of validation detections (default 0.001)")
    add_trust_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="COCO mAP (bbox and segm), per-class table, PR curves, confusion matrix")
    p.add_argument("--weights", type=Path, help="run folder or checkpoint of any detft model")
    p.add_argument("--data", type=Path, help="dataset (default with --weights: the one it was trained on); COCO JSON with --dets")
    p.add_argument("--from", dest="fmt", choices=sorted(READERS), help="format of --data (default: detect)")
    p.add_argument("--split", default="val", help="split to evaluate with --weights (default val)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dets", type=Path, help="detections in COCO results format")
    p.add_argument("--backend", choices=["faster", "pycocotools"], default="faster",
                   help="faster-coco-eval (default) or pycocotools: same numbers")
    p.add_argument("--max-dets", type=int, default=100, help="detections per image evaluated (COCO: 100; ultralytics: 300)")
    p.add_argument("--conf", type=float, default=0.001, help="score threshold for evaluated detections (default 0.001)")
    p.add_argument("--out", type=Path, help="folder for eval.json and plots (default: the run folder, or runs/eval)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"), help="print two evaluations side by side")
    add_trust_arg(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="run a trained model on an image or a folder (videos and cameras: "
                                       "detft video)")
    add_inference_args(p)
    p.add_argument("--source", required=True, type=Path, help="image file or folder (searched recursively)")
    p.add_argument("--out", type=Path, default=Path("runs/predict"), help="output folder (default runs/predict)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("video", help="run a trained model on a video file, an image folder, a webcam (index) or a "
                                     "stream (rtsp://, http(s)://, udp://); also tools/infer_video.py")
    add_inference_args(p)
    p.add_argument("--track", action="store_true", help="ByteTrack ids (same tracker for every architecture)")
    p.add_argument("--source", required=True, help="video file, image folder, webcam index or stream URL")
    p.add_argument("--out", type=Path, help="annotated MP4 (a file keeps its source's frame rate)")
    p.add_argument("--jsonl", type=Path, help="detections, one JSON line per frame")
    p.add_argument("--show", action="store_true", help="display the annotated frames (needs a screen)")
    p.add_argument("--no-fps-overlay", action="store_true")
    p.add_argument("--stats-every", type=float, default=5.0, help="seconds between counter lines")
    p.add_argument("--max-frames", type=int)
    p.add_argument("--timeout", type=float, default=5.0, help="live sources: open/read timeout in seconds")
    p.add_argument("--max-backoff", type=float, default=10.0, help="live sources: longest wait between reconnects")
    p.add_argument("--max-retries", type=int, default=None,
                   help="live sources: give up after this many failed (re)connects in a row (default: 5 before the "
                        "first frame, unlimited after it)")
    p.add_argument("--out-fps", type=float, help="frame rate of --out (default: the source's; 25 when it reports none)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out / --jsonl files")
    p.set_defaults(func=cmd_video)

    for command in sub.choices.values():  # --debug after the command too (tools/infer_video.py passes it there)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="print the traceback of an unexpected error")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inputs = ", ".join(str(v) for k in ("src", "data", "weights", "source", "dets", "resume")
                       if (v := getattr(args, k, None)) is not None) or "(no input)"
    return run_command(args.command, lambda: args.func(args), inputs, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
