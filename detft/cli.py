"""Command line front end. Parsing and printing only: every command calls library functions."""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from .util.bounds import COUNT, FRACTION, NONNEGATIVE, NONNEGATIVE_INT, OVERLAP, POSITIVE, SIZE, VISIBILITY
from .errors import EXIT_CODES, DetftError, OfflineStart, run_command
from .export import CALIBRATION_IMAGES, FORMATS, GRAPH_FILES, INT8_TOLERANCE, TOLERANCE
from .formats import READERS, WRITERS

if TYPE_CHECKING:
    from .api import Model
    from .evaluation.report import EvalSettings


def _reader_options(args: argparse.Namespace) -> dict:
    from .formats.csv import parse_columns

    return {
        "classes": [c.strip() for c in args.classes.split(",")] if args.classes else None,
        "images_dir": args.images_dir,
        "class_attr": args.via_class_attr,
        "default_class": args.via_default_class,
        "columns": parse_columns(args.csv_columns) if args.csv_columns else None,
        "class_name": args.class_name,
        "fields": args.fields,
        "coords": args.coords,
    }


def reader_name(text: str) -> str:
    """``--from``: a format detft reads, one an installed package adds, or an adapter file (``my_adapter.py``)."""
    from .formats.adapters import installed

    if text in READERS or text.endswith(".py") or text in installed():
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: one of {', '.join(sorted([*READERS, *installed()]))}, or an adapter "
                                     "file my_adapter.py defining read(root)")


def _add_reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="fmt", type=reader_name, help=f"input format (default: detect): "
                   f"{', '.join(sorted(READERS))}, or my_adapter.py (a file defining read(root))")
    p.add_argument("--classes", help="fixed class list 'a,b,c' (order = ids); other names are reported and dropped")
    p.add_argument("--images-dir", type=Path, help="folder holding the images, when the annotations only name them")
    p.add_argument("--csv-columns", help="CSV column names, e.g. 'filename=image,class=label,xmin=x1'")
    p.add_argument("--via-class-attr", help="VIA region attribute that holds the class (default: the first)")
    p.add_argument("--via-default-class", help="class of VIA regions without attributes (default, when no region has "
                   "any: the file stem or dataset folder, announced)")
    p.add_argument("--fields", help="--from text: what each column is, e.g. 'x1 y1 x2 y2 class' (fields: x1 y1 x2 "
                   "y2 cx cy w h x y class score image, _ to skip)")
    p.add_argument("--coords", choices=["pixel", "normalized"], help="--from text: pixels (default) or fractions of "
                   "the image size")
    p.add_argument("--class-name", help="the class of one-mask-per-object data (DSB 2018, nucleus), whose files name "
                   "none (default: the dataset folder's name)")
    p.add_argument("--min-size", type=NONNEGATIVE.argtype(), default=2.0,
                   help="drop boxes with a side under this many px (default 2)")


def cmd_convert(args: argparse.Namespace) -> int:
    """``detft convert``, and ``merge`` and ``split``, which are conversions with several sources or a new split."""
    from .annotations.accounting import sources_table
    from .operations.classmap import parse_map
    from .operations.convert import convert
    from .operations.split import parse_fractions
    from .operations.tiling import Tiling

    tile = getattr(args, "tile", None)
    shape = {k: getattr(args, f"tile_{k}", None) for k in ("overlap", "min_visibility", "negatives")}
    if tile is None and any(v is not None for v in shape.values()):
        raise DetftError("--tile-overlap, --tile-min-visibility and --tile-negatives shape the tiles of --tile, "
                         "which is not given")
    tiling = Tiling(tile, **{k: v for k, v in shape.items() if v is not None}, seed=args.seed) \
        if tile is not None else None
    flag = "--ratios" if args.command == "split" else "--split"
    result = convert(args.src, args.out, to=args.to, fmt=args.fmt,
                     split=parse_fractions(args.split, flag) if args.split else None, seed=args.seed,
                     strict=args.strict, overwrite=args.overwrite, image_mode=args.images, task=args.task,
                     min_size=args.min_size, tiling=tiling, class_map=parse_map(args.map) if args.map else None,
                     stratify=args.stratify, group=args.group, ls_root=args.ls_root, ls_url=args.ls_url,
                     **_reader_options(args))
    ds = result.dataset
    print(f"wrote {args.to} dataset to {result.out}: {len(ds.images)} images, {result.written} annotations, "
          f"{len(ds.categories)} classes, splits {', '.join(f'{s}={len(ds.images_in(s))}' for s in ds.splits())}")
    print(sources_table(ds, result.report))
    print(result.report.summary())
    print(f"full report: {result.out / 'convert_report.json'}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    if len(args.paths) < 3:
        raise DetftError("detft merge A B [C ...] OUT: at least two datasets and the output folder")
    args.src, args.out = args.paths[:-1], args.paths[-1]
    return cmd_convert(args)


def _add_writer_args(p: argparse.ArgumentParser, split_default: str | None = None) -> None:
    """What convert, merge and split share: the output format and how it is written, the class map, a split."""
    p.add_argument("--to", choices=sorted(WRITERS), default="coco")
    _add_reader_args(p)
    p.add_argument("--map", help="rename, join or drop classes: 'car=vehicle,truck=vehicle,drop=bicycle'")
    if split_default is None:
        p.add_argument("--split", help="re-split as train,val,test fractions, e.g. 0.8,0.2,0")
    else:
        p.add_argument("--ratios", dest="split", default=split_default,
                       help=f"train,val,test fractions (default {split_default})")
    p.add_argument("--stratify", action=argparse.BooleanOptionalAction, default=split_default is not None,
                   help="keep each class in each split in proportion (default: on for split, off for --split)")
    p.add_argument("--group", action=argparse.BooleanOptionalAction, default=split_default is not None,
                   help="keep near-identical images (frames of one video) in one split (default: on for split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--strict", action="store_true", help="fail, writing nothing, if anything would be dropped or changed")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--images", choices=["symlink", "hardlink", "copy"], default="symlink",
                   help="how images get into OUT (default symlink)")
    p.add_argument("--task", choices=["detect", "segment"], help="YOLO label type (default: segment if masks exist)")
    add_label_studio_serving_args(p)


