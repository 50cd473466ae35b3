"""What runs around an exported YOLO graph, per frame: detft's letterbox, NMS and box mapping
(``detft/inference/yolo_graph.py``) against ultralytics' own functions (``LetterBox``, ``non_max_suppression``,
``scale_boxes``: what the ONNX predictor ran before), on the same frames and the same graph outputs, in one process.

    python bench/yolo_post.py --onnx MODEL.onnx [--frames 200] [--repeats 5] [--threads N]

Also the whole ONNX Runtime predictor with each around the graph, and the PyTorch predictor of the run the graph
came from (``--run``), alternated ``--repeats`` times, medians reported: on a shared machine the absolute FPS wander,
the ratios measured side by side much less. Needs ``pip install 'detft[export,yolo]'`` and Debian's opencv-doc."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def ultralytics_yolo(predictor, image: np.ndarray):
    """The ONNX predictor's YOLO step as it was: ultralytics' letterbox, NMS and scaling around the session."""
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import nms, ops

    g = predictor.graph
    boxed = LetterBox((predictor.imgsz, predictor.imgsz), auto=g.dynamic, stride=g.stride)(image=image)
    x = np.ascontiguousarray(boxed.transpose(2, 0, 1)[None], dtype=predictor.dtype) / np.array(255, predictor.dtype)
    raw = predictor.session.run(predictor.outputs, {predictor.input.name: x})
    det = nms.non_max_suppression(torch.from_numpy(raw[0]).float(), predictor.conf, predictor.iou, None, False,
                                  max_det=predictor.max_dets, end2end=g.end2end)[0]
    det[:, :4] = ops.scale_boxes(boxed.shape[:2], det[:, :4], image.shape)
    return det


def timed(step, images: list[np.ndarray]) -> float:
    for im in images[:5]:
        step(im)
    t = time.perf_counter()
    for im in images:
        step(im)
    return (time.perf_counter() - t) / len(images) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True, help="a YOLO detect graph written by detft export (--dynamic or not)")
    ap.add_argument("--run", help="the run it came from, for the PyTorch predictor's time")
    ap.add_argument("--video", default=VTEST)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import detft
    from detft.inference.yolo_graph import Letterbox, select
    from detft.models.yolo import prepare_offline

    prepare_offline()
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import nms, ops

    from export import frames  # bench/export.py: the same decoded frames

    images = frames(args.video, args.frames)
    onnx = detft.load(args.onnx, device="cpu")
    p = onnx.predictor
    g = p.graph
    inputs = [Letterbox.fit(*im.shape[:2], p.imgsz, g.stride, g.dynamic) for im in images]
    raws = [p.session.run(p.outputs, {p.input.name: b.apply(im, p.dtype)})[0] for b, im in zip(inputs, images)]
    classes = raws[0].shape[1] - 4

    def ours_post(i: int) -> None:
        box = Letterbox.fit(*images[i].shape[:2], p.imgsz, g.stride, g.dynamic)
        box.apply(images[i], p.dtype)
        det = select(raws[i], p.conf, p.iou, p.max_dets, classes, g.end2end)
        box.boxes_to_image(det[:, :4], *images[i].shape[:2])

    def theirs_post(i: int) -> None:
        boxed = LetterBox((p.imgsz, p.imgsz), auto=g.dynamic, stride=g.stride)(image=images[i])
        np.ascontiguousarray(boxed.transpose(2, 0, 1)[None], dtype=p.dtype) / np.array(255, p.dtype)
        det = nms.non_max_suppression(torch.from_numpy(raws[i]).float(), p.conf, p.iou, None, False, max_det=p.max_dets)[0]
        det[:, :4] = ops.scale_boxes(boxed.shape[:2], det[:, :4], images[i].shape)

    index = list(range(len(images)))
    rows: dict[str, list[float]] = {k: [] for k in ("post detft", "post ultralytics", "ORT detft", "ORT ultralytics",
                                                     "PyTorch")}
    torch_model = detft.load(args.run, device="cpu") if args.run else None
    for _ in range(args.repeats):
        rows["post detft"].append(timed(ours_post, index))
        rows["post ultralytics"].append(timed(theirs_post, index))
        rows["ORT detft"].append(timed(lambda im: p.predict([im]), images))
        rows["ORT ultralytics"].append(timed(lambda im: ultralytics_yolo(p, im), images))
        if torch_model is not None:
            rows["PyTorch"].append(timed(lambda im: torch_model.predictor.predict([im]), images))
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    print(f"{len(images)} frames of {Path(args.video).name} ({images[0].shape[1]}x{images[0].shape[0]}), "
          f"{Path(args.onnx).name} ({'dynamic' if g.dynamic else 'static'} {p.imgsz}), conf {p.conf}, "
          f"{torch.get_num_threads()} threads; medians of {args.repeats} alternating runs")
    print("| step | ms per frame | FPS | vs PyTorch |")
    print("|---|---:|---:|---:|")
    for k, ms in med.items():
        ratio = f"{med['PyTorch'] / ms:.2f}x" if "PyTorch" in med and not k.startswith("post") else ""
        print(f"| {k} | {ms:.2f} | {1000 / ms:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
