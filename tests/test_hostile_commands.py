"""Every command on every class of hostile input: a named error (exit 1) or a reported fix (exit 0),
never a traceback, never exit 70, and nothing outside the command's own output changed in the sandbox."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import make_image

from detft.cli import main

CLASSES = [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}, {"id": 3, "name": "triangle"}]


def coco(folder: Path, images: list[dict], annotations: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(json.dumps({"images": images, "categories": CLASSES,
                                                       "annotations": annotations}))
    return folder / "instances.json"


def good_images(folder: Path, n: int = 3) -> list[dict]:
    for i in range(n):
        make_image(folder / f"g{i}.jpg", 96, 96, seed=i)
    return [{"id": i + 1, "file_name": f"g{i}.jpg", "width": 96, "height": 96} for i in range(n)]


def box(i: int, image_id: int, bbox: object, cat: object = 1) -> dict:
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": 0}


def bad_numbers(root: Path) -> Path:
    images = good_images(root)
    images.append({"id": 9, "file_name": "g0.jpg", "width": float("nan"), "height": 1e400})
    anns = [box(1, 1, [10, 10, 40, 40]), box(2, 2, [20, 20, 30, 30], 2), box(3, 3, [5, 5, 50, 60], 3),
            box(4, 1, [float("nan"), 1, 2, 3]), box(5, 2, [1e400, 1, 2, 3]), box(6, 3, [int("9" * 400), 1, 2, 3]),
            box(7, 1, ["a", 1, 2, 3]), box(8, 2, [1, 2, 3]), box(9, 3, [1, 2, 3, 4], [1]), box(10, "1", [1, 2, 3, 4])]
    return coco(root, images, anns)


def bad_structure(root: Path) -> Path:
    make_image(root / "a.jpg", 96, 96)
    (root / "a.json").write_text(json.dumps({"imagePath": "a.jpg", "shapes": {"label": "circle"},
                                             "imageWidth": 96, "imageHeight": 96}))
    return root


def hostile_splits(root: Path) -> Path:
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax,split"]
    for i, split in enumerate(["../../../pwn", str(root.parent / "abs_pwn"), "train", "a/../../b"]):
        make_image(root / f"im{i}.jpg", 96, 96, seed=i)
        rows.append(f"im{i}.jpg,96,96,circle,10,10,50,50,{split}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def latin1_yaml(root: Path) -> Path:
    make_image(root / "images" / "train" / "a.jpg", 96, 96)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_bytes("train: images/train\nnames: [caf\u00e9]\n".encode("latin-1"))
    return root


def yaml_bomb(root: Path) -> Path:
    make_image(root / "images" / "train" / "a.jpg", 96, 96)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    (root / "data.yaml").write_text("\n".join(lines) + "\ntrain: images/train\nnames: *a11\n")
    return root


def non_utf8_names(root: Path) -> Path:
    """A YOLO dataset whose names come from the disk: Latin-1 bytes that are not UTF-8 (OpenCV's imread
    crashes the process on such a name)."""
    (root / "labels" / "train").mkdir(parents=True)
    for i, stem in enumerate([b"caf\xe9", b"na\xefve", b"ok"]):
        name = os.fsdecode(stem)
        make_image(root / "images" / "train" / f"{name}.jpg", 96, 96, seed=i)
        (root / "labels" / "train" / f"{name}.txt").write_text("0 0.5 0.5 0.3 0.3\n1 0.3 0.3 0.2 0.2\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [circle, square, triangle]\n")
    return root


def bomb_image(root: Path) -> Path:
    images = good_images(root)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    (root / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                                    + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    images.append({"id": 4, "file_name": "bomb.png", "width": 30000, "height": 30000})
    return coco(root, images, [box(1, 1, [10, 10, 40, 40]), box(2, 2, [20, 20, 30, 30], 2), box(3, 3, [5, 5, 50, 60]),
                               box(4, 4, [1, 1, 100, 100])])


HOSTILE: dict[str, Callable[[Path], Path]] = {
    "numbers": bad_numbers, "structure": bad_structure, "split names": hostile_splits, "latin-1 yaml": latin1_yaml,
    "yaml bomb": yaml_bomb, "non-utf8 names": non_utf8_names, "bomb image": bomb_image}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny R-CNN trained for one step on clean data: what eval, predict and video load."""
    from detft.operations.synthetic import generate

    root = tmp_path_factory.mktemp("model")
    generate(root / "data", n_train=4, n_val=2, size=96, seed=1)
    code = main(["train", "--data", str(root / "data"), "--model", "tiny_fasterrcnn", "--weights", "none",
                 "--epochs", "1", "--batch", "4", "--workers", "0", "--imgsz", "96", "--augment", "none",
                 "--project", str(root / "runs"), "--name", "m", "--device", "cpu"])
    assert code == 0
    return root / "runs" / "m"


def commands(src: Path, out: Path, model: Path) -> dict[str, list[str]]:
    folder = src if src.is_dir() else src.parent
    return {
        "convert": ["convert", str(src), str(out / "converted")],
        "inspect": ["inspect", str(src), "--grid", str(out / "grid.png")],
        "train": ["train", "--data", str(src), "--model", "tiny_fasterrcnn", "--weights", "none", "--epochs", "1",
                  "--batch", "2", "--workers", "0", "--imgsz", "96", "--augment", "none", "--project", str(out / "runs"),
                  "--device", "cpu"],
        "eval": ["eval", "--weights", str(model), "--data", str(src), "--split", "train", "--out", str(out / "eval")],
        "predict": ["predict", "--weights", str(model), "--source", str(folder), "--out", str(out / "pred")],
        "video": ["video", "--weights", str(model), "--source", str(folder), "--jsonl", str(out / "v.jsonl")],
    }


@pytest.mark.parametrize("command", ["convert", "inspect", "train", "eval", "predict", "video"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_every_command_on_every_class_of_hostile_input(sandbox, model: Path, case: str, command: str, capsys):
    src = HOSTILE[case](sandbox.root / "data")
    out = sandbox.root / "out"
    argv = commands(src, out, model)[command]
    sandbox.freeze()
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Traceback" not in err and "unexpected" not in err
    if code == 1:  # a named error: one line, the last (the video tool may print its counters first)
        assert err.strip().splitlines()[-1].startswith("detft: error: "), err
    assert sandbox.changed_outside(out) == []
    shutil.rmtree(out, ignore_errors=True)
