"""detft's defaults against plain ultralytics, from the same start at the same wall clock, scored by one evaluator.

    python bench/versus_ultralytics.py --data D [--minutes 5] [--seeds 0 1 2] [--task detect|segment] [--imgsz 320]
    python bench/versus_ultralytics.py --suite bench/suite.yaml [--only a,b] ...   (the datasets of bench/suite.md)
    python bench/versus_ultralytics.py ... --arms detft:freeze=backbone detft:freeze=none   (any arms, in order)

For each dataset and seed: ``detft train --arch yolo --time-budget M --seed S`` with every other setting left to
detft (the YOLO11n COCO start, ``--freeze auto``, its optimizer, schedule and augmentation), then the plain
ultralytics call a new user makes (``yolo train model=yolo11n.pt data=... imgsz=... time=M/60 seed=S``, every other
argument ultralytics' default) on the YOLO copy of the data detft converted for that seed, so both see the same
images in the same split. Each run is its own process, one after the other, nothing else running. Both are scored
by detft's COCO evaluator on that val split (ultralytics' best.pt, as ultralytics keeps it). The table gives each
seed, the mean and the spread (max - min) over seeds, and detft - ultralytics per dataset: a difference smaller than
the spread is not a difference. Needs ``pip install 'detft[yolo]'``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = "yolo11n-coco"  # detft's default YOLO start, the file ultralytics' own release ships as yolo11n.pt


def detft_run(data: str, work: Path, seed: int, minutes: float, imgsz: int, task: str, settings: dict) -> dict:
    """detft's defaults: only the data, the start, the budget, the size and the seed are given, and the arm's
    ``settings`` (``detft:freeze=none``: ``freeze='none'``)."""
    import detft

    fields = dict(data=data, arch="yolo", weights=START, time_budget=minutes, imgsz=imgsz, seed=seed, device="cpu",
                  project=str(work), name=f"detft-s{seed}-" + "-".join(f"{k}{v}" for k, v in settings.items()),
                  **settings)
    if task == "detect":
        fields["model"] = "yolo11n.yaml"  # boxes only, also where the data holds masks; the start's tensors go into it
    started = time.perf_counter()
    run = detft.train(**fields)
    doc = json.loads((Path(run) / "eval.json").read_text())
    metrics = {f"{kind}_AP": doc["metrics"][kind]["stats"]["AP"] for kind in ("bbox", "segm") if kind in doc["metrics"]}
    return {"metrics": metrics, "seconds": time.perf_counter() - started,
            "epochs": len((Path(run) / "metrics.csv").read_text().splitlines()) - 1}


def ultralytics_run(data_yaml: str, work: Path, seed: int, minutes: float, imgsz: int, task: str,
                    settings: dict) -> dict:
    """The call a new user makes: the start, the data, the size, the time and the seed; the rest ultralytics'."""
    from detft.models.packaged import locate
    from detft.models.yolo import prepare_offline

    prepare_offline(purpose="bench/versus_ultralytics.py")
    from ultralytics import YOLO

    start = str(locate(START))
    model = YOLO("yolo11n-seg.yaml").load(start) if task == "segment" else YOLO(start)
    started = time.perf_counter()
    model.train(data=data_yaml, imgsz=imgsz, time=minutes / 60, seed=seed, device="cpu", project=str(work),
                name=f"ultralytics-s{seed}", exist_ok=True, amp=False, plots=False, **settings)
    seconds = time.perf_counter() - started
    best = work / f"ultralytics-s{seed}" / "weights" / "best.pt"
    import detft

    evaluation = detft.load(best, device="cpu").evaluate(Path(data_yaml).parent, split="val")
    results = (work / f"ultralytics-s{seed}" / "results.csv").read_text().splitlines()
    return {"metrics": evaluation.metrics, "seconds": seconds, "epochs": len(results) - 1}


