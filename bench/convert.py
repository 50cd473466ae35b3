"""Conversion throughput on a generated dataset: annotations per second for VOC->COCO and COCO->YOLO.

    python bench/convert.py [--images 10000 --boxes-per-image 10] [--dense-boxes 100000] [--discovery-files 100000]

Images are real JPEG files (one encoded frame hard-linked per image) so the checker's header probe is
measured too. Prints a table of seconds and annotations/s per stage (read, check, write, total)."""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from detft.annotations.check import check
from detft.annotations.images import probe
from detft.annotations.report import Report
from detft.formats import coco, voc, yolo

W, H = 640, 480
CLASSES = [f"class{i}" for i in range(20)]


def make_voc(root: Path, n_images: int, per_image: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    frame = root / "frame.jpg"
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(frame)
    total = 0
    for i in range(n_images):
        os.link(frame, root / "JPEGImages" / f"{i:06d}.jpg")
        objs = []
        for _ in range(per_image):
            x0, y0 = rng.randint(1, W - 40), rng.randint(1, H - 40)
            x1, y1 = rng.randint(x0 + 5, min(W, x0 + 200)), rng.randint(y0 + 5, min(H, y0 + 200))
            objs.append(f"<object><name>{rng.choice(CLASSES)}</name><pose>Unspecified</pose><truncated>0</truncated>"
                        f"<difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                        f"<ymax>{y1}</ymax></bndbox></object>")
        total += per_image
        (root / "Annotations" / f"{i:06d}.xml").write_text(
            f"<annotation><folder>JPEGImages</folder><filename>{i:06d}.jpg</filename><size><width>{W}</width>"
            f"<height>{H}</height><depth>3</depth></size>{''.join(objs)}</annotation>")
    frame.unlink()
    return total


def make_dense_coco(root: Path, boxes: int, size: int = 4000, seed: int = 0) -> int:
    """One large image holding ``boxes`` small objects (a cell count, a shelf, an aerial scene), as COCO."""
    import json

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)).resize((size, size)).save(
        root / "images" / "dense.jpg")
    xy = rng.uniform(0, size - 12, (boxes, 2))
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1 + i % 3, "bbox": [round(x, 1), round(y, 1), 10.0, 8.0],
             "area": 80.0, "iscrowd": 0} for i, (x, y) in enumerate(xy.tolist())]
    doc = {"images": [{"id": 1, "file_name": "dense.jpg", "width": size, "height": size}], "annotations": anns,
           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES[:3])]}
    (root / "annotations.json").write_text(json.dumps(doc))
    return boxes


def make_scattered(root: Path, files: int) -> list[Path]:
    """``files`` files the way a published dataset scatters them: half images in ``IMAGES/<batch>/``, half VOC
    XML in ``ANNOTATIONS/<batch>/``, 100 batches (hard links of one file each: the listing is what is measured)."""
    image, xml = root / "one.jpg", root / "one.xml"
    root.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(image)
    xml.write_text("<annotation><filename>camera.jpg</filename></annotation>")
    annotations = []
    for i in range(files // 2):
        batch = f"{i % 100:03d}"
        for folder, src, suffix in (("IMAGES", image, ".jpg"), ("ANNOTATIONS", xml, ".xml")):
            (root / folder / batch).mkdir(parents=True, exist_ok=True)
            os.link(src, root / folder / batch / f"{i:07d}{suffix}")
        annotations.append(root / "ANNOTATIONS" / batch / f"{i:07d}.xml")
    return annotations


def run_discovery(root: Path, annotations: list[Path]) -> dict:
    """List every file under ``root`` and pair every annotation file with its image (the stale name inside each
    file misses, so each pairs by its own stem, nearest in the tree)."""
    from detft.formats import detect
    from detft.formats.pairing import ImageIndex

    fmt, t_detect = timed(lambda: detect(root))
    index, t_index = timed(lambda: ImageIndex(root))
    found, t_pair = timed(lambda: [index.find(a, "camera.jpg")[0] for a in annotations])
    assert fmt == "voc" and all(p is not None and p.stem == a.stem for p, a in zip(found, annotations))
    return {"files": 2 * len(annotations), "detect": t_detect, "index": t_index, "pair": t_pair,
            "total": t_detect + t_index + t_pair}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_pipeline(name: str, reader, src: Path, writer, out: Path) -> dict:
    probe.cache_clear()
    report = Report()
    ds, t_read = timed(lambda: reader(src, report))
    _, t_check = timed(lambda: check(ds, report))
    _, t_write = timed(lambda: writer(ds, out, report))
    n = ds.num_annotations
    return {"name": name, "annotations": n, "read": t_read, "check": t_check, "write": t_write,
            "total": t_read + t_check + t_write, "changes": len(report)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--boxes-per-image", type=int, default=10)
    p.add_argument("--dense-boxes", type=int, default=100_000, help="objects in the one-image dense row (0: no row)")
    p.add_argument("--discovery-files", type=int, default=100_000, help="files in the discovery row (0: no row)")
    a = p.parse_args()
    discovery = None
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t0 = time.perf_counter()
        total = make_voc(d / "voc", a.images, a.boxes_per_image)
        print(f"generated {a.images} images, {total} boxes in {time.perf_counter() - t0:.1f}s")
        rows = [run_pipeline("VOC -> COCO", voc.read, d / "voc", coco.write, d / "coco"),
                run_pipeline("COCO -> YOLO", coco.read, d / "coco", yolo.write, d / "yolo")]
        if a.dense_boxes:  # one image, every object in it: the per-image checks must be linear in objects
            make_dense_coco(d / "dense", a.dense_boxes)
            rows.append(run_pipeline("dense -> YOLO", coco.read, d / "dense" / "annotations.json", yolo.write,
                                     d / "dense_yolo"))
        if a.discovery_files:
            discovery = run_discovery(d / "scattered", make_scattered(d / "scattered", a.discovery_files))
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    head = f"{'pipeline':<14}{'annotations':>12}{'read s':>9}{'check s':>9}{'write s':>9}{'total s':>9}{'ann/s':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name']:<14}{r['annotations']:>12}{r['read']:>9.2f}{r['check']:>9.2f}{r['write']:>9.2f}"
              f"{r['total']:>9.2f}{r['annotations'] / r['total']:>10.0f}")
    if discovery:
        head = f"{'discovery':<14}{'files':>12}{'detect s':>9}{'index s':>9}{'pair s':>9}{'total s':>9}{'files/s':>10}"
        print(f"\n{head}\n{'-' * len(head)}")
        r = discovery
        print(f"{'scattered VOC':<14}{r['files']:>12}{r['detect']:>9.2f}{r['index']:>9.2f}{r['pair']:>9.2f}"
              f"{r['total']:>9.2f}{r['files'] / r['total']:>10.0f}")


if __name__ == "__main__":
    main()
