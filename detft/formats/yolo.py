"""YOLO detection and segmentation datasets (ultralytics layout): ``data.yaml`` + ``images/<split>``
+ ``labels/<split>/*.txt`` with 0-based class ids and coordinates normalised to the image size."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from ..annotations.dataset import Annotation, Category, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..annotations.geometry import (decode_mask, mask_to_polygons, merge_polygons, polygons_bbox,
                        polygons_to_mask)
from ..annotations.images import IMAGE_SUFFIXES, find_images, is_image_name, probe
from ..util.output import atomic_write_text, safe_component, safe_relpath
from ..annotations.report import Report
from ..util.progress import progress
from .base import canonical_split, finite, lies_within, load_yaml, read_list, read_text, text_field
from .layout import ImagePlacer
from .pairing import Fallback, listed_images, split_of_path, tail_under

NAME = "yolo"
DECIMALS = 6  # 1e-6 of a 10,000 px side is 0.01 px: far inside the 1 px round-trip promise
SPLITS = ("train", "val", "test")


def find_yaml(src: Path) -> Path | None:
    if src.is_file():
        return src if src.suffix in (".yaml", ".yml") else None
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (src / name).is_file():
            return src / name
    return None


DARKNET_KEYS = ("classes", "names", "backup", "eval", "results")


def darknet_data(src: Path) -> Path | None:
    """``obj.data`` of a darknet-style export (CVAT's "YOLO 1.1": ``obj.names``, ``obj.data``,
    ``train.txt``, ``obj_train_data/`` with labels beside the images)."""
    if src.is_file():
        return src if src.name == "obj.data" else None
    return src / "obj.data" if (src / "obj.data").is_file() else None


def _export_path(root: Path, value: str) -> Path:
    """A path as darknet exports write it: relative to the darknet folder, which CVAT calls ``data/``
    (``data/obj.names``) while the export itself is the ``data/`` folder."""
    p = root / value
    if not lies_within(p, [root]):  # a list or names file is read from the export only, by its name there
        p = root / PurePosixPath(value.replace("\\", "/")).name
    if not p.exists() and value.replace("\\", "/").startswith("data/"):
        p = root / value[5:]
    return p


def _read_darknet(obj_data: Path, report: Report) -> tuple[list[str], dict[str, list[Path]]]:
    root = obj_data.parent
    fallback = Fallback(root)
    entries: dict[str, str] = {}
    for lineno, line in enumerate(read_text(obj_data).splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise FormatError(obj_data, f"expected 'key = value', got {line.strip()!r:.60}", line=lineno)
            entries[key.strip()] = value.strip()
    names_file = _export_path(root, entries.get("names", "obj.names"))
    if not names_file.is_file():
        raise FormatError(obj_data, f"class names file {names_file} not found")
    names = [ln.strip() for ln in read_text(names_file).splitlines() if ln.strip()]
    splits: dict[str, list[Path]] = {}
    for key, value in entries.items():
        if key in DARKNET_KEYS:
            continue
        listing = _export_path(root, value)
        if not listing.is_file():
            raise FormatError(obj_data, f"{key} = {value}: the image list {listing} is not there")
        entries = [str(_export_path(root, ln)) for ln in read_list(listing)]
        splits[key] = listed_images(listing, entries, [root], fallback, report)
    if not splits:  # no lists: the obj_<subset>_data folders are the splits
        splits = {d.name[4:-5]: find_images(d) for d in sorted(root.glob("obj_*_data")) if d.is_dir()}
    return names, splits


NAMES_FILES = ("classes.txt", "obj.names", "classes.names")  # where darknet-era exports list the classes, in order


def _yolo_line(line: str) -> bool:
    tok = line.split()
    return (len(tok) >= 5 and tok[0].isascii() and tok[0].isdigit() and finite(tok[1:]) is not None
            and len(tok) % 2 == 1)


def flat_labels(src: Path, sniff: int = 3) -> bool:
    """Labels beside their images in one folder (darknet's and many a published dataset's layout): the first
    images that have a ``.txt`` of the same stem hold YOLO lines."""
    if not src.is_dir():
        return False
    pairs = [p.with_suffix(".txt") for p in sorted(src.iterdir()) if is_image_name(p.name)]
    labels = [lbl for lbl in pairs if lbl.is_file()][:sniff]
    return bool(labels) and all(_yolo_line(next((ln for ln in read_text(lbl).splitlines() if ln.strip()), "0 0 0 0 0"))
                                for lbl in labels)


def _split_lists(src: Path) -> dict[str, Path]:
    """``train.txt``, ``val.txt``, ``test.txt`` among the label files that list images rather than hold boxes."""
    lists = {}
    for f in sorted(src.glob("*.txt")):
        split = canonical_split(f.stem)
        if split not in SPLITS:  # only train.txt, val.txt... are read: never every label file of the folder
            continue
        lines = read_list(f)
        if lines and all(PurePosixPath(ln.replace("\\", "/")).suffix.lower() in IMAGE_SUFFIXES for ln in lines):
            lists[split] = f
    return lists


DARKNET_SUBSET = re.compile(r"obj_.+_data")  # darknet's per-subset image folder (obj_train_data/), beside obj.names


def _names_file(src: Path, report: Report) -> list[str]:
    """Class names from the names file of the folder (``classes.txt``, darknet's ``obj.names``, any ``*.names``), in
    its order, said; for a darknet subset folder read on its own (an export with no ``obj.data``: ``obj.names`` beside
    ``obj_train_data/``), the export's names file beside it."""
    for folder in [src, src.parent] if DARKNET_SUBSET.fullmatch(src.name) else [src]:
        found = [folder / n for n in NAMES_FILES if (folder / n).is_file()] or sorted(folder.glob("*.names"))
        if found:
            report.note(f"class names from {found[0]}")
            return [ln.strip() for ln in read_text(found[0]).splitlines() if ln.strip()]
    return []


def label_path(image: Path) -> Path:
    """ultralytics' rule: the last ``images`` folder in the path becomes ``labels``."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _names(raw: Any, where: Path) -> list[str]:
    if isinstance(raw, list):
        values = raw
    elif isinstance(raw, dict):
        try:
            keys = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise FormatError(where, "'names' keys must be class indices") from None
        if keys != list(range(len(keys))):
            raise FormatError(where, f"'names' indices must be 0..{len(keys) - 1}, got {keys[:10]}")
        values = [raw[k] if k in raw else raw[str(k)] for k in keys]
    else:
        raise FormatError(where, "'names' must be a list or a mapping of index -> name")
    names = [text_field(v) for v in values]
    bad = next((i for i, n in enumerate(names) if not n), None)
    if bad is not None:
        raise FormatError(where, f"class name {bad} is {values[bad]!r:.40}, not a name")
    return names


def _split_images(base: Path, entry: Any, where: Path, split: str, fallback: Fallback,
                  report: Report) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    out: list[Path] = []
    root = where.parent
    for e in entries:
        p = base / str(e)
        if str(e).startswith("../") and not (p.exists() and lies_within(p, [root])):
            p = base / str(e)[3:]  # ultralytics' rule, which Roboflow's data.yaml relies on
        if not lies_within(p, [root]):
            if p.exists():
                raise FormatError(where, f"{split}: {e!r} is {p}, outside the YAML's folder {root}. detft reads a "
                                  "dataset only from its own folder, so a downloaded file cannot pull in others: put "
                                  "the YAML in the folder that holds the images, or pass that folder")
            p = root / safe_relpath(str(e))  # a path from the author's machine: looked for under the dataset
        p = p.resolve()
        # a folder's last part alone (``images``) could be another split's folder: at least two parts must match
        if not p.exists() and (found := tail_under(base, str(e), min_parts=2)) is not None:
            report.add("fixed", "split_path_not_found", str(where), f"{split}: {e!r} does not exist; read {found}, "
                       "the end of that path under the dataset's folder")
            p = found
        if not p.exists() and (found := _split_folder(where.parent, split)) is not None:
            report.add("fixed", "split_path_not_found", str(where), f"{split}: {e!r} does not exist ({p}); read "
                       f"{found}, the {split} folder the dataset holds")
            p = found
        if p.is_dir():
            out += find_images(p)
        elif p.suffix == ".txt" and p.is_file():  # ultralytics reads ./x relative to the list; others as the root's
            bases = list(dict.fromkeys([p.parent, base, where.parent]))
            out += [q.resolve() for q in listed_images(p, read_list(p), bases, fallback, report)]
        else:
            raise FormatError(where, f"split path {e!r} is neither an image folder nor a .txt list ({p})")
    return out


def _named_split(entry: Any) -> str | None:
    """The split a split entry's own path names (``images/test``, ``../test/images``), if one does."""
    parts = Path(str(entry).replace("\\", "/")).parts if isinstance(entry, str) else ()
    return next((canonical_split(part) for part in reversed(parts) if canonical_split(part) in SPLITS), None)


def _base(path: str | None, yml: Path, report: Report) -> Path:
    """The folder split paths are relative to: ``path:`` of the YAML, or the YAML's folder when it has none or
    names a folder that is not here (``/home/alice/datasets/x``, ``C:\\data\\x``: the author's machine), said. A folder
    outside the YAML's own is an error: a dataset's files never make detft read elsewhere."""
    if not path:
        return yml.parent
    base = Path(path) if Path(path).is_absolute() else yml.parent / path
    if base.is_dir() and not lies_within(base, [yml.parent]):
        raise FormatError(yml, f"path: {path!r} is {base}, outside the YAML's folder {yml.parent}. detft reads a "
                          "dataset only from its own folder, so a downloaded file cannot pull in others: pass "
                          f"{base} itself, with the YAML in it")
    if base.is_dir():
        return base.resolve()
    report.add("fixed", "dataset_path_not_found", str(yml), f"path: {path!r} is not a folder here; split paths read "
               f"relative to {yml.parent}, the YAML's own folder")
    return yml.parent


def _split_folder(root: Path, split: str) -> Path | None:
    """The folder of ``split`` that ``root`` holds (``valid/``, ``validate/``, ``Validation/``...; its ``images/``
    when it has one): where a data.yaml written for another layout (Roboflow's ``../valid/images`` over a renamed
    ``validate/``) should have pointed. None unless exactly one fits."""
    try:
        folders = [d for d in sorted(root.iterdir()) if d.is_dir() and canonical_split(d.name) == split]
    except OSError:
        return None
    if len(folders) != 1:
        return None
    return folders[0] / "images" if (folders[0] / "images").is_dir() else folders[0]


def _unnamed_splits(yml: Path, cfg: dict, splits: dict[str, list[Path]], report: Report) -> dict[str, list[Path]]:
    """Split folders of the export that the YAML has no key for: Roboflow's own data.yaml sometimes leaves out
    ``test:`` while ``test/images`` and ``test/labels`` ship beside ``train/`` and ``valid/``. Read as the split their
    folder names, said, rather than left behind without a word. A folder with no label beside its images, or whose
    images a named split already lists, is no such split."""
    listed = {p.resolve() for paths in splits.values() for p in paths}
    found: dict[str, list[Path]] = {}
    for s in SPLITS:
        if s in cfg or s in splits or (folder := _split_folder(yml.parent, s)) is None:
            continue
        paths = [p.resolve() for p in find_images(folder)]
        if not paths or listed & set(paths) or not any(label_path(p).is_file() for p in paths):
            continue
        report.note(f"{yml} has no {s}: key, but {folder} beside the splits it names holds {len(paths)} labelled "
                    f"images: read as the {s} split")
        found[s] = paths
    return found


OBB_SAID = re.compile(rb"oriented object detection|\bobb\b", re.IGNORECASE)  # how an export's README names the format
README_HEAD = 65536  # bytes of a README looked at


def _note_corner_rows(images: list[ImageRecord], task: Any, root: Path, report: Report) -> None:
    """Rows of four corners (``class x1 y1 x2 y2 x3 y3 x4 y4``: YOLO-OBB's oriented boxes have exactly this length)
    read as 4-point polygons, the shape they are; said, so that a set of rotated boxes is not taken for instance
    masks, with what detft trains from them where the YAML (``task: obb``) or the export's README says they are
    oriented boxes."""
    shapes = [a for im in images for a in im.annotations]
    if not shapes or any(not a.polygons or len(a.polygons[0]) != 8 for a in shapes):
        return
    if task == "obb":
        report.note(f"{root}: the dataset YAML says task: obb: its {len(shapes)} oriented boxes (4 corners a row) are "
                    "read as 4-point polygons; detft has no oriented-box model and trains them as axis-aligned boxes "
                    "(the corners' hull), or as quadrilateral masks with --task segment")
        return
    said = None
    for readme in sorted(p for p in root.glob("README*") if p.is_file()):
        try:
            with open(readme, "rb") as f:
                head = f.read(README_HEAD)
        except OSError:  # a README is a hint: one that cannot be read says nothing
            continue
        if OBB_SAID.search(head):
            said = readme.name
            break
    report.note(f"{root}: all {len(shapes)} rows hold 4 corners (class x1 y1 x2 y2 x3 y3 x4 y4)"
                + (f", oriented boxes as {said} says (YOLO-OBB)" if said else "")
                + ": read as 4-point polygons, which train as boxes (the corners' hull) or, with --task segment, as "
                "quadrilateral masks")


def read(src: Path, report: Report, classes: list[str] | None = None, images_dir: Path | None = None) -> Dataset:
    yml = find_yaml(src)
    task = None  # what the dataset YAML says the rows are (ultralytics' task: detect, segment, obb)
    if yml is not None:
        cfg = load_yaml(yml) or {}
        if not isinstance(cfg, dict):
            raise FormatError(yml, f"a dataset YAML is a mapping (train:, val:, names:), not {type(cfg).__name__}")
        task = cfg.get("task")
        if "names" not in cfg:
            raise FormatError(yml, "no 'names' (class names) in the dataset YAML")
        names = _names(cfg["names"], yml)
        if cfg.get("path") and not isinstance(cfg["path"], str):
            raise FormatError(yml, f"'path' must be a folder, not {cfg['path']!r:.40}")
        base = _base(cfg.get("path"), yml, report)
        splits = {}
        fallback = Fallback(yml.parent)
        for s in SPLITS:
            if not cfg.get(s):
                continue
            paths = _split_images(base, cfg[s], yml, s, fallback, report)
            same = next((t for t, p in splits.items() if p == paths), None)
            if same:  # 'val: images/train' is a common idiom: one copy, not duplicates, under the folder's own split
                keep = s if _named_split(cfg[s]) == s else same
                report.add("warning", "split_reused", str(yml), f"{s!r} lists the same images as {same!r}; read once "
                           f"as {keep!r}" + (" (the split its folder names)" if keep != same else ""))
                if keep != same:
                    splits[keep] = splits.pop(same)
                continue
            splits[s] = paths
        splits.update(_unnamed_splits(yml, cfg, splits, report))
        root = yml.parent
    elif (obj_data := darknet_data(src)) is not None:
        names, splits = _read_darknet(obj_data, report)
        root = obj_data.parent
    elif flat_labels(src) and not (src / "images").is_dir():
        root, lists = src, _split_lists(src)
        names = classes or _names_file(src, report)
        splits = _flat_splits(src, lists, report)
    else:
        root = src
        names = classes or _names_file(src, report)
        splits = {s: find_images(src / "images" / s) for s in SPLITS if (src / "images" / s).is_dir()}
        if not splits and (src / "images").is_dir():
            splits = {"train": find_images(src / "images")}
        if not splits and not (src / "labels").is_dir():
            raise FormatError(src, "no data.yaml and no images/ folder: not a YOLO dataset")
    # (label file, image, split): ultralytics' label for each image of the dataset, then the labels whose images
    # lie under --images-dir
    pairs: list[tuple[Path | None, Path, str]] = [(None, p, split) for split, paths in splits.items() for p in paths]
    orphans = _orphan_labels([p for _, p, _ in pairs], root)
    if images_dir is not None:
        found, orphans = _images_elsewhere(orphans, root, images_dir, report)
        pairs += found
    _report_orphans(orphans, images_dir, report)
    images: list[ImageRecord] = []
    max_cls = -1
    for lbl, path, split in progress(pairs, "reading YOLO", unit="img"):
        im, top = _read_image(path, root, split, len(classes) if classes else 0, report, lbl)
        images.append(im)
        max_cls = max(max_cls, top)
    if not names:
        names = [f"class{k}" for k in range(max_cls + 1)]
        report.add("warning", "no_class_names", str(root), f"no data.yaml, classes.txt or *.names file; named classes "
                   f"{names}")
    elif max_cls >= len(names):
        names = _undeclared(names, max_cls, images, yml or root, report)
    kinds = Counter("polygon" if a.polygons else "box" for im in images for a in im.annotations)
    if len(kinds) == 2:  # each row read by its own length, not the whole file as polygons (ultralytics' rule)
        report.note(f"{root}: {kinds['box']} box rows and {kinds['polygon']} polygon rows, both read; the dataset "
                    "trains as boxes where an object has no polygon")
    _note_corner_rows(images, task, root, report)
    return Dataset(images, [Category(k, n) for k, n in enumerate(names)], root=root, format=NAME)


def _undeclared(names: list[str], max_cls: int, images: list[ImageRecord], where: Path, report: Report) -> list[str]:
    """Class indices past the declared names (a names list cut short, a class added after the export) are kept
    under a generated name, each reported with its count: dropping them would lose objects, and folding them into
    a declared class would mislabel them."""
    used = Counter(a.category_id for im in images for a in im.annotations if a.category_id >= len(names))
    extended = list(names)
    for k in range(len(names), max_cls + 1):
        name = f"class{k}" if f"class{k}" not in extended else f"class{k}_undeclared"
        extended.append(name)
        if used[k]:
            report.add("fixed", "undeclared_class", str(where), f"class index {k} is used by {used[k]} object(s) but "
                       f"only {len(names)} names are declared: kept as {name!r} (name it in the names list, or "
                       f"--map {name}=NAME)")
    return extended


def _flat_splits(src: Path, lists: dict[str, Path], report: Report) -> dict[str, list[Path]]:
    """The images of a flat folder by split: as the split lists name them (by file name: the lists hold paths
    from the labelling machine), the rest ``train``."""
    images = [p for p in sorted(src.iterdir()) if is_image_name(p.name) and p.is_file()]
    present = {p.name for p in images}
    split_of = {}
    for split, f in lists.items():
        entries = [line.replace("\\", "/").rsplit("/", 1)[-1] for line in read_list(f)]
        for name in entries:
            split_of.setdefault(name, split)
        missing = [n for n in entries if n not in present]
        report.note(f"{f}: {len(entries)} entries, {len(entries) - len(missing)} matched an image"
                    + (f", {len(missing)} did not (named below)" if missing else ""))
        for name in missing:
            report.add("dropped", "missing_image", str(f), f"{name!r} is listed but no image of that name is in {src}")
    if lists:
        report.note(f"{src}: {', '.join(f.name for f in lists.values())} are split lists, not labels")
    splits: dict[str, list[Path]] = {}
    for p in images:
        splits.setdefault(split_of.get(p.name, "train"), []).append(p)
    return splits


def _orphan_labels(image_paths: list[Path], root: Path) -> list[Path]:
    """Label files that no image refers to, in the label folders this dataset uses and in its conventional ones
    (``labels/``, ``labels/<split>/``: where an export without its images, such as Label Studio's YOLO export, keeps
    every label while ``images/`` is empty)."""
    used = {label_path(p) for p in image_paths}
    folders = {lbl.parent for lbl in used} | {d for d in (root / "labels", *(root / "labels" / s for s in SPLITS))
                                              if d.is_dir()}
    orphans = []
    for folder in sorted(folders):
        lists = set(_split_lists(folder).values())
        orphans += sorted(p for p in set(folder.glob("*.txt")) - used - lists if p.name != "classes.txt")
    return orphans


def _images_elsewhere(labels: list[Path], root: Path, images_dir: Path,
                      report: Report) -> tuple[list[tuple[Path, Path, str]], list[Path]]:
    """Each label file's image under ``images_dir`` at any depth, by the label's own name (URL-decoded and without
    Label Studio's upload prefix where the export kept them), with its split: the label folder's, else the image
    folder's, else train. Returns the pairs found and the labels still without an image."""
    fallback = Fallback(None, images_dir)
    found, left = [], []
    for lbl in labels:
        image = fallback.find(lbl, "", own_stem=True)
        if image is None:
            left.append(lbl)
            continue
        found.append((lbl, image, split_of_path(lbl, root) or split_of_path(image, images_dir) or "train"))
    fallback.note([ImageRecord(lbl.name, 0, 0, path=image) for lbl, image, _ in found], report, "label files")
    return found, left


def _report_orphans(labels: list[Path], images_dir: Path | None, report: Report) -> None:
    """Label files with objects and no image: their objects are lost, each file reported with its count."""
    hint = (f"no image of this name here or under {images_dir}" if images_dir else
            "no image of this name (an export without its images, such as Label Studio's YOLO export? --images-dir "
            "FOLDER finds them at any depth)")
    for lbl in labels:
        n = sum(1 for ln in read_text(lbl).splitlines() if ln.strip())
        if n:
            report.add("dropped", "orphan_label", str(lbl), hint, n)
            report.holds(lbl, shapes=n)


def _read_image(path: Path, root: Path, split: str, nc: int, report: Report,
                label: Path | None = None) -> tuple[ImageRecord, int]:
    """One image and its objects, from its label file (ultralytics' rule, unless ``label`` names another)."""
    info = probe(path)
    try:
        name = path.relative_to(root / "images" / split).as_posix()
    except ValueError:
        name = path.name
    im = ImageRecord(name, info.width, info.height, path=path if path.exists() else None, split=split,
                     source=SourceRef(str(path)))
    lbl = label or label_path(path)
    top = -1
    if not lbl.is_file():
        return im, top
    lines = read_text(lbl).splitlines()
    im.origin = str(lbl)
    report.holds(lbl, shapes=sum(1 for ln in lines if ln.strip()))
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = SourceRef(str(lbl), line=lineno)
        tok = line.split()
        vals = finite(tok[1:])
        vals = _snap(vals) if vals is not None else None
        if not (tok[0].isascii() and tok[0].isdigit() and len(tok[0]) < 10) or vals is None or not (len(vals) == 4 or (len(vals) >= 6 and len(vals) % 2 == 0)):
            report.add("dropped", "bad_line", str(where),
                       "expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...'", 1)
            continue
        k = int(tok[0])
        top = max(top, k)
        if nc and k >= nc:
            report.add("dropped", "unknown_class", str(where), f"class index {k} but only {nc} names", 1)
            continue
        w, h = info.width, info.height
        if len(vals) == 4:
            cx, cy, bw, bh = vals
            x0, y0, x1, y1 = _snap([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
            ann = Annotation(k, (x0 * w, y0 * h, x1 * w, y1 * h), source=where)
        else:
            poly = [v * (w if i % 2 == 0 else h) for i, v in enumerate(vals)]
            ann = Annotation(k, polygons_bbox([poly]), polygons=[poly], source=where)
        im.annotations.append(ann)
    return im, top


BORDER_EPS = 1e-5  # a normalised coordinate this close outside [0, 1] is the border, written with rounding


def _snap(values: list[float]) -> list[float]:
    """Coordinates of a box that touches the border by rounding (-3e-7, 1.0000004) put on it, so clean
    data is not reported as clipped. Box edges (cx -+ w/2) are snapped where they are computed."""
    return [0.0 if -BORDER_EPS < v < 0 else 1.0 if 1 < v < 1 + BORDER_EPS else v for v in values]


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.{DECIMALS}f}" for v in values)


CHAIN_MIN_IOU = 0.97  # below this the joined polygon's even-odd holes (overlapping parts) cost too much


def _chain_iou(chain: list[float], polygons: list[list[float]], h: int, w: int) -> float:
    """IoU of the joined single polygon, rasterised as YOLO-seg reads it back, with the source parts' union."""
    a, b = polygons_to_mask([chain], h, w).astype(bool), polygons_to_mask(polygons, h, w).astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _label_line(ann: Annotation, cls: int, w: int, h: int, segment: bool, report: Report) -> str | None:
    if ann.iscrowd:
        report.add("dropped", "crowd_in_yolo", ann.where(), "YOLO has no crowd regions", 1)
        return None
    if not segment:
        x0, y0, x1, y1 = ann.bbox
        return f"{cls} " + _fmt([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
    if ann.polygons:
        # parts joined through their closest vertices, as ultralytics' merge_multi_segment does; parts that
        # overlap so much that the joined polygon's even-odd holes lose area are traced from their union
        poly = merge_polygons(ann.polygons)
        if len(ann.polygons) > 1 and (iou := _chain_iou(poly, ann.polygons, h, w)) < CHAIN_MIN_IOU:
            poly = merge_polygons(mask_to_polygons(polygons_to_mask(ann.polygons, h, w)))
            report.add("converted", "overlapping_parts_traced", ann.where(),
                       f"overlapping polygon parts written as their traced union (joined IoU would be {iou:.2f})")
    elif ann.rle is not None:
        parts = mask_to_polygons(decode_mask(ann.rle))
        if not parts:
            report.add("dropped", "empty_mask", ann.where(), "RLE mask has no pixels", 1)
            return None
        poly = merge_polygons(parts)
        report.add("converted", "rle_to_polygon", ann.where(), "YOLO-seg stores polygons; mask traced")
    else:
        x0, y0, x1, y1 = ann.bbox
        poly = [x0, y0, x1, y0, x1, y1, x0, y1]
        report.add("converted", "box_to_polygon", ann.where(), "segment dataset: box written as a rectangle")
    return f"{cls} " + _fmt([v / (w if i % 2 == 0 else h) for i, v in enumerate(poly)])


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink",
          task: str | None = None) -> list[Path]:
    """Write images/, labels/ and data.yaml. ``task`` is 'detect' or 'segment' (default: segment
    when any annotation has a mask)."""
    segment = (task or ("segment" if dataset.has_masks() else "detect")) == "segment"
    cls_map = dataset.yolo_class_ids()
    placer = ImagePlacer(out, image_mode, report, per_image_files=True)
    splits = dataset.splits()
    folders = {s: safe_component(s, "split name") for s in splits}
    for split, folder in folders.items():
        for im in progress(dataset.images_in(split), f"writing YOLO {split}", unit="img"):
            rel = placer.place(im, f"images/{folder}")
            lines = [_label_line(a, cls_map[a.category_id], im.width, im.height, segment, report)
                     for a in im.annotations]
            # parts already made safe (split, file name); the atomic writer's final walk checks the tree
            label = out / "labels" / folder / Path(rel).with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(ln + "\n" for ln in lines if ln is not None), encoding="utf-8")
    cfg: dict[str, Any] = {s: f"images/{folder}" for s, folder in folders.items()}
    if "val" not in cfg:
        cfg["val"] = cfg.get("train", cfg[splits[0]]) if splits else "images/train"
        report.add("warning", "no_val_split", "data.yaml",
                   f"no val split; val points at {cfg['val']} (use --split to make one)")
    cfg["names"] = {cls_map[c.id]: c.name for c in dataset.sorted_categories()}
    cfg["nc"] = len(cfg["names"])
    cfg["task"] = "segment" if segment else "detect"
    path = out / "data.yaml"
    atomic_write_text(path, "# written by detft; paths are relative to this file\n"
                      + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return [path]

