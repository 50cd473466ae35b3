"""Evaluation-stage time: detft's evaluate() vs bare pycocotools and bare faster-coco-eval, same data; and the
whole written evaluation (``detft eval --dets``: COCO stats, per-class table, TIDE, F1 thresholds, confusion matrix,
worst images, plots, eval.json) as a process against a bare faster-coco-eval process reading the same two files.

    python bench/eval.py [--images 5000 --gt-per-image 7 --dets-per-image 100 --classes 80] [--processes-only]

The data are generated: GT boxes of mixed sizes, detections that are jittered copies of GT (some
with the wrong class) plus random boxes, scores uniform. All three must give identical stats; the
bare runs get their input ready-made (their loadRes mutates it, so each gets a fresh copy made
outside the timer), while detft's timer includes its own input preparation."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from detft.evaluation import evaluate
from detft.evaluation.confusion import confusion_matrix
from detft.evaluation.thresholds import f1_thresholds
from detft.evaluation.tide import error_breakdown


def generate(n_images: int, gt_per_image: int, dets_per_image: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    W, H = 640, 480
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "width": W, "height": H, "file_name": f"{i}.jpg"})
        n = rng.poisson(gt_per_image)
        wh = np.exp(rng.uniform(np.log(8), np.log(300), (n, 2)))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([W, H]) - wh)
        cls = rng.integers(1, n_classes + 1, n)
        for k in range(n):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(cls[k]),
                         "bbox": [*map(float, xy[k]), *map(float, wh[k])], "area": float(wh[k].prod()), "iscrowd": 0})
        n_near = min(n * 3, dets_per_image // 2)
        src = rng.integers(0, max(n, 1), n_near)
        for k in range(dets_per_image):
            if k < n_near and n:
                j = src[k]
                w, h = wh[j]
                box = np.array([xy[j][0] + w * rng.normal(0, 0.06), xy[j][1] + h * rng.normal(0, 0.06),
                                w * rng.normal(1, 0.06), h * rng.normal(1, 0.06)])
                c = int(cls[j]) if rng.random() < 0.8 else int(rng.integers(1, n_classes + 1))
            else:
                bwh = np.exp(rng.uniform(np.log(8), np.log(300), 2))
                box = np.concatenate([rng.uniform(0, 1, 2) * (np.array([W, H]) - bwh), bwh])
                c = int(rng.integers(1, n_classes + 1))
            dets.append({"image_id": i, "category_id": c, "bbox": [float(v) for v in box], "score": float(rng.random())})
    gt = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_classes + 1)]}
    return gt, dets


def bare(gt: dict, dets: list[dict], backend: str) -> tuple[list[float], float]:
    dets = [dict(d) for d in dets]  # loadRes mutates its input; copying is not part of the timing
    quiet = contextlib.redirect_stdout(io.StringIO())
    t = time.perf_counter()
    with quiet:
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval as Eval

            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as Eval

            coco_gt = COCO(gt)
        ev = Eval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats[:12]], time.perf_counter() - t


BARE_PROCESS = """
import contextlib, io, json, sys
from faster_coco_eval import COCO, COCOeval_faster
gt, dets = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = COCO(gt)
    ev = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
print(json.dumps([float(v) for v in ev.stats[:12]]))
"""


def processes(gt: dict, dets: list[dict], repeats: int) -> None:
    """The whole ``detft eval --dets`` process against a bare faster-coco-eval process on the same files (each
    starts Python, reads the JSON, evaluates; detft also writes everything eval.json holds and the plots)."""
    with tempfile.TemporaryDirectory() as tmp:
        gt_file, det_file = Path(tmp) / "gt.json", Path(tmp) / "dets.json"
        gt_file.write_text(json.dumps(gt))
        det_file.write_text(json.dumps(dets))
        commands = {"bare faster-coco-eval process": [sys.executable, "-c", BARE_PROCESS, gt_file, det_file],
                    "detft eval --dets (written)": [sys.executable, "-m", "detft", "eval", "--data", gt_file, "--dets",
                                                    det_file, "--out", Path(tmp) / "eval"]}
        best = {}
        for _ in range(repeats):
            for name, cmd in commands.items():
                t = time.perf_counter()
                subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
        ours = json.loads((Path(tmp) / "eval" / "eval.json").read_text())["metrics"]["bbox"]["stats"]["AP"]
    base = best["bare faster-coco-eval process"]
    print(f"{'process':<34}{'seconds':>9}{'vs bare':>10}   (detft AP {ours:.6f})")
    print("-" * 60)
    for name, secs in best.items():
        print(f"{name:<34}{secs:>9.2f}{secs / base:>9.2f}x")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--gt-per-image", type=int, default=7)
    p.add_argument("--dets-per-image", type=int, default=100)
    p.add_argument("--classes", type=int, default=80)
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each; the best is reported")
    p.add_argument("--processes-only", action="store_true", help="only the whole-process comparison")
    a = p.parse_args()
    gt, dets = generate(a.images, a.gt_per_image, a.dets_per_image, a.classes)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} GT boxes, {len(dets)} detections, {a.classes} classes")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    processes(gt, dets, a.repeats)
    if a.processes_only:
        return
    rows = {}
    for name, fn in [("bare pycocotools", lambda: bare(gt, dets, "pycocotools")),
                     ("bare faster-coco-eval", lambda: bare(gt, dets, "faster")),
                     ("detft evaluate (faster)", lambda: _detft(gt, dets, "faster")),
                     ("detft evaluate (pycocotools)", lambda: _detft(gt, dets, "pycocotools"))]:
        runs = [fn() for _ in range(a.repeats)]
        rows[name] = (runs[0][0], min(t for _, t in runs))
    ref = rows["bare faster-coco-eval"][0]
    for name, (stats, _) in rows.items():
        assert np.allclose(stats, ref, atol=1e-12, rtol=0), (name, stats, ref)
    t = time.perf_counter()
    confusion_matrix(gt, dets)
    t_conf = time.perf_counter() - t
    t = time.perf_counter()
    f1_thresholds(gt, dets)
    t_thr = time.perf_counter() - t
    t = time.perf_counter()
    error_breakdown(gt, dets)
    t_tide = time.perf_counter() - t
    base = rows["bare faster-coco-eval"][1]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'evaluator':<30}{'seconds':>9}{'vs bare faster':>16}   AP (all identical: {ref[0]:.6f})")
    print("-" * 70)
    for name, (_, secs) in rows.items():
        print(f"{name:<30}{secs:>9.2f}{secs / base:>15.2f}x")
    print(f"{'detft confusion matrix (extra)':<30}{t_conf:>9.2f}")
    print(f"{'detft F1 thresholds (extra)':<30}{t_thr:>9.2f}")
    print(f"{'detft TIDE breakdown (extra)':<30}{t_tide:>9.2f}")


def _detft(gt: dict, dets: list[dict], backend: str) -> tuple[list[float], float]:
    t = time.perf_counter()
    r = evaluate(gt, dets, "bbox", backend=backend)
    return r.stats, time.perf_counter() - t


if __name__ == "__main__":
    main()
