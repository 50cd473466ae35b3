"""Which freezing default should an ImageNet-only R-CNN start have? Equal wall-clock budget per variant.

    python bench/rcnn_defaults.py [--bccd ../shared/datasets/bccd/BCCD] [--bccd-budget 6m] [--shapes-budget 1.5m]
                                  [--model fasterrcnn_mobilenet_v2_fpn] [--lower 7] [--imgsz 256] [--out runs/defaults]
                                  [--study freeze|views] [--views 0,4,4/128]

Every variant trains the packaged ImageNet backbone on the same split, image size, batch, optimizer and
seed for the same wall-clock time (``detft benchmark --budget``: epochs are fitted to the time, per-epoch
validation included), and is scored by detft's COCO evaluator on the val split:

- ``backbone``: the whole backbone frozen, FPN and heads trained (detft's default so far);
- ``N`` (``--lower``): the lower N backbone stages frozen, the upper ones trained at ``--backbone-lr-factor`` (0.1);
- ``none``: every backbone stage trained at that factor;
- ``backbone`` and ``backbone+neck`` with the light box head (two 256-wide layers instead of 1024): the cheap
  step that buys more epochs in the same time (with the FPN frozen too the trunk's maps are cached).

With ``--study views`` the freezing and head are the defaults (backbone+neck frozen and cached, light head)
and what varies is how the default ``--augment flip,scale,color`` is drawn: ``--augment-views 0`` (a fresh draw
every epoch: samples that scale or colour changed bypass the cache and run the trunk) against N fixed views per
image (each cached once). Besides AP at the equal budget it prints seconds per epoch: the mean over the run, over
the first epochs (every view computed) and over the later ones (``--views``, ``--imgsz 0`` for the model's own size).

Datasets: BCCD (skipped when ../shared is absent) and detft's embedded shapes. Prints one table."""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from detft import benchmark

DEFAULT_BCCD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"


def variants(lower: int) -> list[tuple[str, list[str], dict]]:
    """(group name, freeze policies, further settings) — a group is one benchmark run."""
    return [("default head", ["backbone", str(lower), "none"], {"box_head": "default"}),
            ("light head", ["backbone", "backbone+neck"], {"box_head": "light"})]


def epoch_seconds(folder: Path, first: int) -> tuple[float, float | None, float | None]:
    """Mean training seconds per epoch of the run in ``folder``: over all, its first ``first`` epochs, the rest."""
    with open(folder / "metrics.csv", newline="") as f:
        times = [float(r["time_s"]) for r in csv.DictReader(f)]
    head, tail = times[:first], times[first:]
    return statistics.mean(times), statistics.mean(head) if head else None, statistics.mean(tail) if tail else None


def views_rows(name: str, data: Path | None, budget: str, variants: list[str], args: argparse.Namespace) -> list[dict]:
    """One equal-budget trial per variant ('V': --augment-views V; 'V/R': and --roi-batch R), with the default
    freezing and head."""
    rows = []
    for variant in variants:
        n, _, roi = variant.partition("/")
        n = int(n)
        out = args.out / "views" / name.split()[0].lower() / f"views-{variant.replace('/', '-roi')}"
        fields = {"imgsz": args.imgsz} if args.imgsz else {}
        if roi:
            fields["roi_batch"] = int(roi)
        result = benchmark(data, [args.model], ["auto"], budget=budget, out=out, augment="flip,scale,color",
                           augment_views=n, **fields)
        trial = result.trials[0]
        row: dict[str, Any] = {"data": name, "budget": budget, "views": n, "roi": roi or "default",
                               "status": trial.status, "error": trial.error, "epochs": trial.epochs, **trial.metrics}
        if trial.status == "ok":
            row["s_all"], row["s_first"], row["s_rest"] = epoch_seconds(out / trial.run, max(n, 1))
        rows.append(row)
    return rows


def cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}"


def print_views(rows: list[dict]) -> None:
    print("| data | budget | --augment-views | --roi-batch | epochs | AP | AP50 | s/epoch (all) | first epochs "
          "| later epochs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["status"] != "ok":
            print(f"| {r['data']} | {r['budget']} | {r['views']} | {r['roi']} | FAILED: {r['error']} |")
            continue
        print(f"| {r['data']} | {r['budget']} | {r['views']} | {r['roi']} | {r['epochs']} | {r['bbox_AP']:.3f} | {r['bbox_AP50']:.3f} "
              f"| {cell(r['s_all'])} | {cell(r['s_first'])} | {cell(r['s_rest'])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bccd", type=Path, default=DEFAULT_BCCD)
    ap.add_argument("--bccd-budget", default="6m")
    ap.add_argument("--shapes-budget", default="1.5m")
    ap.add_argument("--model", default="fasterrcnn_mobilenet_v2_fpn")
    ap.add_argument("--lower", type=int, default=7, help="backbone stages frozen in the 'lower stages' variant")
    ap.add_argument("--imgsz", type=int, default=256, help="shorter side; 0: the model's own")
    ap.add_argument("--out", type=Path, default=Path("runs/defaults"))
    ap.add_argument("--study", choices=("freeze", "views"), default="freeze")
    ap.add_argument("--views", default="0,4", help="--study views: the --augment-views values compared, each "
                                                  "optionally /ROI_BATCH (e.g. 0,4,4/128)")
    args = ap.parse_args()
    datasets = [("shapes (embedded)", None, args.shapes_budget)]
    if args.bccd.is_dir():
        datasets.insert(0, ("BCCD", args.bccd, args.bccd_budget))
    else:
        print(f"{args.bccd} not found: BCCD skipped")
    t0 = time.perf_counter()
    header = (f"\n{platform.node()} · {torch.get_num_threads()} threads · torch {torch.__version__} · {args.model} "
              f"(packaged ImageNet backbone) · imgsz {args.imgsz or 'model default'}")
    if args.study == "views":
        chosen = args.views.split(",")
        rows = [r for name, data, budget in datasets for r in views_rows(name, data, budget, chosen, args)]
        print(f"{header} · {time.perf_counter() - t0:.0f} s in all\n")
        print_views(rows)
        return
    results = []
    for name, data, budget in datasets:
        for group, policies, fields in variants(args.lower):
            out = args.out / name.split()[0].lower() / group.replace(" ", "-")
            result = benchmark(data, [args.model], policies, budget=budget, out=out, imgsz=args.imgsz or None, **fields)
            for r in result.ranking:
                results.append((name, budget, r["freeze"], group, r))
    print(f"{header} · {time.perf_counter() - t0:.0f} s in all\n")
    print("| data | budget | freeze | box head | epochs | AP | AP50 | trainable | ms/img |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for name, budget, policy, group, r in results:
        if r["status"] != "ok":
            print(f"| {name} | {budget} | {policy} | {group} | FAILED: {r.get('error')} |")
            continue
        print(f"| {name} | {budget} | {policy} | {group.split()[0]} | {r['epochs']} | {r['bbox_AP']:.3f} | {r['bbox_AP50']:.3f} "
              f"| {r['trainable'] / 1e6:.2f}M | {r['ms_per_image']:.0f} |")


if __name__ == "__main__":
    main()
