"""Small builders for test data: real image files of a given size and tiny datasets."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.report import Report
from detft.config import TrainConfig
from detft.data.torch_dataset import DetectionDataset
from detft.inference.detections import Detections
from detft.models.labels import LabelMap
from detft.operations.convert import load


def make_image(path: Path, width: int, height: int, seed: int = 0, exif_orientation: int | None = None) -> Path:
    """A real JPEG/PNG with noise pixels (so decoders and probes do real work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    kw = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kw["exif"] = exif
    im.save(path, **kw)
    return path


def tiny_dataset(root: Path, n_images: int = 3, size: tuple[int, int] = (64, 48)) -> Dataset:
    """Images on disk with two classes, a polygon, a crowd RLE and an empty image."""
    from detft.annotations.geometry import encode_mask

    w, h = size
    images = []
    for i in range(n_images):
        p = make_image(root / f"img{i}.png", w, h, seed=i)
        anns = []
        if i % 3 != 2:  # every third image has no objects
            anns.append(Annotation(1, (4.0, 5.0, 30.0, 40.0)))
            anns.append(Annotation(2, (10.0, 8.0, 50.0, 30.0), polygons=[[10.0, 8.0, 50.0, 8.0, 30.0, 30.0]]))
            mask = np.zeros((h, w), np.uint8)
            mask[20:30, 35:60] = 1
            anns.append(Annotation(1, (35.0, 20.0, 60.0, 30.0), rle=encode_mask(mask), iscrowd=True))
        images.append(ImageRecord(p.name, w, h, path=p, annotations=anns))
    return Dataset(images, [Category(1, "cat"), Category(2, "dog")], root=root)


def make_data(root: Path, n: int = 8, size: int = 96, seed: int = 1, val_is_train: bool = True) -> Path:
    """Synthetic shapes; with ``val_is_train`` the val split holds copies of the training images."""
    from detft.operations.synthetic import generate

    generate(root, n_train=n, n_val=0 if val_is_train else 4, size=size, seed=seed)
    if val_is_train:
        (root / "images" / "val").mkdir()
        for p in (root / "images" / "train").iterdir():
            shutil.copy(p, root / "images" / "val" / p.name)
        shutil.copy(root / "annotations" / "instances_train.json", root / "annotations" / "instances_val.json")
    return root


def training_set(root: Path, **kw: Any) -> DetectionDataset:
    """The training split of the dataset at ``root`` as the R-CNN trainer's torch Dataset (``kw``: its options)."""
    ds = load(root, None, Report())
    return DetectionDataset(ds.images_in("train"), LabelMap.from_dataset(ds), **kw)


def config(data: Path, tmp: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), arch="fasterrcnn", model="tiny_fasterrcnn", weights="none", epochs=1, batch=4,
                lr=0.002, optimizer="adamw", schedule="constant", warmup_iters=0, augment="none", workers=0,
                project=str(tmp / "runs"), name="run", imgsz=96)
    base.update(kw)
    return TrainConfig(**base)


def yolo_config(tmp: Path, model: str, **kw) -> TrainConfig:
    base = dict(arch="yolo", model=model, epochs=2, batch=8, imgsz=64, workers=0, project=str(tmp / "runs"),
                name="y", device="cpu", augment="flip,color")
    base.update(kw)
    return TrainConfig(**base)


def widen_images(root: Path, widths: tuple[int, ...] = (96, 160, 128, 112)) -> Path:
    """Give the images of a ``make_data`` folder several widths (a band of noise added on the right, the objects
    untouched), as real datasets of mixed phone photos have: batches then pad to different sizes."""
    import json

    from PIL import Image

    rng = np.random.default_rng(0)
    for ann in sorted((root / "annotations").glob("instances_*.json")):
        doc = json.loads(ann.read_text())
        for k, im in enumerate(doc["images"]):
            path = root / "images" / ann.stem.removeprefix("instances_") / im["file_name"]
            old = Image.open(path).convert("RGB")
            wide = Image.fromarray(rng.integers(0, 255, (old.height, widths[k % len(widths)], 3), dtype=np.uint8))
            wide.paste(old, (0, 0))
            wide.save(path)
            im["width"] = wide.width
        ann.write_text(json.dumps(doc))
    return root


def ddp_config(data: str, out: str, **kw) -> TrainConfig:
    """The tiny detector as each DDP rank of the gloo tests trains it."""
    base = dict(data=data, arch="fasterrcnn", model="tiny_fasterrcnn", weights="none", epochs=1, batch=2,
                lr=0.01, optimizer="sgd", schedule="constant", warmup_iters=0, augment="flip,color",
                workers=0, project=out, name="ddp", imgsz=96, freeze="none", clip_grad=10.0)
    base.update(kw)
    return TrainConfig(**base)


class Oracle:
    """A 'model' that sees exactly what is in the crop it is given: every pixel of grey value k (k = 1, 2, 3) is
    class k; each 4-connected blob is one detection, its box, its mask, a score from its size. Whatever the
    sliced predictor returns is then a pure function of the cutting, shifting and merging."""

    def __init__(self, masks: bool = True):
        self.labels = LabelMap((1, 2, 3), ("a", "b", "c"), background=False)
        self.masks, self.calls, self.conf, self.max_dets = masks, [], 0.0, 100

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        self.conf, self.max_dets = conf, max_dets

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        import cv2

        self.calls.append([im.shape[:2] for im in images])
        out = []
        for im in images:
            boxes, labels, masks = [], [], []
            for k in (1, 2, 3):
                n, comp = cv2.connectedComponents((im[..., 0] == k).astype(np.uint8), connectivity=4)
                for c in range(1, n):
                    ys, xs = np.nonzero(comp == c)
                    boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                    labels.append(k)
                    masks.append(comp == c)
            area = np.array([m.sum() for m in masks], np.float32)
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), np.minimum(area / 1e4, 1.0),
                                  np.array(labels, np.int64), np.array(masks, bool).reshape(-1, *im.shape[:2])
                                  if self.masks else None))
        return out


