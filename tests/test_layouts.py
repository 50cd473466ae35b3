"""Property test (#34, item 8): a dataset written in each format, then laid out as people's folders really are (images
apart from their annotations, names stale from the author's machine, split lists with any line ending and a
byte-order mark, macOS and Windows litter, a second copy of the images elsewhere), reads back from its root with no
flags to the same images, splits and boxes."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path
from xml.etree import ElementTree

from helpers import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.report import Report
from detft.formats import write_dataset
from detft.operations.convert import load

AUTHOR = "/home/alice/datasets/cells"  # where the files were written: not on this machine
NAMES = ["a b.jpg", "Zelle_ü.jpg", "IMG_0001.JPG", "frame (2).png", "x.jpeg", "0042.jpg"]
CLASSES = ["red cell", "Plättchen", "wbc"]
FORMATS = ["coco", "yolo", "voc", "labelme", "cvat", "via", "csv", "labelstudio", "kitti", "createml"]
SPLIT_FOLDER = {"train": "train", "val": "valid", "test": "test"}  # Roboflow's names


@st.composite
def layouts(draw):
    n = draw(st.integers(2, len(NAMES)))
    splits = draw(st.lists(st.sampled_from(["train", "val", "test"]), min_size=n, max_size=n))
    boxes = [draw(st.lists(st.tuples(st.integers(0, len(CLASSES) - 1), st.integers(0, 30), st.integers(0, 20),
                                     st.integers(8, 30), st.integers(8, 25)), min_size=1, max_size=3,
                           unique_by=lambda b: b[1:])) for _ in range(n)]
    return {
        "format": draw(st.sampled_from(FORMATS)),
        "images": list(zip(NAMES[:n], splits, boxes)),
        "apart": draw(st.booleans()),  # images in a folder of their own, away from the annotations
        "stale": draw(st.booleans()),  # image names as written on the author's machine
        "ending": draw(st.sampled_from(["\n", "\r\n", "\r"])),
        "bom": draw(st.booleans()),
        "litter": draw(st.booleans()),  # .DS_Store, Thumbs.db, __MACOSX/._name.jpg
        "copy": draw(st.booleans()),  # a second copy of the images under backup/
    }


def _dataset(spec: dict, src: Path) -> Dataset:
    images = []
    for k, (name, split, boxes) in enumerate(spec["images"]):
        path = make_image(src / name, 64, 48, seed=k)
        anns = [Annotation(c + 1, (float(x), float(y), float(x + w), float(y + h))) for c, x, y, w, h in boxes]
        images.append(ImageRecord(name, 64, 48, path=path, split=split, annotations=anns))
    return Dataset(images, [Category(i + 1, n) for i, n in enumerate(CLASSES)], root=src)


def _write_csv(ds: Dataset, root: Path) -> None:
    """Roboflow's "Tensorflow Object Detection CSV": ``<split>/_annotations.csv`` beside the split's images."""
    for split in ds.splits():
        folder = root / SPLIT_FOLDER[split]
        folder.mkdir(parents=True)
        with open(folder / "_annotations.csv", "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
            for im in ds.images_in(split):
                shutil.copy(im.path, folder / im.file_name)
                for a in im.annotations:
                    out.writerow([im.file_name, im.width, im.height, CLASSES[a.category_id - 1], *map(int, a.bbox)])


def _images(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name in NAMES]


def _move_apart(spec: dict, root: Path) -> None:
    """Every image into one folder away from the annotations (split folders keep their own: ``train/images/``)."""
    for p in _images(root):
        split_folder = next((root / f for f in SPLIT_FOLDER.values() if (root / f) in p.parents), None)
        if spec["format"] in ("via", "csv", "createml"):
            target = (split_folder or root) / "images" / p.name
        elif spec["format"] == "yolo":  # Roboflow's split folders: <split>/images + <split>/labels, yaml ../<split>
            continue
        else:
            target = root / "photos" / "batch 1" / p.name
        target.parent.mkdir(parents=True, exist_ok=True)
        p.rename(target)
    for empty in sorted((d for d in root.rglob("*") if d.is_dir()), reverse=True):
        if not any(empty.iterdir()):
            empty.rmdir()


def _yolo_roboflow(root: Path, spec: dict) -> None:
    """ultralytics' images/<split> + labels/<split> turned into Roboflow's <split>/images + <split>/labels."""
    yml = {}
    for split, folder in SPLIT_FOLDER.items():
        if (root / "images" / split).is_dir():
            (root / folder).mkdir()
            (root / "images" / split).rename(root / folder / "images")
            (root / "labels" / split).rename(root / folder / "labels")
            yml[split] = f"../{folder}/images"
    names = "\n".join(f"- {c}" for c in CLASSES)
    (root / "data.yaml").write_text("\n".join(f"{s}: {p}" for s, p in yml.items()) + f"\n\nnc: {len(CLASSES)}\n"
                                    f"names:\n{names}\n\nroboflow:\n  workspace: alice\n  version: 3\n", encoding="utf-8")


def _list_text(spec: dict, entries: list[str]) -> bytes:
    return (b"\xef\xbb\xbf" if spec["bom"] else b"") + "".join(e + spec["ending"] for e in entries).encode()


def _yolo_lists(root: Path, spec: dict) -> None:
    """The yaml of a repository that commits lists: ``path:`` the author's folder, ``train: train.txt``."""
    yml = [f"path: {AUTHOR}"]
    for split in ("train", "val", "test"):
        folder = root / "images" / split
        if folder.is_dir():
            entries = [f"{AUTHOR}/images/{split}/{p.name}" for p in sorted(folder.iterdir())]
            (root / f"{split}.txt").write_bytes(_list_text(spec, entries))
            yml.append(f"{split}: {split}.txt")
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    (root / "data.yaml").write_text("\n".join(yml) + f"\nnames:\n{names}\n", encoding="utf-8")