def add_label_studio_serving_args(p: argparse.ArgumentParser) -> None:
    """Where a Label Studio server finds the images of written tasks (--to labelstudio, --save-labels labelstudio)."""
    p.add_argument("--ls-root", type=Path, metavar="DIR", help="Label Studio tasks: the server's "
                   "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, which OUT lies under; image URLs are written relative to "
                   "it, so one server serves many outputs (default: relative to OUT, which must then be the root)")
    p.add_argument("--ls-url", metavar="BASE", help="Label Studio tasks: the http(s)://, s3:// or gs:// address "
                   "OUT's images are served at; image URLs are BASE/<path under OUT>")


def cmd_inspect(args: argparse.Namespace) -> int:
    from .operations.convert import load
    from .annotations.preview import grid
    from .annotations.report import Report
    from .annotations.stats import class_table, size_histogram, unlabeled_images

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
    settings = EvalSettings(backend=args.backend, max_dets=args.max_dets, score_threshold=args.conf,
                            target_precision=args.target_precision)
    if args.weights is not None:
        doc = _eval_weights(args, settings)
    elif args.data is not None and args.dets is not None:
        doc = _eval_dets(args, settings)
    else:
        raise DetftError("detft eval needs --weights RUN (and optionally --data), --data with --dets, or --compare A B")
    print(format_report(doc))
    print(f"\nwrote {doc['out']}/eval.json, detections.json, PR curves and confusion matrix")
    return 0


UNUSABLE_SHOWN = 5  # detections eval --dets names in its warning of unusable masks; eval.json lists every one


def _eval_dets(args: argparse.Namespace, settings: EvalSettings) -> dict:
    """Evaluate a COCO results file against the COCO JSON its image ids refer to."""
    from .evaluation.report import write_report
    from .evaluation.validate import validate_detections, validate_groundtruth
    from .formats.base import load_json

    if not (args.data.is_file() and args.data.suffix == ".json"):
        raise DetftError("--dets evaluates a COCO results file: --data must be the COCO JSON its image ids refer to")
    gt = load_json(args.data)
    validate_groundtruth(gt, args.data)
    dets, unusable = validate_detections(load_json(args.dets), gt, args.dets)
    if unusable:
        shown = "; ".join(unusable[:UNUSABLE_SHOWN]) + ("; ..." if len(unusable) > UNUSABLE_SHOWN else "")
        print(f"warning: {args.dets}: {len(unusable)} detection(s) with a segmentation that cannot be scored, left "
              f"out of segm (a box, where given, is still scored; every one under unusable_segmentations in eval.json):"
              f" {shown}", file=sys.stderr)
    out = args.out or Path("runs/eval")
    return write_report(out, gt, dets, settings, extra={"data": str(args.data), "dets": str(args.dets), "out": str(out),
                                                        "unusable_segmentations": unusable}, dets_file=args.dets)


def _eval_weights(args: argparse.Namespace, settings: EvalSettings) -> dict:
    """Evaluate a trained model (any family) on a dataset split; the report goes beside what was named. A run
    trained on tiles is scored on the full images in windows of its tile size (as it is used), its tiles beside."""
    from .api import load, run_dataset, tiled_slicing
    from .runs import Run

    run = Run.open(args.weights)
    trained_on = run.info.config.tiling if run.weights.suffix not in GRAPH_FILES else None
    tiles = trained_on if args.slice is None and not args.no_slice else None
    data = args.data
    if tiles is None:
        slicing = _slicing(args)
    else:  # as training scored it, unless --slice-overlap / --slice-full say otherwise
        data = run_dataset(run, args.data, args.fmt)
        slicing = tiled_slicing(tiles, data)
        slicing["slice_overlap"] = slicing["slice_overlap"] if args.slice_overlap is None else args.slice_overlap
        slicing["slice_full"] = slicing["slice_full"] or args.slice_full
    model = load(args.weights, device=args.device, conf=settings.score_threshold, max_dets=settings.max_dets,
                 trust_weights=args.trust_weights, **slicing)
    out = args.out or (args.weights if args.weights.is_dir() else args.weights.parent)
    if args.slice and not args.out:  # beside, not over, the run's own eval.json (whose thresholds --conf auto uses)
        out = out / f"eval_slice{args.slice}"
    elif args.no_slice and trained_on is not None and not args.out:
        out = out / "eval_whole"
    return model.evaluate(data, args.split, data_format=args.fmt, out=out, conf=settings.score_threshold,
                          max_dets=settings.max_dets, backend=settings.backend,
                          target_precision=settings.target_precision, tiles=tiles).doc


