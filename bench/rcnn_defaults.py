"""Which freezing default should an ImageNet-only R-CNN start have? Equal wall-clock budget per variant.

    python bench/rcnn_defaults.py [--bccd ../shared/datasets/bccd/BCCD] [--bccd-budget 6m] [--shapes-budget 1.5m]
                                  [--model fasterrcnn_mobilenet_v2_fpn] [--lower 7] [--imgsz 256] [--out runs/defaults]

Every variant trains the packaged ImageNet backbone on the same split, image size, batch, optimizer and
seed for the same wall-clock time (``detft benchmark --budget``: epochs are fitted to the time, per-epoch
validation included), and is scored by detft's COCO evaluator on the val split:

- ``backbone``: the whole backbone frozen, FPN and heads trained (detft's default so far);
- ``N`` (``--lower``): the lower N backbone stages frozen, the upper ones trained at ``--backbone-lr-factor`` (0.1);
- ``none``: every backbone stage trained at that factor;
- ``backbone`` and ``backbone+neck`` with the light box head (two 256-wide layers instead of 1024): the cheap
  step that buys more epochs in the same time (with the FPN frozen too the trunk's maps are cached).

Datasets: BCCD (skipped when ../shared is absent) and detft's embedded shapes. Prints one table."""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from detft import benchmark

DEFAULT_BCCD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"


def variants(lower: int) -> list[tuple[str, list[str], dict]]:
    """(group name, freeze policies, further settings) — a group is one benchmark run."""
    return [("default head", ["backbone", str(lower), "none"], {"box_head": "default"}),
            ("light head", ["backbone", "backbone+neck"], {"box_head": "light"})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bccd", type=Path, default=DEFAULT_BCCD)
    ap.add_argument("--bccd-budget", default="6m")
    ap.add_argument("--shapes-budget", default="1.5m")
    ap.add_argument("--model", default="fasterrcnn_mobilenet_v2_fpn")
    ap.add_argument("--lower", type=int, default=7, help="backbone stages frozen in the 'lower stages' variant")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("runs/defaults"))
    args = ap.parse_args()
    datasets = [("shapes (embedded)", None, args.shapes_budget)]
    if args.bccd.is_dir():
        datasets.insert(0, ("BCCD", args.bccd, args.bccd_budget))
    else:
        print(f"{args.bccd} not found: BCCD skipped")
    rows = []
    t0 = time.perf_counter()
    for name, data, budget in datasets:
        for group, policies, fields in variants(args.lower):
            out = args.out / name.split()[0].lower() / group.replace(" ", "-")
            result = benchmark(data, [args.model], policies, budget=budget, out=out, imgsz=args.imgsz, **fields)
            for r in result.ranking:
                rows.append((name, budget, r["freeze"], group, r))
    print(f"\n{platform.node()} · {torch.get_num_threads()} threads · torch {torch.__version__} · {args.model} "
          f"(packaged ImageNet backbone) · imgsz {args.imgsz} · {time.perf_counter() - t0:.0f} s in all\n")
    print("| data | budget | freeze | box head | epochs | AP | AP50 | trainable | ms/img |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for name, budget, policy, group, r in rows:
        if r["status"] != "ok":
            print(f"| {name} | {budget} | {policy} | {group} | FAILED: {r.get('error')} |")
            continue
        print(f"| {name} | {budget} | {policy} | {group.split()[0]} | {r['epochs']} | {r['bbox_AP']:.3f} | {r['bbox_AP50']:.3f} "
              f"| {r['trainable'] / 1e6:.2f}M | {r['ms_per_image']:.0f} |")


if __name__ == "__main__":
    main()