def _rewrite_lists(root: Path, spec: dict) -> None:
    """VOC's ImageSets with the drawn line ending and byte-order mark, entries prefixed as another machine wrote them."""
    for f in (root / "ImageSets" / "Main").glob("*.txt"):
        entries = f.read_text(encoding="utf-8").splitlines()
        f.write_bytes(_list_text(spec, [f"aerial/{e}" if spec["stale"] else e for e in entries]))


def _stale(name: str) -> str:
    return f"{AUTHOR}/{Path(name).name}"


def _make_stale(fmt: str, root: Path) -> None:
    """Each file's image names as the author's machine wrote them."""
    if fmt == "coco":
        for f in (root / "annotations").glob("*.json"):
            data = json.loads(f.read_text(encoding="utf-8"))
            for im in data["images"]:
                im["file_name"] = _stale(im["file_name"])
            f.write_text(json.dumps(data), encoding="utf-8")
    elif fmt == "labelme":
        for f in root.rglob("*.json"):
            data = json.loads(f.read_text(encoding="utf-8"))
            data["imagePath"] = _stale(data["imagePath"])
            f.write_text(json.dumps(data), encoding="utf-8")
    elif fmt == "via":
        for f in root.rglob("via_region_data.json"):
            data = json.loads(f.read_text(encoding="utf-8"))
            for record in data.values():
                record["filename"] = _stale(record["filename"])
            f.write_text(json.dumps(data), encoding="utf-8")
    elif fmt in ("voc", "cvat"):
        for f in [root / "annotations.xml"] if fmt == "cvat" else (root / "Annotations").glob("*.xml"):
            tree = ElementTree.parse(f)
            for el in tree.iter("image" if fmt == "cvat" else "filename"):
                if fmt == "cvat":
                    el.set("name", _stale(el.get("name")))
                else:
                    el.text = _stale(el.text)
            tree.write(f, encoding="utf-8")
    elif fmt == "labelstudio":  # uploaded: Label Studio's /data/upload/<project>/<8 hex>-<name>
        f = root / "tasks.json"
        tasks = json.loads(f.read_text(encoding="utf-8"))
        for t in tasks:
            t["data"]["image"] = f"/data/upload/7/0a1b2c3d-{Path(t['data']['image']).name}"
        f.write_text(json.dumps(tasks), encoding="utf-8")
    elif fmt == "createml":
        for f in root.rglob("_annotations.createml.json"):
            records = json.loads(f.read_text(encoding="utf-8"))
            for r in records:
                r["image"] = _stale(r["image"])
            f.write_text(json.dumps(records), encoding="utf-8")
    elif fmt == "csv":
        for f in root.rglob("_annotations.csv"):
            rows = list(csv.reader(f.open(encoding="utf-8", newline="")))
            rows[1:] = [[_stale(r[0]), *r[1:]] for r in rows[1:]]
            with open(f, "w", newline="", encoding="utf-8") as out:
                csv.writer(out).writerows(rows)


def _litter(root: Path) -> None:
    """What a Mac or Windows machine leaves in a zip: .DS_Store and Thumbs.db in every folder, __MACOSX/ with an
    AppleDouble ``._name`` for every file (not an image, whatever its suffix)."""
    for folder in [root, *(d for d in root.rglob("*") if d.is_dir())]:
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(64))
    for p in _images(root):
        fork = root / "__MACOSX" / p.parent.relative_to(root) / f"._{p.name}"
        fork.parent.mkdir(parents=True, exist_ok=True)
        fork.write_bytes(b"\x00\x05\x16\x07" + bytes(80))
        (p.parent / f"._{p.name}").write_bytes(b"\x00\x05\x16\x07" + bytes(80))


def lay_out(spec: dict, tmp: Path) -> tuple[Dataset, Path]:
    ds = _dataset(spec, tmp / "src")
    root = tmp / "dataset"
    if spec["format"] == "csv":
        _write_csv(ds, root)
    else:
        write_dataset(spec["format"], ds, root, Report(), image_mode="copy")
    if spec["format"] == "yolo":
        (_yolo_roboflow if spec["apart"] else _yolo_lists if spec["stale"] else lambda *_: None)(root, spec)
    elif spec["apart"]:
        _move_apart(spec, root)
    if spec["stale"]:
        _make_stale(spec["format"], root)
    if spec["format"] == "voc":
        _rewrite_lists(root, spec)
    if spec["copy"]:  # a second copy of the images, e.g. the originals before a resize, must not double anything
        for p in _images(root):
            target = root / "backup" / "originals" / p.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, target)
    if spec["litter"]:
        _litter(root)
    return ds, root


def _content(ds: Dataset, one_word: bool = False) -> list[tuple]:
    """Images, splits and boxes; ``one_word``: class names as KITTI writes them (``red cell`` is ``red_cell``)."""
    names = {c.id: c.name.replace(" ", "_") if one_word else c.name for c in ds.categories}
    return sorted((Path(im.file_name).name, im.split or "train",
                   tuple(sorted((names[a.category_id], *(round(v, 3) for v in a.bbox)) for a in im.annotations)))
                  for im in ds.images)


@settings(max_examples=300, deadline=None, derandomize=True,  # the same layouts in every CI run
          suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_every_format_reads_back_from_any_real_layout(spec):
    with tempfile.TemporaryDirectory() as tmp:
        ds, root = lay_out(spec, Path(tmp))
        report = Report()
        back = load(root, None, report)
        one_word = spec["format"] == "kitti"
        assert _content(back, one_word) == _content(ds, one_word), "\n".join(report.notes)
        assert not [c for c in report.changes if c.action == "dropped"], report.changes