def slice_detections(width: int, height: int, size: int, per_window: int, seed: int = 0):
    """What a model at evaluation confidence returns over an image's windows: ``per_window`` boxes in each (10-50% of
    its side, three classes, uniform scores), in image coordinates, with the window each came from."""
    from detft.operations.tiling import windows

    rng = np.random.default_rng(seed)
    wins = np.repeat(np.array(windows(width, height, size, 0.2), np.float32), per_window, axis=0)
    wh = rng.uniform(0.1, 0.5, (len(wins), 2)) * (wins[:, 2:] - wins[:, :2])
    xy = rng.uniform(wins[:, :2], wins[:, 2:] - wh)
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    return boxes, rng.random(len(wins)).astype(np.float32), rng.integers(0, 3, len(wins)), wins


def pairwise_merge(boxes, scores, labels, cut, wins, threshold: float = 0.5) -> list[list[int]]:
    """The slice merge's rule with every object compared to every detection not yet taken (the merge before its
    grid index): the reference the indexed merge must equal, and the "before" of bench/slice_merge.py."""
    from detft.inference.sliced import _absorbs, _pieces_meet, _shape, _union

    order, taken, groups = np.argsort(-scores, kind="stable"), np.zeros(len(scores), bool), []
    for i in order:
        if taken[i]:
            continue
        members, union, taken[i] = [int(i)], boxes[i].copy(), True
        while True:
            rest = order[~taken[order]]
            rest = rest[labels[rest] == labels[i]]
            near = _absorbs(union, boxes[rest], threshold) if len(rest) else np.zeros(0, bool)
            for m in (m for m in members if cut[m] and len(rest)):
                near |= cut[rest] & _pieces_meet(m, rest, boxes, wins, threshold)
            if not near.any():
                break
            taken[rest[near]] = True
            members += [int(j) for j in rest[near]]
            grown = _union(boxes, _shape(members, cut))
            if np.array_equal(grown, union):
                break
            union = grown
        groups.append(members)
    return groups


ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = "<!-- runnable"


@dataclass(frozen=True)
class DocBlock:
    """A fenced code block of the documentation marked ``<!-- runnable -->`` (run by tests/test_docs.py) or
    ``<!-- runnable by tests/X.py -->`` (run, with assertions of its own, by that test file)."""

    page: str
    line: int
    lang: str
    code: str
    runner: str | None


def doc_blocks() -> list[DocBlock]:
    blocks = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not line.startswith(RUNNABLE):
                continue
            fence = lines[i + 1]
            assert fence.startswith("```"), f"{page.name}:{i + 1}: the runnable marker must precede a code fence"
            end = lines.index("```", i + 2)
            runner = line.removeprefix(RUNNABLE).removesuffix("-->").strip().removeprefix("by ").strip() or None
            blocks.append(DocBlock(page.name, i + 2, fence[3:].strip(), "\n".join(lines[i + 2:end]) + "\n", runner))
    return blocks


def doc_block(page: str, runner: str) -> DocBlock:
    """The one block of ``page`` that the test file ``runner`` runs."""
    (block,) = [b for b in doc_blocks() if b.page == page and b.runner == runner]
    return block


# a fresh interpreter's preamble: the import hook that refuses ultralytics and records who asked
BLOCKER = textwrap.dedent("""
    import importlib.abc, json, pathlib, sys, traceback
    sys.path.insert(0, {tests!r})
    ASKED = []

    class NoUltralytics(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.partition(".")[0] in ("ultralytics", "lap"):
                caller = [f for f in traceback.extract_stack() if "importlib" not in f.filename][-1]
                ASKED.append(f"{{name}} from {{caller.filename}}:{{caller.lineno}}")
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NoUltralytics())
""").format(tests=str(Path(__file__).parent))


def run_without_ultralytics(body: str, cwd: Path) -> dict:
    """Run ``body`` in a fresh interpreter where every ultralytics (and lap) import is refused and recorded in
    ``ASKED``; ``body`` prints one JSON line last, which is returned."""
    script = BLOCKER + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


class FakeCapture:
    """A camera that plays a script: images, None for a read failure (the stream is lost)."""

    def __init__(self, script: list[np.ndarray | None], delay: float = 0.0):
        self.script, self.delay = script, delay

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 10.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.delay)
        if not self.script:
            time.sleep(0.05)
            return False, None
        image = self.script.pop(0)
        return image is not None, image

    def release(self) -> None:
        pass


class Closed(FakeCapture):
    def isOpened(self) -> bool:
        return False


def picture(i: int) -> np.ndarray:
    image = np.full((32, 32, 3), 40, np.uint8)
    image[4:12, i % 20: i % 20 + 8] = 200
    return image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_mjpeg(port: int) -> subprocess.Popen:
    """ffmpeg serving a 10 fps test pattern as HTTP MJPEG on loopback (one client)."""
    return subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                             "testsrc2=size=160x120:rate=10", "-f", "mpjpeg", "-listen", "1",
                             f"http://127.0.0.1:{port}/stream.mjpg"], stdin=subprocess.DEVNULL)
