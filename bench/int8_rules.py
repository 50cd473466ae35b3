"""What an INT8 YOLO graph must keep in float, measured (#48): each rule of ``detft/export/quantize.py`` with NNCF's
fast and full bias correction, on each run given:

    python bench/int8_rules.py --runs RUN [RUN ...] [--images 64] [--time]

Per run: box AP on its val split (detft's evaluator, conf 0.001) of the FP32 graph and of each INT8 graph, and the
seconds NNCF took. Each INT8 graph is made as ``detft export --format openvino --int8`` makes it (the same
calibration images, the same NNCF preset), with the float rule and the bias correction fixed instead of chosen by the
parity check. With ``--time``: the OpenVINO graph alone in ms per frame on 60 frames of vtest.avi, the median of 4
rounds with the graphs alternated in each (the letterbox done beforehand, so only the graph is timed).

Needs ``pip install 'detft[export,openvino]'`` and Debian's opencv-doc (vtest.avi) for ``--time``."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from export import VTEST, frames  # bench/export.py: the same frames, decoded the same way

RULES = ("outputs", "head")


def graph_ms(xml: Path, inputs: list[np.ndarray], rounds: list[list[float]]) -> None:
    """One round of ``xml``'s graph over ``inputs``, its median ms appended to ``rounds``."""
    from detft.inference.openvino_runtime import OpenVinoSession

    session = OpenVinoSession(xml)
    for x in inputs[:5]:
        session.run([], {"x": x})
    times = []
    for x in inputs:
        started = time.perf_counter()
        session.run([], {"x": x})
        times.append(time.perf_counter() - started)
    rounds.append(1000 * statistics.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="detft YOLO runs (detect or segment)")
    ap.add_argument("--images", type=int, default=64, help="calibration images (detft's default: 64)")
    ap.add_argument("--time", action="store_true", help="also time each graph alone (needs an idle machine)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import nncf
    import openvino as ov

    import detft
    from detft.export import finish_graph, metadata, write_fp32
    from detft.export.quantize import calibration_images, quantize_openvino
    from detft.families import for_run
    from detft.inference.openvino_runtime import write_ir
    from detft.inference.yolo_graph import Letterbox

    work = Path(tempfile.mkdtemp(prefix="detft-bench-int8-"))
    rows = []
    for run in args.runs:
        source = detft.load(run, device="cpu", conf=0.001)
        dataset = source.dataset()
        key = "segm_AP" if source.run.info.task == "segment" else "bbox_AP"
        base = source.evaluate(dataset, "val").metrics[key]
        folder = work / run.name
        folder.mkdir()
        fp32_xml = folder / "fp32.xml"
        info, graph, fp32 = write_fp32(for_run(source.run), source.run, fp32_xml, imgsz=None, dynamic=None,
                                       half=False, opset=None, max_dets=100)
        finish_graph(fp32, fp32_xml, info, graph, format="openvino", calibration=None, float_rule="head",
                     class_thresholds=None)
        images = calibration_images(dataset.images_in(source.run.info.config.train_split), args.images)
        variants = {"FP32": fp32_xml}
        scores = {"FP32": (base, 0.0)}
        for rule in RULES:
            for fast in (True, False):
                started = time.perf_counter()
                quantized, graph.int8 = quantize_openvino(fp32, images, graph, rule, fast_bias_correction=fast)
                seconds = time.perf_counter() - started
                label = f"{rule}, {'fast' if fast else 'full'} bias correction"
                xml = folder / f"{rule}-{'fast' if fast else 'full'}.xml"
                write_ir(fp32, xml, metadata.props(info, graph, None), quantized)
                ap = detft.load(xml, device="cpu", conf=0.001).evaluate(dataset, "val").metrics[key]
                variants[label], scores[label] = xml, (ap, seconds)
                print(f"{run.name}: {label}: {key} {ap:.4f} ({ap - base:+.4f}), NNCF {seconds:.0f} s", flush=True)
        timings: dict[str, list[float]] = {label: [] for label in variants}
        if args.time:
            # the uint8 frames OpenVinoSession takes (it converts and scales them in the graph, as it predicts)
            inputs = [Letterbox.fit(*im.shape[:2], graph.imgsz, graph.stride, tight=graph.dynamic).apply(im, np.uint8)
                      for im in frames(VTEST, 60)]
            for _ in range(4):
                for label, xml in variants.items():
                    graph_ms(xml, inputs, timings[label])
        rows.append((run, key, len(images), scores, timings))
    print(f"\n{args.images} calibration images, {args.threads} threads, torch {torch.__version__}, openvino "
          f"{ov.__version__}, nncf {nncf.__version__}")
    print("| run | variant | AP | vs FP32 | NNCF s | graph ms (median of 4 rounds) |")
    print("|---|---|---:|---:|---:|---:|")
    for run, key, count, scores, timings in rows:
        base = scores["FP32"][0]
        for label, (ap, seconds) in scores.items():
            ms = f"{statistics.median(timings[label]):.2f}" if timings[label] else ""
            print(f"| {run} ({key}, {count} calibration images) | {label} | {ap:.4f} | {ap - base:+.4f} | "
                  f"{seconds:.0f} | {ms} |")


if __name__ == "__main__":
    main()