def cmd_train(args: argparse.Namespace) -> int:
    from .api import train
    from .config import TrainConfig

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if args.resume:
        ignored = sorted(k for k in given if k != "epochs")
        print(f"resuming {args.resume}: its saved settings apply; only --epochs can change (to extend it)"
              + (f"; ignoring {', '.join('--' + k.replace('_', '-') for k in ignored)}" if ignored else ""))
        run = train(resume=args.resume, trust_weights=args.trust_weights, mlflow=args.mlflow,
                    **({"epochs": given["epochs"]} if "epochs" in given else {}))
    else:
        run = train(args.config, trust_weights=args.trust_weights, mlflow=args.mlflow, **given)
    print(f"run folder: {run.folder}")
    return 0


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (its help and default from the field), so a setting can never be
    saved in run.yaml without a flag to change it. Defaults are left to the config: a flag not given
    keeps the value of --config (or the built-in default)."""
    from typing import get_type_hints

    from .config import TrainConfig

    from .config import flag_of

    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag = flag_of(f)
        kind = hints[f.name]
        help_text = f.metadata["help"] + ("" if f.default is None else f" (default: {f.default})")
        if kind in (bool, bool | None):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_text)
            continue
        base = next(t for t in (int, float, str) if kind in (t, t | None))
        bound = f.metadata.get("bound")
        kind = reader_name if f.name == "data_format" else bound.argtype() if bound else base
        p.add_argument(flag, dest=f.name, type=kind, choices=f.metadata.get("choices"), default=argparse.SUPPRESS,
                       help=help_text)


def add_inference_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``detft predict`` and ``detft video``."""
    p.add_argument("--weights", required=True, type=Path,
                   help="run folder, checkpoint (R-CNN or YOLO, det or seg) or .onnx file from detft export")
    p.add_argument("--conf", type=conf_value, default=0.25,
                   help="score threshold (default 0.25), or 'auto': each class's best-F1 threshold from the run's eval.json")
    p.add_argument("--imgsz", type=SIZE.argtype(), help="inference size (default: what the model was trained at)")
    p.add_argument("--max-dets", type=COUNT.argtype(), default=100)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=COUNT.argtype(), help="CPU threads for inference (PyTorch, ONNX Runtime, "
                                                            "OpenVINO; default: one per core)")
    add_slice_args(p)
    add_trust_arg(p)


def conf_value(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return FRACTION.argtype()(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{e}, or 'auto'") from None


def add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-weights", action="store_true",
                   help="load a YOLO checkpoint that the safe loader refuses (it can run code: only files you trust)")


def _load(args: argparse.Namespace) -> Model:
    """The model of ``--weights`` for predict and video (the API is imported here, keeping --help fast)."""
    from .api import load

    model = load(args.weights, device=args.device, conf=args.conf, max_dets=args.max_dets, imgsz=args.imgsz,
                 trust_weights=args.trust_weights, threads=args.threads, **_slicing(args))
    if args.slice is None and (sl := model.slicing) is not None:
        print(f"note: {args.weights} was trained on {sl.size} px tiles: each image is predicted in {sl.size} px windows"
              f" (overlap {sl.overlap:g}{', and whole' if sl.full else ''}), as its evaluation did; --no-slice for "
              "whole images", file=sys.stderr)
    return model


def _slicing(args: argparse.Namespace) -> dict:
    if args.slice is None and (args.slice_overlap is not None or args.slice_full):
        raise DetftError("--slice-overlap and --slice-full shape the windows of --slice, which is not given")
    if args.slice is not None and getattr(args, "no_slice", False):
        raise DetftError("--slice and --no-slice: choose one")
    auto = None if getattr(args, "no_slice", False) else "auto"  # a run trained on tiles slices as it was tiled
    return {"slice": auto if args.slice is None else args.slice,
            "slice_overlap": 0.2 if args.slice_overlap is None else args.slice_overlap, "slice_full": args.slice_full}


def add_slice_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slice", type=SIZE.argtype(), help="predict each image window by window, this many px square "
                   "(small objects in large images); the windows' detections are merged")
    p.add_argument("--slice-overlap", type=OVERLAP.argtype(), help="overlap of neighbouring windows (default 0.2)")
    p.add_argument("--slice-full", action="store_true", help="with --slice, also predict the whole image (large objects)")
    p.add_argument("--no-slice", action="store_true", help="whole images even for a run trained on tiles (which "
                   "otherwise predicts in its tile-size windows)")


def cmd_video(args: argparse.Namespace) -> int:
    from .inference.video import VIDEO_SUFFIX, check_output_file
    from .util.output import check_output
    from .runs import Run

    options = dict(track=args.track, show=args.show, fps_overlay=not args.no_fps_overlay, stats_every=args.stats_every,
                   max_frames=args.max_frames, timeout=args.timeout, max_backoff=args.max_backoff,
                   max_retries=args.max_retries, out_fps=args.out_fps, overwrite=args.overwrite)
    cameras = _cameras(args)
    if cameras is None:  # one --source: a file, folder, webcam or stream, as always
        for flag in ("--events", "--metrics-port", "--batch"):
            if getattr(args, flag[2:].replace("-", "_")) is not None:
                raise DetftError(f"{flag} is for several cameras (--source repeated, or --sources cameras.yaml)")
        for flag, path, suffix in (("--out", args.out, VIDEO_SUFFIX), ("--jsonl", args.jsonl, None)):
            check_output_file(path, args.overwrite, suffix)  # before the model loads: a wrong path fails fast
            if path is not None:
                local = [Path(args.source[0])] if Path(args.source[0]).exists() else []  # not a camera or a URL
                check_output(path, [*local, *Run.open(args.weights).inputs], flag)
        _load(args).video(args.source[0], out=args.out, jsonl=args.jsonl, **options)
        return 0
    from .inference.streams import check_outputs

    check_outputs(cameras, args.out, args.jsonl, args.events, args.overwrite)
    local = [Path(c.url) for c in cameras if Path(c.url).exists()]
    for flag, path in (("--out", args.out), ("--jsonl", args.jsonl), ("--events", args.events)):
        if path is not None:
            check_output(path, [*local, *Run.open(args.weights).inputs], flag)
    _load(args).video(cameras, out=args.out, jsonl=args.jsonl, events=args.events, batch=args.batch,
                      metrics_port=args.metrics_port, **options)
    return 0


