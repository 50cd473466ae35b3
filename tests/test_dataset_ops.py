"""The dataset operations a labelling loop needs (#26): merge (classes by name, an image found twice kept once),
--map (rename, join, drop, every drop reported), and split (stratified by class, near-identical frames together)."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image
from PIL import Image

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.report import Report
from detft.cli import main
from detft.errors import DataLossError, DetftError
from detft.formats import coco
from detft.operations.classmap import parse_map
from detft.operations.convert import convert, load
from detft.operations.split import Splitting, near_groups, split_dataset


def coco_dataset(root: Path, names: list[str], images: list[tuple[str, list[tuple[int, tuple]]]],
                 ids: list[int] | None = None) -> Path:
    """A COCO folder: ``images`` = (file name, [(class index, box)]), classes ``names`` with ``ids``."""
    ids = ids or list(range(1, len(names) + 1))
    records = []
    for k, (name, objects) in enumerate(images):
        path = root / "src" / name
        if not path.exists():
            make_image(path, 64, 48, seed=zlib.crc32(f"{root.name}/{name}".encode()))  # distinct pixels
        records.append(ImageRecord(name, 64, 48, path=path, split="train",
                                   annotations=[Annotation(ids[c], box) for c, box in objects]))
    coco.write(Dataset(records, [Category(i, n) for i, n in zip(ids, names)], root=root), root / "coco", Report(),
               image_mode="copy")
    return root / "coco"


BOX = (4.0, 4.0, 30.0, 30.0)


def test_merge_joins_classes_by_name_keeps_the_first_ids_and_an_image_found_twice_once(tmp_path: Path):
    a = coco_dataset(tmp_path / "a", ["cat", "dog"], [("x.png", [(0, BOX)]), ("y.png", [(1, BOX)])], ids=[3, 7])
    b = coco_dataset(tmp_path / "b", ["bird", "dog"], [("z.png", [(0, BOX), (1, BOX)]), ("w.png", [(1, BOX)])])
    shutil.copy(a / "images" / "train" / "x.png", b / "images" / "train" / "w.png")  # the same photo, renamed
    result = convert([a, b], tmp_path / "out")
    names = {c.id: c.name for c in result.dataset.categories}
    assert names == {3: "cat", 7: "dog", 8: "bird"}  # a's ids as they were; b's new class after them
    files = sorted(Path(im.file_name).name for im in result.dataset.images)
    assert files == ["x.png", "y.png", "z.png"]
    dup = [c for c in result.report.changes if c.kind == "duplicate_image"]
    assert len(dup) == 1 and dup[0].annotations_lost == 1 and dup[0].detail.startswith("w.png is the same image as")
    back = load(tmp_path / "out", "coco", Report())
    assert sorted(names[a.category_id] for im in result.dataset.images for a in im.annotations) == \
        sorted({c.id: c.name for c in back.categories}[a.category_id] for im in back.images for a in im.annotations)


def test_merge_on_the_command_line_needs_two_datasets_and_takes_a_map(tmp_path: Path, capsys):
    a = coco_dataset(tmp_path / "a", ["car", "truck"], [("x.png", [(0, BOX)]), ("y.png", [(1, BOX)])])
    b = coco_dataset(tmp_path / "b", ["bicycle", "car"], [("z.png", [(0, BOX), (1, BOX)])])
    assert main(["merge", str(a), str(tmp_path / "out")]) == 1
    assert "at least two datasets" in capsys.readouterr().err
    assert main(["merge", str(a), str(b), str(tmp_path / "out"), "--to", "yolo",
                 "--map", "car=vehicle,truck=vehicle,drop=bicycle"]) == 0
    printed = capsys.readouterr().out
    assert "car -> vehicle (2 annotation(s))" in printed and "class_dropped" in printed
    back = load(tmp_path / "out", "yolo", Report())
    assert [c.name for c in back.categories] == ["vehicle"] and back.num_annotations == 3


def test_a_map_renames_joins_and_drops_and_refuses_what_it_cannot_do(tmp_path: Path):
    a = coco_dataset(tmp_path / "a", ["car", "truck", "bike"], [("x.png", [(0, BOX), (1, BOX), (2, BOX)])])
    result = convert(a, tmp_path / "out", class_map=parse_map("truck=car, drop=bike"))
    assert [c.name for c in result.dataset.categories] == ["car"] and result.written == 2
    assert result.report.annotations_lost == 1
    with pytest.raises(DetftError, match="no class named 'lorry'"):
        convert(a, tmp_path / "out2", class_map=parse_map("lorry=truck"))
    with pytest.raises(DataLossError):  # dropping everything is losing everything
        convert(a, tmp_path / "out3", class_map=parse_map("drop=car,drop=truck,drop=bike"))
    assert not (tmp_path / "out3").exists()
    for bad, why in (("car", "not old=new"), ("car=a,car=b", "both 'a' and 'b'"), ("car=a,drop=car", "both renamed")):
        with pytest.raises(DetftError, match=why):
            parse_map(bad)


def test_a_stratified_split_puts_a_rare_class_in_every_split(tmp_path: Path):
    images = [(f"im{i:02d}.png", [(1 if i % 10 == 0 else 0, BOX)]) for i in range(30)]  # 3 images hold "rare"
    root = coco_dataset(tmp_path / "a", ["common", "rare"], images)
    for seed in range(5):
        ds = load(root, "coco", Report())
        split_dataset(ds, Splitting((0.8, 0.2), seed, stratify=True), Report())
        rare = [im.split for im in ds.images if any(a.category_id == 2 for a in im.annotations)]
        assert sorted(rare) == ["train", "train", "val"], seed
        assert len(ds.images_in("val")) == 6


def video(root: Path, frames: int, seed: int) -> list[Path]:
    """Frames of one 'video': a textured background with a small object moving a few pixels a frame."""
    rng = np.random.default_rng(seed)
    background = np.kron(rng.integers(0, 255, (12, 16, 3)), np.ones((10, 10, 1))).astype(np.uint8)
    paths = []
    for t in range(frames):
        frame = background.copy()
        frame[40:52, 20 + 3 * t:32 + 3 * t] = 255
        paths.append(root / f"clip{seed}_frame{t:03d}.jpg")
        Image.fromarray(frame).save(paths[-1], quality=85)
    return paths


def test_a_grouped_split_keeps_the_frames_of_one_video_in_one_split(tmp_path: Path):
    (tmp_path / "img").mkdir()
    frames = video(tmp_path / "img", 12, seed=1)
    photos = [make_image(tmp_path / "img" / f"photo{i:02d}.jpg", 160, 120, seed=50 + i) for i in range(24)]
    images = [ImageRecord(p.name, 160, 120, path=p, annotations=[Annotation(1, BOX)]) for p in frames + photos]
    ds = Dataset(images, [Category(1, "thing")])
    groups = near_groups(images)
    assert len(set(groups[:12])) == 1 and len(set(groups)) == 25  # one group for the clip, one per photo
    report = Report()
    split_dataset(ds, Splitting((0.8, 0.2), 0, group=True), report)
    assert len({im.split for im in images[:12]}) == 1
    assert {im.split for im in images} == {"train", "val"}
    assert any("12 near-identical images in 1 groups" in n for n in report.notes)


def test_near_groups_find_exactly_the_pairs_a_brute_force_comparison_finds(monkeypatch):
    import detft.operations.split as split

    rng = np.random.default_rng(0)
    hashes = [int(h) for h in rng.integers(0, 2**63, 400, dtype=np.int64)]
    for k in range(0, 60, 2):  # planted near pairs, 1-8 bits apart (those within 6 must be joined)
        flips = rng.choice(64, size=1 + k % 8, replace=False)
        hashes[k + 1] = hashes[k] ^ sum(1 << int(b) for b in flips)
    monkeypatch.setattr(split, "dhash", lambda im: im)
    got = near_groups(hashes)
    h = np.array(hashes, np.uint64)
    close = np.bitwise_count(h[:, None] ^ h[None, :]) <= split.NEAR_BITS
    for i in range(len(h)):
        for j in np.flatnonzero(close[i]):
            assert got[i] == got[j]
    assert len(set(got)) == len(h) - sum(1 for k in range(0, 60, 2) if 1 + k % 8 <= split.NEAR_BITS)


def test_split_on_the_command_line_writes_the_new_split(tmp_path: Path, capsys):
    images = [(f"im{i:02d}.png", [(i % 2, BOX)]) for i in range(20)]
    root = coco_dataset(tmp_path / "a", ["a", "b"], images)
    assert main(["split", str(root), str(tmp_path / "out"), "--ratios", "0.7,0.2,0.1"]) == 0
    out = capsys.readouterr().out
    assert "splits train=14, val=4, test=2" in out and "stratified by class" in out and "split by groups" in out
    counts = {s: len(json.loads((tmp_path / "out" / "annotations" / f"instances_{s}.json").read_text())["images"])
              for s in ("train", "val", "test")}
    assert counts == {"train": 14, "val": 4, "test": 2}