def converted(work: Path, task: str) -> Path:
    """The YOLO copy of the data that detft's run wrote into its cache (one per source, task and split seed)."""
    found = sorted((work / ".cache").glob(f"yolo-{task}-*/data.yaml"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no converted dataset under {work / '.cache'}")
    return found[-1]


def in_subprocess(kind: str, **kw: object) -> dict:
    """One run in its own interpreter (its own threads, memory and ultralytics state), its result as JSON."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    subprocess.run([sys.executable, __file__, "--one", json.dumps({"kind": kind, "out": str(out), **kw})], check=True)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def one(spec: dict) -> None:
    kind, out = spec.pop("kind"), Path(spec.pop("out"))
    work = Path(spec.pop("work"))
    runner = detft_run if kind == "detft" else ultralytics_run
    out.write_text(json.dumps(runner(work=work, **spec)))


def parse_arm(text: str) -> tuple[str, dict]:
    """``detft``, ``ultralytics`` or either with settings: ``detft:freeze=none,lr=0.02`` (numbers read as numbers)."""
    kind, _, rest = text.partition(":")
    if kind not in ("detft", "ultralytics"):
        raise SystemExit(f"--arms {text!r}: an arm is detft or ultralytics, optionally with :key=value,...")
    import yaml

    settings = {}
    for pair in filter(None, rest.split(",")):
        key, _, value = pair.partition("=")
        settings[key] = yaml.safe_load(value)
    return kind, settings


def score(metrics: dict, kind: str) -> float:
    return float(metrics.get(f"{kind}_AP", float("nan")))


def compare(name: str, data: str, args: argparse.Namespace) -> list[dict]:
    rows = []
    for seed in args.seeds:
        work = Path(tempfile.mkdtemp(prefix=f"versus-{name}-s{seed}-"))
        common = dict(seed=seed, minutes=args.minutes, imgsz=args.imgsz, task=args.task, work=str(work))
        for who in args.arms:
            kind, settings = parse_arm(who)
            where = dict(data=data) if kind == "detft" else dict(data_yaml=str(converted(work, args.task)))
            r = in_subprocess(kind, settings=settings, **where, **common)
            rows.append({"dataset": name, "seed": seed, "who": who, "epochs": r["epochs"], "seconds": r["seconds"],
                         "box": score(r["metrics"], "bbox"), "mask": score(r["metrics"], "segm")})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\n{args.minutes} min per run, imgsz {args.imgsz}, task {args.task}, seeds {args.seeds}, start {START}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads default")
    kinds = ["box"] + (["mask"] if args.task == "segment" else [])
    head = f"{'dataset':<18}{'who':<13}" + "".join(f"{k + ' AP per seed':>24}{'mean':>7}{'spread':>8}" for k in kinds)
    print(head + f"{'epochs':>8}")
    print("-" * len(head + " " * 8))
    for name in dict.fromkeys(r["dataset"] for r in rows):
        means = {}
        for who in args.arms:
            mine = [r for r in rows if r["dataset"] == name and r["who"] == who]
            line = f"{name:<18}{who:<13}" if len(who) < 13 else f"{name:<18}{who}\n{'':<31}"
            for k in kinds:
                values = [r[k] for r in mine]
                means[who, k] = statistics.fmean(values)
                line += f"{' '.join(f'{v:.3f}' for v in values):>24}{means[who, k]:>7.3f}{max(values) - min(values):>8.3f}"
            print(line + f"{'/'.join(str(r['epochs']) for r in mine):>8}")
        first, last = args.arms[0], args.arms[-1]
        print(f"{'':<18}{'difference':<13}" + "".join(f"{means[first, k] - means[last, k]:>+39.3f}" for k in kinds)
              + f"   ({first} - {last})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="a dataset detft reads")
    p.add_argument("--suite", help="a suite YAML (bench/suite.yaml): datasets: [{name, local}, ...]")
    p.add_argument("--only", help="with --suite: comma list of dataset names")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--task", choices=("detect", "segment"), default="detect")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--arms", nargs="+", default=["detft", "ultralytics"],
                   help="what to run per seed, in order: detft, ultralytics, or either with settings "
                        "(detft:freeze=none); the difference line is the first minus the last; an ultralytics arm "
                        "trains on the YOLO copy an earlier detft arm of the same seed converted")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return one(json.loads(args.one))
    if args.suite:
        import yaml

        suite = yaml.safe_load(Path(args.suite).read_text())
        datasets = {d["name"]: d["local"] for d in suite["datasets"] if not args.only or d["name"] in args.only.split(",")}
    elif args.data:
        datasets = {Path(args.data).name: args.data}
    else:
        p.error("--data or --suite")
    rows = [row for name, data in datasets.items() for row in compare(name, data, args)]
    table(rows, args)


if __name__ == "__main__":
    main()