def _cameras(args: argparse.Namespace) -> list | None:
    """The cameras of ``--source`` (repeated) or ``--sources``, or None for one ``--source`` (the single-stream loop,
    with its progress bar and per-file JSONL lines)."""
    from .inference.cameras import cameras_from_sources, read_cameras, select_cameras

    if args.sources is not None and args.source:
        raise DetftError("--source and --sources: give the cameras one way (add them to the --sources file)")
    if args.sources is None and not args.source:
        raise DetftError("name what to run on: --source (a file, folder, webcam index or URL; repeat it for several) "
                         "or --sources cameras.yaml")
    if args.camera and args.sources is None:
        raise DetftError("--camera picks cameras of the --sources file, which is not given")
    if args.sources is None and len(args.source) == 1:
        return None
    cameras = read_cameras(args.sources) if args.sources is not None else cameras_from_sources(args.source)
    return select_cameras(cameras, args.camera, str(args.sources)) if args.camera else cameras


def cmd_predict(args: argparse.Namespace) -> int:
    from .util.output import free_name

    model = _load(args)
    if args.save_labels:
        from .labelling.prelabels import count_by_class

        fmt, out = args.save_labels
        saved = model.save_labels(args.source, fmt, out, images=args.images, overwrite=args.overwrite, task=args.task,
                                  ls_root=args.ls_root, ls_url=args.ls_url)
        counts = count_by_class(saved.dataset)
        print(f"wrote {fmt} pre-labels to {saved.out}: {len(saved.dataset.images)} images, "
              f"{sum(counts.values())} detections ({', '.join(f'{n} {k}' for k, n in counts.items())}) at "
              f"--conf {args.conf}")
        if len(saved.report):
            print(saved.report.summary())
        if args.out is None:
            return 0
    out = model.annotate(args.source, args.out or free_name(Path("runs/predict")), overwrite=args.overwrite)
    print(f"annotated images and predictions.jsonl in {out}")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from .api import load
    from .util.output import free_name
    from .annotations.report import printable

    model = load(args.weights, device=args.device, imgsz=args.imgsz, trust_weights=args.trust_weights)
    out = args.out or free_name(Path("runs/rank"))
    rows = model.rank(args.source, out, top=args.top, sheet=args.sheet, order=args.order, overwrite=args.overwrite)
    width = max([len(r.file) for r in rows[:20]] + [4])
    print(f"{'rank':>4}  {'file':<{width}}  {'score':>5}  {'spread':>6}  {'near':>6}  {'flip':>6}  {'dets':>4}  "
          "weakest class")
    for k, r in enumerate(rows[:20], 1):
        spread = f"{r.distance:6.3f}" if r.distance is not None else f"{'-':>6}"
        print(f"{k:>4}  {printable(r.file):<{width}}  {r.score:5.3f}  {spread}  {r.near_threshold:6.2f}  "
              f"{r.flip_disagreement:6.2f}  {r.detections:>4}  {r.weakest_class}")
    if len(rows) > 20:
        print(f"... {len(rows) - 20} more")
    sheet = f" and contact_sheet.png (the first {min(args.sheet, len(rows))})" if args.sheet and rows else ""
    print(f"wrote {out / 'rank.csv'}, rank.json{sheet}")
    return 0


