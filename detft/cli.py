"""Command line front end. Parsing and printing only: every command calls library functions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import DetftError
from .formats import READERS, WRITERS


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
    from .evaluation.cocoeval import validate_results
    from .evaluation.report import EvalSettings, compare, format_report, load_eval, write_report
    from .formats.base import load_json

    if args.compare:
        a, b = args.compare
        print(compare(load_eval(a), load_eval(b), str(a), str(b)))
        return 0
    if args.data is None or args.dets is None:
        raise DetftError("detft eval needs --data and --dets (or --compare RUN_A RUN_B)")
    if not (args.data.is_file() and args.data.suffix == ".json"):
        raise DetftError("--dets evaluates a COCO results file: --data must be the COCO JSON its image ids refer to")
    gt = load_json(args.data)
    dets = load_json(args.dets)
    if not isinstance(dets, list):
        raise DetftError(f"{args.dets}: a COCO results file is a JSON list of detections")
    try:
        validate_results(dets)
    except ValueError as e:
        raise DetftError(f"{args.dets}: {e}") from None
    settings = EvalSettings(backend=args.backend, max_dets=args.max_dets, score_threshold=args.conf)
    doc = write_report(args.out, gt, dets, settings, extra={"data": str(args.data), "dets": str(args.dets)})
    print(format_report(doc))
    print(f"\nwrote {args.out / 'eval.json'}, PR curves and confusion matrix")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detft", description="Fine-tune detection models on your own data.")
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

    p = sub.add_parser("eval", help="COCO mAP (bbox and segm), per-class table, PR curves, confusion matrix")
    p.add_argument("--data", type=Path, help="ground truth (COCO JSON when used with --dets)")
    p.add_argument("--dets", type=Path, help="detections in COCO results format")
    p.add_argument("--backend", choices=["faster", "pycocotools"], default="faster",
                   help="faster-coco-eval (default) or pycocotools: same numbers")
    p.add_argument("--max-dets", type=int, default=100, help="detections per image evaluated (COCO: 100; ultralytics: 300)")
    p.add_argument("--conf", type=float, default=0.001, help="score threshold for evaluated detections (default 0.001)")
    p.add_argument("--out", type=Path, default=Path("runs/eval"), help="folder for eval.json and plots")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"), help="print two evaluations side by side")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DetftError as e:
        print(f"detft: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("detft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
