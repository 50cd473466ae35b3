"""Label less (#26): does training on pseudo-labels help, and does `detft rank` pick better images than chance?

    python bench/label_less.py [--data ../shared/datasets/bccd/BCCD] [--seeds 0 1 2] [--epochs 10] [--fraction 0.2]
    python bench/label_less.py --data datasets/shapes --epochs 15 --imgsz 160     # the embedded data, with masks

The dataset's train split is the pool (BCCD by default); its val split is what every run is scored on (detft's
COCO evaluator, the run's eval.json; mask AP too when the data has masks). Per seed, a seeded ``--fraction`` of the pool is "labelled" and the rest has its labels hidden:

- (a) the labelled part alone (this run is also the teacher and the ranker);
- (b) (a)'s data plus (a)'s detections on the hidden part above its per-class best-F1 thresholds
      (``detft train --pseudo HIDDEN --teacher RUN_A``);
- (c) (a)'s data plus the same number of images again that ``detft rank --weights RUN_A`` puts first, labelled
      from the hidden truth;
- (d) (a)'s data plus as many hidden images picked at random, labelled from the hidden truth;
- (e) the whole pool, labelled.

Every run: YOLO11n from the packaged COCO start (the default), the same epochs, image size, batch and seed, so
the arms differ in their training data alone. Each run is a subprocess of its own.

    python bench/label_less.py --rounds 2 [--orders spread uncertainty]     # what to label next, over rounds

The rank study (#45): from the same labelled part, each arm picks as many images again per round and trains on
what it has; ``detft rank --order O`` arms pick with their own previous round's model, the random arm at random,
so every arm holds the same number of labels in every round."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

DEFAULT_BCCD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd" / "BCCD"
ARMS = {"a": "labelled part alone", "b": "+ pseudo-labels on the rest", "c": "+ as many again, picked by rank",
        "d": "+ as many again, picked at random", "e": "the whole pool labelled"}


def write_coco(dataset, train, val, out: Path) -> Path:
    """A COCO folder of ``train`` + ``val`` records (images linked), the classes of ``dataset``."""
    from detft.annotations.dataset import Dataset
    from detft.annotations.report import Report
    from detft.formats import coco

    images = [replace(im, split="train") for im in train] + [replace(im, split="val") for im in val]
    if not (out / "annotations").is_dir():
        coco.write(Dataset(images, dataset.categories, root=dataset.root), out, Report())
    return out


def hidden_folder(records, out: Path) -> Path:
    """The unlabelled images: links only, no annotation anywhere near them."""
    out.mkdir(parents=True, exist_ok=True)
    for im in records:
        link = out / Path(im.file_name).name
        if not link.exists():
            link.symlink_to(im.path.resolve())
    return out


def labelled_part(pool: list, fraction: float, seed: int) -> tuple[list, list]:
    """The seeded ``fraction`` of ``pool`` whose labels are kept, and the rest."""
    order = sorted(pool, key=lambda im: im.file_name)
    random.Random(seed).shuffle(order)
    n = round(fraction * len(pool))
    return order[:n], order[n:]


def train(name: str, project: Path, data: Path, a: argparse.Namespace, seed: int, **extra: str) -> dict:
    """One training in its own process; returns its val AP and time."""
    run = project / name
    if not (run / "eval.json").is_file():
        args = ["--data", str(data), "--arch", "yolo", "--epochs", str(a.epochs), "--imgsz", str(a.imgsz),
                "--batch", str(a.batch), "--seed", str(seed), "--workers", "0", "--device", "cpu", "--project",
                str(project), "--name", name, "--exist-ok"]
        for k, v in extra.items():
            args += [f"--{k.replace('_', '-')}", v]
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "detft", "train", *args], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        (run / "bench_seconds.txt").write_text(f"{time.perf_counter() - t:.1f}")
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    stats, segm = metrics["bbox"]["stats"], (metrics.get("segm") or {}).get("stats", {})
    return {"AP": stats["AP"], "AP50": stats["AP50"], "segm_AP": segm.get("AP", float("nan")),
            "s": float((run / "bench_seconds.txt").read_text()),
            "class_AP": {c["name"]: c["AP"] for c in metrics["bbox"].get("per_class", [])}}


def rare_classes(pool: list, names: dict[int, str]) -> set[str]:
    """The pool's classes with under a tenth of its most common class's objects: where a picker that looks for
    what the model lacks should gain over a random draw, which finds them as seldom as the pool holds them."""
    from detft.annotations.stats import objects_per_class

    counts = {**dict.fromkeys(names, 0), **objects_per_class(pool)}
    most = max(counts.values(), default=0)
    return {names[c] for c, k in counts.items() if k < most / 10}


def rank_study(a: argparse.Namespace, source, pool: list, val: list) -> None:
    """Rounds of labelling: per seed the labelled part, then per round each arm adds ``fraction`` of the pool,
    ranked by its own last model (``--orders``) or at random; one table row per round and arm."""
    import detft
    from detft.annotations.stats import objects_per_class

    arms = [*a.orders, "random"]
    names = {c.id: c.name for c in source.categories}
    rare = rare_classes(pool, names)
    results: dict[tuple[int, str], list[dict]] = {}
    objects: dict[tuple[int, str], list[int]] = {}
    rare_objects: dict[tuple[int, str], list[int]] = {}
    for seed in a.seeds:
        root, runs = a.project / f"seed{seed}", a.project / f"seed{seed}" / "runs"
        labelled, hidden = labelled_part(pool, a.fraction, seed)
        n = len(labelled)
        results.setdefault((0, "-"), []).append(train("a", runs, write_coco(source, labelled, val, root / "data_a"),
                                                      a, seed))
        for arm in arms:
            have, left, teacher = list(labelled), list(hidden), runs / "a"
            for r in range(1, a.rounds + 1):
                name = f"{arm}-r{r}"
                if arm == "random":
                    chosen = set(random.Random(1000 * r + seed).sample(sorted(Path(im.file_name).name for im in left), n))
                else:
                    ranked_to = root / f"rank-{name}"
                    if not (ranked_to / "rank.json").is_file():
                        detft.load(teacher, device="cpu").rank(hidden_folder(left, root / f"hidden-{name}"), ranked_to,
                                                               order=arm, sheet=0)
                    chosen = {row["file"] for row in json.loads((ranked_to / "rank.json").read_text())[:n]}
                picked = [im for im in left if Path(im.file_name).name in chosen]
                have += picked
                left = [im for im in left if Path(im.file_name).name not in chosen]
                objects.setdefault((r, arm), []).append(sum(len(im.annotations) for im in picked))
                rare_objects.setdefault((r, arm), []).append(sum(k for c, k in objects_per_class(picked).items()
                                                                 if names[c] in rare))
                results.setdefault((r, arm), []).append(train(name, runs, write_coco(source, have, val,
                                                                                    root / f"data-{name}"), a, seed))
                teacher = runs / name
                print(seed, name, len(have), results[(r, arm)][-1], flush=True)
    n = round(a.fraction * len(pool))
    print(f"\n{a.data}: pool = train split ({len(pool)} images), scored on val ({len(val)} images); labelled part and "
          f"each round {a.fraction:.0%} = {n} images; YOLO11n COCO start, {a.epochs} epochs at {a.imgsz} px, batch "
          f"{a.batch}; seeds {a.seeds}; CPU ({platform.machine()}, {os.cpu_count()} cores)")
    if rare:
        print(f"rare classes (under a tenth of the most common class's objects in the pool): {', '.join(sorted(rare))}")
    masks = source.has_masks()
    print("| round | labels | picked by   | val AP (mean ± std) | AP per seed            | objects picked |"
          + (" mask AP (mean ± std) |" if masks else "")
          + (" rare objects picked | rare-class AP (mean ± std) |" if rare else ""))
    print("|-------|--------|-------------|---------------------|------------------------|----------------|"
          + ("----------------------|" if masks else "") + ("---------------------|----------------------------|"
                                                            if rare else ""))
    for (r, arm), rows in results.items():
        ap_, segm = np.array([x["AP"] for x in rows]), np.array([x["segm_AP"] for x in rows])
        rare_ap = np.array([np.nanmean([x["class_AP"].get(c, np.nan) for c in rare]) for x in rows]) if rare else None
        print(f"| {r:<5} | {n * (r + 1):>6} | {arm:<11} | {ap_.mean():.4f} ± {ap_.std():.4f}     | "
              f"{' '.join(f'{v:.4f}' for v in ap_):<22} | {' '.join(map(str, objects.get((r, arm), []))):<14} |"
              + (f" {segm.mean():.4f} ± {segm.std():.4f}      |" if masks else "")
              + (f" {' '.join(map(str, rare_objects.get((r, arm), []))):<19} | "
                 f"{rare_ap.mean():.4f} ± {rare_ap.std():.4f}            |" if rare else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_BCCD, help="any dataset with train and val splits")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--project", type=Path, default=Path("/tmp/detft-label-less"))
    ap.add_argument("--rounds", type=int, help="the rank study: this many rounds of picking (see the docstring)")
    ap.add_argument("--orders", nargs="+", default=["spread", "uncertainty"], choices=("spread", "uncertainty"))
    a = ap.parse_args()
    import detft
    from detft.annotations.report import Report
    from detft.operations.convert import load

    source = load(a.data, None, Report())
    pool, val = source.images_in("train"), source.images_in("val")
    if a.rounds:
        return rank_study(a, source, pool, val)
    results: dict[str, list[dict]] = {k: [] for k in ARMS}
    picks = {}
    for seed in a.seeds:
        root, runs = a.project / f"seed{seed}", a.project / f"seed{seed}" / "runs"
        labelled, hidden = labelled_part(pool, a.fraction, seed)
        n = len(labelled)
        by_name = {Path(im.file_name).name: im for im in hidden}
        data_a = write_coco(source, labelled, val, root / "data_a")
        results["a"].append(train("a", runs, data_a, a, seed))
        hidden_dir = hidden_folder(hidden, root / "hidden")
        results["b"].append(train("b", runs, data_a, a, seed, pseudo=str(hidden_dir), teacher=str(runs / "a")))
        if not (root / "rank" / "rank.json").is_file():
            detft.load(runs / "a", device="cpu").rank(hidden_dir, root / "rank")
        ranked = [r["file"] for r in json.loads((root / "rank" / "rank.json").read_text())][:n]
        chance = random.Random(1000 + seed).sample(sorted(by_name), n)
        picks[seed] = {"rank": ranked, "random": chance}
        results["c"].append(train("c", runs, write_coco(source, labelled + [by_name[f] for f in ranked], val,
                                                        root / "data_c"), a, seed))
        results["d"].append(train("d", runs, write_coco(source, labelled + [by_name[f] for f in chance], val,
                                                        root / "data_d"), a, seed))
        results["e"].append(train("e", runs, write_coco(source, pool, val, root / "data_e"), a, seed))
        print(seed, {k: v[-1] for k, v in results.items()}, flush=True)
    objects = {s: {k: sum(len(by.annotations) for by in pool if Path(by.file_name).name in set(v))
                   for k, v in p.items()} for s, p in picks.items()}
    print(f"\n{a.data}: pool = train split ({len(pool)} images), scored on val ({len(val)} images); labelled part "
          f"{a.fraction:.0%} = {round(a.fraction * len(pool))} images; YOLO11n COCO start, {a.epochs} epochs at "
          f"{a.imgsz} px, batch {a.batch}; seeds {a.seeds}; CPU ({platform.machine()}, {os.cpu_count()} cores)")
    print("objects in the picked images (rank vs random), per seed: "
          + ", ".join(f"{s}: {o['rank']} vs {o['random']}" for s, o in objects.items()))
    masks = source.has_masks()
    print("| arm | training data                       | val AP (mean ± std)  | AP per seed              | AP50 mean |"
          + (" mask AP (mean ± std) |" if masks else "") + " train s |")
    print("|-----|-------------------------------------|----------------------|--------------------------|-----------|"
          + ("----------------------|" if masks else "") + "---------|")
    for k, label in ARMS.items():
        ap_, segm = np.array([r["AP"] for r in results[k]]), np.array([r["segm_AP"] for r in results[k]])
        print(f"| {k}   | {label:<35} | {ap_.mean():.4f} ± {ap_.std():.4f}      | "
              f"{' '.join(f'{v:.4f}' for v in ap_):<24} | {np.mean([r['AP50'] for r in results[k]]):9.4f} |"
              + (f" {segm.mean():.4f} ± {segm.std():.4f}      |" if masks else "")
              + f" {np.mean([r['s'] for r in results[k]]):7.0f} |")


if __name__ == "__main__":
    main()