def cmd_pseudo(args: argparse.Namespace) -> int:
    from .api import load
    from .labelling.pseudo import check_classes

    model = load(args.weights, device=args.device, conf=args.conf, imgsz=args.imgsz, trust_weights=args.trust_weights)
    if args.data is not None:  # before a single image is predicted: the labels join the data by class name
        check_classes(model.run.folder, model.classes, args.data, args.data_format)
    pseudo = model.pseudo_label(args.source, args.out, overwrite=args.overwrite)
    print(f"train on them beside the labelled data: detft train --data {args.data or 'DATA'} "
          f"--pseudo-labels {pseudo.folder} (training split only; validation stays labelled)")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from .api import load
    from .util.output import free_name

    if args.no_folds and args.folds is not None:
        raise DetftError("--folds and --no-folds: choose one (k-fold models, or the run's own model in-sample)")
    model = load(args.weights, device=args.device or "auto", trust_weights=args.trust_weights)
    out = args.out or free_name(Path("runs/audit"))
    result = model.audit(args.data, out, folds=None if args.no_folds else args.folds or 3,
                         fold_epochs=args.fold_epochs, fold_budget=args.fold_budget, seed=args.seed, group=args.group,
                         save_labels=args.save_labels, images=args.images, min_score=args.min_score,
                         fix_score=args.fix_score, sheet=args.sheet, data_format=args.fmt, device=args.device,
                         trust_weights=args.trust_weights, overwrite=args.overwrite)
    print(result.summary())
    print(f"wrote {out}: issues.csv, issues.json, images.csv, audit.json, changes.json, fixes/ "
          f"({result.doc['settings']['save_labels']}, {result.doc['fixes']['applied']} fixes applied)"
          + (", contact_sheet.jpg" if result.issues and args.sheet else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    _load(args).serve(host=args.host, port=args.port, ls_root=args.ls_root, ls_host=args.ls_host,
                      ls_token=args.ls_token)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .api import load

    model = load(args.weights, device="cpu", trust_weights=args.trust_weights, slice=None)
    result = model.export(args.out, format=args.format, imgsz=args.imgsz, dynamic=args.dynamic, half=args.half,
                          int8=args.int8, calibration_images=args.calibration_images, opset=args.opset,
                          max_dets=args.max_dets, data=args.data, data_format=args.fmt,
                          split=args.split, device=args.device, tolerance=args.tolerance,
                          accept_drop=args.accept_drop, trust_weights=args.trust_weights)
    print(f"wrote {result.path} and {result.path.parent / 'export.json'}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import CONTROLLED, benchmark
    from .config import TrainConfig, load_config

    shared = {}
    if args.config:  # the settings it changes from the defaults, except those the benchmark decides itself
        saved, default = load_config(args.config).to_dict(), TrainConfig().to_dict()
        shared = {k: v for k, v in saved.items() if v != default[k] and k not in CONTROLLED}
    shared.update({k: getattr(args, k) for k in ("imgsz", "batch", "device", "workers") if getattr(args, k) is not None})
    if args.images_dir is not None:
        shared["images_dir"] = str(args.images_dir)
    benchmark(args.data, args.candidates, args.freeze, budget=args.budget, epochs=args.epochs, seeds=args.seeds,
              out=args.out, data_format=args.fmt, seed=args.seed, **shared)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """``detft runs [DIR]`` (the table) and ``detft runs compare A B ...`` (side by side)."""
    import json

    from .api import compare_runs, list_runs
    from .config import TrainConfig
    from .run_table import format_comparison, format_table

    if args.paths[:1] == ["compare"]:
        if args.sort:
            raise DetftError("--sort orders the table of runs; detft runs compare lists the runs in the order given")
        comparison = compare_runs(*args.paths[1:], folder=args.dir, all_keys=args.all)
        print(json.dumps(comparison.to_dict(), indent=1) if args.json else format_comparison(comparison))
        return 0
    if len(args.paths) > 1 or args.all or args.dir:
        raise DetftError("detft runs [DIR] lists the runs of one folder (--all and --dir are for detft runs compare "
                         "A B [C ...])")
    root = Path(args.paths[0] if args.paths else TrainConfig().project)
    rows = list_runs(root, sort=args.sort or "newest")
    print(json.dumps([r.to_dict() for r in rows], indent=1) if args.json else format_table(rows, root))
    return 0


def exit_code_table() -> str:
    """``detft --help``'s epilog: every exit code and what it means, the same for every command."""
    rows = (textwrap.fill(meaning, 79, initial_indent=f"  {int(code):<5}", subsequent_indent=" " * 7,
                          break_on_hyphens=False) for code, meaning in EXIT_CODES.items())
    return "exit codes (every command):\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detft", description="Fine-tune detection models on your own data.",
                                     epilog=exit_code_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert annotations to COCO, YOLO, VOC, LabelMe, CVAT or VIA")
    p.add_argument("src", type=Path, help="annotation file or dataset folder")
    p.add_argument("out", type=Path, help="output folder (created; written atomically)")
    _add_writer_args(p)
    p.add_argument("--tile", type=SIZE.argtype(), help="cut every image and its annotations into tiles of this many px")
    p.add_argument("--tile-overlap", type=OVERLAP.argtype(), help="overlap of neighbouring tiles (default 0.2)")
    p.add_argument("--tile-min-visibility", type=VISIBILITY.argtype(),
                   help="fraction of an object a tile must hold to keep it (default 0.3)")
    p.add_argument("--tile-negatives", type=NONNEGATIVE.argtype(),
                   help="tiles without objects kept, per tile with objects (default 0.1)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("merge", help="several datasets as one: classes joined by name, an image found twice "
                                     "(identical bytes) kept once, both reported")
    p.add_argument("paths", nargs="+", type=Path, metavar="DATA", help="two or more datasets (any format), then OUT")
    _add_writer_args(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("split", help="a new train/val/test split: stratified by class, near-identical images "
                                     "(frames of one video) kept together")
    p.add_argument("src", type=Path, help="annotation file or dataset folder")
    p.add_argument("out", type=Path, help="output folder (created; written atomically)")
    _add_writer_args(p, split_default="0.8,0.2")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("inspect", help="counts per class and split, box sizes, and a preview grid PNG")
    p.add_argument("data", type=Path, help="annotation file or dataset folder")
    _add_reader_args(p)
    p.add_argument("--grid", type=Path, default=Path("inspect.png"), help="preview PNG path (default inspect.png)")
    p.add_argument("-n", type=COUNT.argtype(), default=16, help="images in the preview (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train", help="fine-tune a pretrained detector (R-CNN via torchvision; YOLO via ultralytics)")
    p.add_argument("--config", type=Path, help="run.yaml of a run (or a YAML of config fields) to reproduce; "
                                               "flags given beside it override its values")
    add_config_args(p)
    p.add_argument("--resume", type=Path, help="run folder (or last.pt) to continue; --epochs may extend it")
    add_trust_arg(p)
    tracking = p.add_mutually_exclusive_group()
    tracking.add_argument("--mlflow", nargs="?", const=True, default=None, metavar="URI",
                          help="track the run in MLflow (pip install 'detft[mlflow]'): at URI, else at "
                               "MLFLOW_TRACKING_URI, else in ./mlruns; on without this flag when MLFLOW_TRACKING_URI "
                               "is set, and a resumed run continues its MLflow run")
    tracking.add_argument("--no-mlflow", dest="mlflow", action="store_false", default=None,
                          help="do not track in MLflow, even with MLFLOW_TRACKING_URI set")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="COCO mAP (bbox and segm), per-class table, PR curves, confusion matrix")
    p.add_argument("--weights", type=Path, help="run folder, checkpoint or .onnx export of any detft model")
    p.add_argument("--data", type=Path, help="dataset (default with --weights: the one it was trained on); COCO JSON with --dets")
    p.add_argument("--from", dest="fmt", type=reader_name, help="format of --data (default: detect)")
    p.add_argument("--split", default="val", help="split to evaluate with --weights (default val)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dets", type=Path, help="detections in COCO results format")
    p.add_argument("--backend", choices=["faster", "pycocotools"], default="faster",
                   help="faster-coco-eval (default) or pycocotools: same numbers")
    p.add_argument("--max-dets", type=COUNT.argtype(), default=100,
                   help="detections per image evaluated (COCO: 100; ultralytics: 300)")
    p.add_argument("--conf", type=FRACTION.argtype(), default=0.001,
                   help="score threshold for evaluated detections (default 0.001)")
    p.add_argument("--target-precision", type=VISIBILITY.argtype(), help="store, per class, the lowest score threshold reaching this "
                   "precision (default: the best-F1 threshold); --conf auto then uses them")
    p.add_argument("--out", type=Path, help="folder for eval.json and plots (default: the run folder, or runs/eval)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"), help="print two evaluations side by side")
    add_slice_args(p)
    add_trust_arg(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="run a trained model on an image or a folder (videos and cameras: "
                                       "detft video)")
    add_inference_args(p)
    p.add_argument("--source", required=True, type=Path, help="image file or folder (searched recursively)")
    p.add_argument("--out", type=Path, help="folder for annotated images and predictions.jsonl (default "
                   "runs/predict; with --save-labels, only when given)")
    p.add_argument("--save-labels", nargs=2, metavar=("FORMAT", "OUT"),
                   help=f"write the detections as a dataset to OUT, pre-labels for an annotation tool: "
                        f"{', '.join(sorted(WRITERS))} (scores kept in coco, cvat, labelme, via, labelstudio, kitti; "
                        "labelstudio writes them as predictions to accept or correct)")
    p.add_argument("--images", choices=["symlink", "hardlink", "copy"], default="symlink",
                   help="how --save-labels places the images beside the labels (default symlink)")
    p.add_argument("--task", choices=["detect", "segment"], help="YOLO label type for --save-labels "
                   "(default: segment when the model predicts masks)")
    p.add_argument("--overwrite", action="store_true", help="replace --out or the --save-labels OUT if it exists and "
                   "detft wrote it (default --out: runs/predict, or runs/predict2... when that exists)")
    add_label_studio_serving_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("rank", help="order unlabelled images by the model's doubt, spread over what they show: "
                                    "what it finds hard (rank.csv, rank.json, contact_sheet.png; not yet a better "
                                    "pick of what to label than a random one)")
    p.add_argument("--weights", required=True, type=Path, help="run folder, checkpoint or .onnx file")
    p.add_argument("--source", required=True, type=Path, help="unlabelled images: a folder (searched recursively)")
    p.add_argument("--top", type=COUNT.argtype(), help="list only the first N (default: every image)")
    p.add_argument("--order", choices=("spread", "uncertainty"), default="spread",
                   help="spread (default): uncertain images unlike each other first, over the model's own features "
                        "(a PyTorch run; an exported graph has none and gets uncertainty); uncertainty: the most "
                        "uncertain first, look-alikes together. Measured: neither beats random picking, on alike images "
                        "(BCCD) or on a pool with rare classes (aquarium, where spread picks busier images and fewer "
                        "rare objects): 3 seeds, 2 rounds, docs/labelling.md. With few labels, label a random sample "
                        "and read this order as what the model finds hard")
    p.add_argument("--sheet", type=NONNEGATIVE_INT.argtype(), default=25,
                   help="images on the contact sheet (default 25; 0: none)")
    p.add_argument("--out", type=Path, help="output folder (default runs/rank, or runs/rank2... when that exists)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists and detft wrote it")
    p.add_argument("--imgsz", type=SIZE.argtype(), help="inference size (default: what the model was trained at)")
    p.add_argument("--device", default="auto")
    add_trust_arg(p)
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("pseudo", help="a teacher's confident detections on unlabelled images, written as a COCO "
                                      "dataset to train on beside labelled data (train --pseudo-labels OUT)")
    p.add_argument("--weights", required=True, type=Path, help="the teacher: a run folder, checkpoint or .onnx file")
    p.add_argument("--source", required=True, type=Path, help="unlabelled images: a folder (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="output folder (a COCO dataset and pseudo.json)")
    p.add_argument("--conf", type=conf_value, default="auto", help="score a detection needs to become a label: auto "
                   "(default: each class's best-F1 threshold from the teacher's eval.json) or a score")
    p.add_argument("--data", type=Path, help="the labelled data, to check first that the teacher knows its classes")
    p.add_argument("--from", dest="data_format", metavar="FMT", help="format of --data (default: detected)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists and detft wrote it")
    p.add_argument("--imgsz", type=SIZE.argtype(), help="inference size (default: what the model was trained at)")
    p.add_argument("--device", default="auto")
    add_trust_arg(p)
    p.set_defaults(func=cmd_pseudo)

    p = sub.add_parser("audit", help="find likely label errors (missing, spurious, wrong class, loose, duplicate "
                                     "boxes) with models that never trained on the image they score; a ranked list, a "
                                     "contact sheet and the data with the fixes applied to correct in a tool")
    p.add_argument("--weights", required=True, type=Path, help="the run whose settings the fold models train with "
                   "(with --no-folds: whose model scores)")
    p.add_argument("--data", type=Path, help="the labelled data (default: the data the run trained on)")
    p.add_argument("--from", dest="fmt", type=reader_name, help="format of --data (default: detect)")
    p.add_argument("--out", type=Path, help="output folder (default runs/audit, or runs/audit2... when that exists)")
    p.add_argument("--folds", type=COUNT.argtype(), help="k-fold: k models, each trained on the other folds, each "
                   "scoring the images it held out (default 3; costs k trainings)")
    p.add_argument("--no-folds", action="store_true", help="score with the run's own model: fast, in-sample and "
                   "optimistic (it learnt the errors of the images it trained on)")
    p.add_argument("--fold-epochs", type=COUNT.argtype(), help="epochs per fold (default: the run's)")
    p.add_argument("--fold-budget", type=POSITIVE.argtype(), metavar="MIN",
                   help="minutes of training per fold (default: the run's --time-budget, else its epochs)")
    p.add_argument("--group", action=argparse.BooleanOptionalAction, default=True,
                   help="keep near-identical images (frames of one video) in one fold (default: on)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")
    p.add_argument("--save-labels", metavar="FORMAT", choices=sorted(WRITERS),
                   help=f"format of fixes/, the data with the surest fixes applied: {', '.join(sorted(WRITERS))} "
                        "(default: the data's own, else coco)")
    p.add_argument("--images", choices=["symlink", "hardlink", "copy"], default="symlink",
                   help="how fixes/ holds the images (default symlink)")
    p.add_argument("--min-score", type=FRACTION.argtype(), default=0.2,
                   help="list candidates scoring this or more (default 0.2; 0: every one, to rank every label by "
                        "each type's score)")
    p.add_argument("--fix-score", type=FRACTION.argtype(), default=0.5,
                   help="apply to fixes/ the candidates scoring this or more (default 0.5)")
    p.add_argument("--sheet", type=NONNEGATIVE_INT.argtype(), default=25,
                   help="issues on the contact sheet (default 25; 0: none)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists and detft wrote it")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the run's training device)")
    add_trust_arg(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("serve", help="a Label Studio ML backend: the model predicts the tasks annotators open, "
                                     "in the project's labels (Settings > Model > Connect Model)")
    add_inference_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=NONNEGATIVE_INT.argtype(), default=9090, help="port (default 9090)")
    p.add_argument("--ls-root", type=Path, metavar="DIR", help="the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: "
                   "local-files images are read from disk below it (default: that variable)")
    p.add_argument("--ls-host", metavar="URL", help="the Label Studio server, for uploaded images (default: "
                   "LABEL_STUDIO_URL, else the address the server gives when a project connects)")
    p.add_argument("--ls-token", help="its API token (legacy or personal access token; default: LABEL_STUDIO_API_KEY, "
                   "else the token the server gives when a project connects)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("video", help="run a trained model on a video file, an image folder, a webcam (index) or a "
                                     "stream (rtsp://, http(s)://, udp://), or on many cameras in one process; also "
                                     "tools/infer_video.py")
    add_inference_args(p)
    p.add_argument("--track", action="store_true", help="ByteTrack ids (same tracker for every architecture)")
    p.add_argument("--source", action="append", default=[],
                   help="video file, image folder, webcam index or stream URL; repeat it for several cameras in one "
                        "process (NAME=URL names one)")
    p.add_argument("--sources", type=Path, metavar="CAMERAS_YAML",
                   help="cameras file: a name and a url per camera, optional reconnect settings, zones and lines")
    p.add_argument("--camera", action="append", default=[], metavar="NAME",
                   help="run only this camera of --sources (repeatable)")
    p.add_argument("--out", type=Path, help="annotated MP4 (a file keeps its source's frame rate); with several "
                                            "cameras a folder of one NAME.mp4 each")
    p.add_argument("--jsonl", type=Path, help="detections, one JSON line per frame (with several cameras each line "
                                              "names its camera)")
    p.add_argument("--events", type=Path, help="zone and line events of every camera, one JSON line each (enter, exit "
                                               "with dwell time, cross with direction)")
    p.add_argument("--batch", type=COUNT.argtype(), help="several cameras: most frames predicted in one step "
                                                          "(default: one per camera, at most 8)")
    p.add_argument("--metrics-port", type=NONNEGATIVE_INT.argtype(), metavar="PORT",
                   help="several cameras: Prometheus metrics at http://127.0.0.1:PORT/metrics and /health")
    p.add_argument("--show", action="store_true", help="display the annotated frames (needs a screen)")
    p.add_argument("--no-fps-overlay", action="store_true")
    p.add_argument("--stats-every", type=POSITIVE.argtype(), default=5.0, help="seconds between counter lines")
    p.add_argument("--max-frames", type=COUNT.argtype())
    p.add_argument("--timeout", type=POSITIVE.argtype(), default=5.0, help="live sources: open/read timeout in seconds")
    p.add_argument("--max-backoff", type=NONNEGATIVE.argtype(), default=10.0,
                   help="live sources: longest wait between reconnects")
    p.add_argument("--max-retries", type=NONNEGATIVE_INT.argtype(), default=None,
                   help="live sources: give up after this many failed (re)connects in a row (default: 5 before the "
                        "first frame, unlimited after it)")
    p.add_argument("--out-fps", type=POSITIVE.argtype(), help="frame rate of --out (default: the source's; 25 when it reports none)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out / --jsonl files")
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("export", help="write a trained model as ONNX or OpenVINO, FP32 or INT8 (predict/eval/video "
                                      "then take the file), checked against the model it came from")
    p.add_argument("--weights", required=True, type=Path, help="run folder or checkpoint (R-CNN or YOLO, det or seg)")
    p.add_argument("--format", choices=FORMATS, default="onnx",
                   help="onnx (ONNX Runtime) or openvino (an IR, .xml + .bin: pip install 'detft[openvino]')")
    p.add_argument("--out", type=Path, help="the .onnx or .xml file (default: beside the checkpoint, best.onnx/.xml)")
    p.add_argument("--imgsz", type=SIZE.argtype(), help="input size (default: what the model was trained at)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--dynamic", action="store_true", default=None,
                       help="any input size (the default: YOLO graphs letterbox as the checkpoint does; R-CNN "
                            "graphs always take any size)")
    shape.add_argument("--static", dest="dynamic", action="store_false",
                       help="YOLO: a fixed --imgsz square input, for runtimes that need one shape (on non-square "
                            "images it predicts on a padded square, not the checkpoint's rectangle)")
    p.add_argument("--half", action="store_true", help="YOLO: fp16 weights")
    p.add_argument("--int8", action="store_true", help="YOLO: INT8 for CPUs, calibrated on the run's training "
                   "images (ONNX Runtime's quantizer; NNCF for --format openvino). The detection head's last "
                   "convolutions and decoding stay float, or, where the parity check refuses that, the whole head. An "
                   "ONNX file suits the kind of CPU that exports it (int8 weights with VNNI, uint8 without): export "
                   "on the CPU you deploy on")
    p.add_argument("--calibration-images", type=COUNT.argtype(), default=CALIBRATION_IMAGES,
                   help=f"training images --int8 calibrates on (default {CALIBRATION_IMAGES})")
    p.add_argument("--opset", type=COUNT.argtype(), help="ONNX opset (default: R-CNN 17, YOLO ultralytics' choice)")
    p.add_argument("--max-dets", type=COUNT.argtype(), default=100,
                   help="R-CNN: most detections per image the graph returns")
    p.add_argument("--data", type=Path, help="dataset for the parity check (default: the one it was trained on)")
    p.add_argument("--from", dest="fmt", type=reader_name, help="format of --data (default: detect)")
    p.add_argument("--split", default="val", help="split for the parity check (default val)")
    p.add_argument("--device", default="auto", help="where the parity check runs both models (default auto)")
    p.add_argument("--tolerance", type=NONNEGATIVE.argtype(), help=f"largest AP difference accepted (default "
                   f"{TOLERANCE}; {INT8_TOLERANCE} with --int8)")
    drop = p.add_mutually_exclusive_group()
    drop.add_argument("--accept-drop", action="store_true", help="keep the file when its AP differs from the "
                      "checkpoint's by more than --tolerance (default: an error, no file kept)")
    drop.add_argument("--strict", dest="accept_drop", action="store_false", help="the default: fail, keeping no "
                      "file, when the AP differs by more")
    add_trust_arg(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("benchmark", help="train several pretrained starts x freeze policies on the same split and "
                                         "budget, rank them by validation AP, and keep the best run")
    p.add_argument("--data", type=Path, help="dataset in any supported format (default: the embedded datasets/shapes)")
    p.add_argument("--from", dest="fmt", type=reader_name, help="format of --data (default: detect)")
    p.add_argument("--images-dir", type=Path, help="folder holding the images, when the annotations only name them")
    p.add_argument("--candidates", help="comma list of ARCH[:START], e.g. yolo:fall-detection,fasterrcnn_mobilenet_v2_fpn,"
                                        "yolo:yolov8n.yaml (default: every pretrained start available here, said first)")
    p.add_argument("--freeze", default="backbone,none", help="comma list of freeze policies to try (default backbone,none)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget", help="wall-clock training time per trial, e.g. 20m, 90s, 1.5h (epochs fitted to it)")
    budget.add_argument("--epochs", type=COUNT.argtype(), help="epochs per trial (default 10)")
    p.add_argument("--seeds", type=COUNT.argtype(), default=1, help="training seeds per trial; 2 or more report mean ± std (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed, and the seed of the split (default 0)")
    p.add_argument("--imgsz", type=SIZE.argtype(), help="image size for every trial (default: each model's own)")
    p.add_argument("--batch", type=COUNT.argtype(), help="batch size for every trial (default 4)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--workers", type=NONNEGATIVE_INT.argtype(), help="data-loading workers (default 2)")
    p.add_argument("--config", type=Path, help="YAML of further training settings every trial shares (lr, optimizer...)")
    p.add_argument("--out", type=Path, default=Path("runs/benchmark"),
                   help="folder for the trials' runs, benchmark.csv/.json/.png (default runs/benchmark); a re-run "
                        "with the same settings skips finished trials")
    p.set_defaults(func=cmd_benchmark)

    from .run_table import SORTS

    p = sub.add_parser("runs", help="the runs under a folder as one table (status, epochs, time, AP, best epoch), "
                                    "or runs side by side: detft runs compare A B",
                       usage="detft runs [DIR] [--sort COLUMN] [--json]\n"
                             "       detft runs compare A B [C ...] [--dir DIR] [--all] [--json]")
    p.add_argument("paths", nargs="*", metavar="DIR", help="folder of runs, searched at any depth (default runs); "
                   "or compare and two or more runs (folders, or names under --dir)")
    p.add_argument("--sort", choices=list(SORTS), help="order of the table (default newest first; numbers from the "
                   "highest, text from A)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--all", action="store_true", help="compare: every config key, not only those that differ")
    p.add_argument("--dir", type=Path, help="compare: where run names are looked up (default runs)")
    p.set_defaults(func=cmd_runs)

    for command in sub.choices.values():  # --debug after the command too (tools/infer_video.py passes it there)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="print the traceback of an unexpected error")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    inputs = ", ".join(str(v) for k in ("src", "data", "weights", "source", "dets", "resume")
                       if (v := getattr(args, k, None)) is not None) or "(no input)"

    def command() -> int:
        try:
            return args.func(args)
        except OfflineStart as e:  # the offline starts installed here, as this very command line changed to use them
            raise DetftError(e.with_commands(argv)) from None

    return run_command(args.command, command, inputs, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
