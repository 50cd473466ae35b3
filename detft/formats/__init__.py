"""Format registry: name -> reader/writer, auto-detection of which format a path holds, and the
split-folder layout exporters wrap every format in (``train/``, ``valid/``, ``test/``: Roboflow, the
Matterport/Detectron2 VIA "balloon" layout)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..annotations.dataset import Category, Dataset, ImageRecord
from ..annotations.report import Report
from ..errors import DetftError
from . import (coco, createml, csv, cvat, kitti, labelme, labelstudio, labelstudio_serving, masks, object_masks, text,
               via, voc, yolo)
from .base import canonical_split, objects_kept, reading_under, same_images

READERS: dict[str, Callable[..., Dataset]] = {
    "coco": coco.read, "yolo": yolo.read, "voc": voc.read, "labelme": labelme.read,
    "cvat": cvat.read, "via": via.read, "csv": csv.read, "masks": masks.read, object_masks.NAME: object_masks.read,
    text.NAME: text.read, labelstudio.NAME: labelstudio.read, kitti.NAME: kitti.read, createml.NAME: createml.read,
}
WRITERS: dict[str, Callable[..., list[Path]]] = {
    "coco": coco.write, "yolo": yolo.write, "voc": voc.write, "labelme": labelme.write, "cvat": cvat.write,
    "via": via.write, labelstudio.NAME: labelstudio.write, kitti.NAME: kitti.write, createml.NAME: createml.write}


def write_dataset(fmt: str, dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink",
                  task: str | None = None, model_version: str | None = None,
                  serving: labelstudio_serving.Serving | None = None) -> list[Path]:
    """``dataset`` written in ``fmt`` (one of :data:`WRITERS`, checked by the caller before it reads anything)
    under ``out``; ``task`` (detect/segment) is the YOLO writer's alone, ``model_version`` (the model whose
    predictions these are: pre-labels) and ``serving`` (where the server finds the images of the output ``out``
    becomes: :func:`.labelstudio_serving.serving_for`) Label Studio's."""
    kwargs: dict[str, Any] = {"task": task} if fmt == "yolo" else {}
    if fmt == labelstudio.NAME:
        kwargs.update(model_version=model_version, serving=serving)
    return WRITERS[fmt](dataset, out, report, image_mode=image_mode, **kwargs)


def _sniff(path: Path, size: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def _file_format(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yolo"
    if suffix == ".csv":
        return "csv"
    head = _sniff(path)
    if suffix == ".xml":
        if b"<annotations" in head:
            return "cvat"
        if b"<annotation" in head:
            return "voc"
    if suffix == ".json":
        if labelstudio.sniff(head):
            return labelstudio.NAME
        if createml.sniff(head):
            return createml.NAME
        if b'"shapes"' in head and (b'"imagePath"' in head or _holds(path, b'"imagePath"')):
            return "labelme"
        if b"_via_img_metadata" in head or (b'"regions"' in head and b'"filename"' in head):
            return "via"
        if b'"images"' in head or b'"annotations"' in head:
            return "coco"
    return None


def _holds(path: Path, needle: bytes) -> bool:
    """Whether ``needle`` occurs anywhere in ``path``: LabelMe writes ``imagePath`` after the shapes,
    past the sniffed head when there are many polygons."""
    with open(path, "rb") as f:
        tail = b""
        while chunk := f.read(1 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False


def _folder_candidates(src: Path) -> list[str]:
    found = []
    if (yolo.find_yaml(src) or ((src / "images").is_dir() and _holds_files(src / "labels", "*.txt"))
            or yolo.darknet_data(src) is not None or yolo.flat_labels(src)):
        found.append("yolo")
    if (src / "Annotations").is_dir() or _in_subfolder(src, voc.is_voc, "*.xml"):
        found.append("voc")
    if (src / "annotations.xml").is_file():
        found.append("cvat")
    if (src / "annotations").is_dir() and coco.annotation_files(src):
        found.append("coco")
    if kitti.is_kitti(src):
        found.append(kitti.NAME)
    if (src / "masks").is_dir() and (src / "classes.json").is_file():
        found.append("masks")
    elif object_masks.is_object_masks(src):
        found.append(object_masks.NAME)
    top = {p: _file_format(p) for p in sorted(src.iterdir()) if p.is_file() and p.suffix.lower() in (".json", ".csv", ".xml")}
    for fmt in ("labelme", "via", "coco", "csv", "cvat", "voc", labelstudio.NAME, createml.NAME):
        if fmt in top.values() and fmt not in found and not (fmt == "voc" and "cvat" in found):
            found.append(fmt)
    if not found and _in_subfolder(src, lambda f: _file_format(f) == "labelme", "*.json"):
        found.append("labelme")
    return found


def _holds_files(folder: Path, pattern: str) -> bool:
    return folder.is_dir() and next(folder.rglob(pattern), None) is not None


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _in_subfolder(src: Path, is_format: Callable[[Path], bool], pattern: str, sniff: int = 3) -> bool:
    """Files of a per-image format one or two levels under ``src``, whatever the folders are called
    (``ANNOTATIONS/``, ``annots/``, ``Train_XML/``, ``labels/<group>/``, ``train/annots/``): judged by the first
    files' content."""
    for folder in _subfolders(src):
        for inner in (folder, *_subfolders(folder)):
            files = sorted(inner.glob(pattern))[:sniff]
            if files and all(is_format(f) for f in files):
                return True
    return False


def _datasets_below(src: Path) -> list[tuple[Path, str]]:
    """Folders just under ``src`` that hold a dataset (a download unpacked into ``DIR/balloon/{train,val}``)."""
    found = []
    for child in _subfolders(src):
        formats = _folder_candidates(child) or sorted({f for p in split_folders(child).values()
                                                       for f in _folder_candidates(p)})
        if len(formats) == 1:
            found.append((child, formats[0]))
    return found


def split_folders(src: Path) -> dict[str, Path]:
    """``train/``, ``valid/``, ``Validation/``, ``test/``... under ``src``, by the split each names."""
    if not src.is_dir():
        return {}
    found: dict[str, Path] = {}
    for p in sorted(src.iterdir()):
        split = canonical_split(p.name)
        if p.is_dir() and split in ("train", "val", "test") and split not in found:
            found[split] = p
    return found


class OneFolderDown(DetftError):
    """``src`` holds no dataset itself but exactly one folder in it does (a download unpacked into
    ``repo/balloon/``): :func:`read_dataset` reads that one, with a note."""

    def __init__(self, src: Path, folder: Path, fmt: str):
        super().__init__(f"{src} holds no dataset itself, but {folder} ({fmt}) does")
        self.folder, self.fmt = folder, fmt


def _count_images(folder: Path) -> int:
    from ..annotations.images import find_images

    return len(find_images(folder))


def detect(src: Path) -> str:
    """The format ``src`` holds (in itself, or in each of its split folders); a clear error when none or
    several fit."""
    if not src.exists():
        raise DetftError(f"{src} does not exist")
    if src.is_file():
        fmt = _file_format(src)
        if fmt is None:
            raise DetftError(f"cannot tell the annotation format of {src}; name it with --from ({', '.join(READERS)})")
        return fmt
    found = _folder_candidates(src)
    if not found and (folders := split_folders(src)):
        per_split = {s: _folder_candidates(p) for s, p in folders.items()}
        found = sorted({f for fs in per_split.values() for f in fs})
        if len(found) == 1 and not all(per_split.values()):
            empty = [str(folders[s]) for s, fs in per_split.items() if not fs]
            raise DetftError(f"{src}: split folder(s) {', '.join(empty)} hold no {found[0]} annotations")
    if not found:
        below = _datasets_below(src)
        if len(below) == 1:
            raise OneFolderDown(src, *below[0])
        if below:
            raise DetftError(f"{src} holds no dataset itself, but several folders in it do: "
                             + "; ".join(f"{p} ({f}, {_count_images(p)} images)" for p, f in below)
                             + ". Pass the one to read, or merge them: detft merge A B OUT")
        raise DetftError(f"no known annotation format found in {src}; name it with --from ({', '.join(READERS)})")
    if len(found) > 1:
        raise Ambiguous(src, found)
    return found[0]


class Ambiguous(DetftError):
    """``src`` holds annotations in several formats: :func:`read_dataset` reads each and keeps the best."""

    def __init__(self, src: Path, formats: list[str]):
        super().__init__(f"{src} is ambiguous: it looks like {' and '.join(formats)}; choose one with --from")
        self.formats = formats


def _choose(src: Path, formats: list[str], report: Report, options: dict[str, Any]) -> Dataset:
    """Several annotation sets over one root (a CVAT XML beside a YOLO export of the same images, two exports):
    each is read, and the one that keeps the most objects with their images wins, said with every count. Sets that
    describe different images are an error naming each: choosing would drop one of them."""
    read: dict[str, tuple[Dataset, Report]] = {}
    failed: dict[str, str] = {}
    for fmt in formats:
        trial = Report()
        try:
            read[fmt] = (read_dataset(src, fmt, trial, **options), trial)
        except DetftError as e:
            failed[fmt] = str(e).splitlines()[0]
    if not read:
        raise DetftError(f"{src} looks like {' and '.join(formats)}, and none reads: "
                         + "; ".join(f"{f}: {e}" for f, e in failed.items()))
    kept = {f: objects_kept(ds.images) for f, (ds, _) in read.items()}
    stems = {f: {Path(im.file_name).stem for im in ds.images} for f, (ds, _) in read.items()}
    best = max(kept, key=lambda f: (kept[f], -formats.index(f)))
    counts = ", ".join(f"{f}: {kept[f]} objects on {len(stems[f])} images" for f in read)
    for other in read:
        if other != best and kept[other] and not same_images(stems[other], stems[best]):
            raise DetftError(f"{src} holds annotations in {best} and {other} of different images ({counts}): choose "
                             "one with --from, or put each in its own folder and detft merge them")
    report.extend(read[best][1])
    report.note(f"{src} holds {' and '.join(formats)} annotations of the same images: read {best}, which keeps the most "
                f"objects with their images ({counts}"
                + "".join(f"; {f} did not read: {e}" for f, e in failed.items()) + "); --from chooses another")
    return read[best][0]


# reader keyword -> the CLI flag that sets it, for errors
OPTION_FLAGS = {"classes": "--classes", "images_dir": "--images-dir", "class_attr": "--via-class-attr",
                "default_class": "--via-default-class", "columns": "--csv-columns", "class_name": "--class-name",
                "fields": "--fields", "coords": "--coords"}


def read_dataset(src: Path, fmt: str | None, report: Report, **options: Any) -> Dataset:
    """Read ``src`` with the named (or detected) reader. An option the reader cannot use is an error, not
    silently ignored: ``--classes`` on a format whose file names its classes would otherwise do nothing."""
    if fmt is None:
        try:
            fmt = detect(src)
        except OneFolderDown as down:
            report.note(f"{src} holds no dataset itself: read {down.folder} ({down.fmt}), the one folder in it that "
                        "holds one")
            src, fmt = down.folder, down.fmt
        except Ambiguous as several:
            return _choose(src, several.formats, report, options)
    if fmt not in READERS:
        from .adapters import adapter, installed, read_with

        custom = adapter(fmt)
        if custom is None:
            raise DetftError(f"unknown format {fmt!r}; known: {', '.join([*READERS, *installed()])}, or an adapter "
                             "file my_adapter.py")
        if given := {OPTION_FLAGS.get(k, k) for k, v in options.items() if v is not None}:
            raise DetftError(f"{' and '.join(sorted(given))} cannot be used with adapter {fmt}: it reads its data itself")
        return read_with(custom, fmt, src, report)
    reader = READERS[fmt]
    accepted = inspect.signature(reader).parameters
    given = {k: v for k, v in options.items() if v is not None}
    unusable = [OPTION_FLAGS.get(k, k) for k in given if k not in accepted]
    if unusable:
        takes = [OPTION_FLAGS.get(k, k) for k in accepted if k not in ("src", "report")]
        raise DetftError(f"{' and '.join(unusable)} cannot be used with the {fmt} reader"
                         f" (it takes {', '.join(takes) if takes else 'no options'})")
    folders = split_folders(src)  # only when the folder itself holds no format (Roboflow's data.yaml beside train/)
    if not folders or _folder_candidates(src):
        dataset = reader(src, report, **given)
    else:
        dataset = _read_split_folders(src, folders, fmt, reader, report, given)
    _note_unused_classes(dataset, report)
    return dataset


def _note_unused_classes(dataset: Dataset, report: Report) -> None:
    """A class the files declare but no object uses is kept (a class with no examples yet, a fixed --classes list)
    and said once for the whole dataset: a split folder without it is no news, a class of 0 boxes in training is."""
    used = {a.category_id for im in dataset.images for a in im.annotations}
    if unused := [c.name for c in dataset.sorted_categories() if c.id not in used]:
        report.note(f"classes declared but never used: {', '.join(unused)} (kept, with no objects)")


def _read_split_folders(src: Path, folders: dict[str, Path], fmt: str, reader: Callable[..., Dataset],
                        report: Report, options: dict[str, Any]) -> Dataset:
    """One dataset from ``train/``, ``valid/``, ``test/`` exports, each split named by its folder and
    classes joined by name (each folder's file numbers its own)."""
    images: list[ImageRecord] = []
    categories: dict[str, Category] = {}
    for split, folder in folders.items():
        with reading_under(src):
            part = reader(folder, report, **options)
        names = {c.id: c for c in part.categories}
        for c in part.sorted_categories():
            if c.name not in categories:
                taken = {k.id for k in categories.values()}
                categories[c.name] = Category(c.id if c.id not in taken else max(taken) + 1, c.name, c.supercategory)
        for im in part.images:
            im.split = split
            for a in im.annotations:
                a.category_id = categories[names[a.category_id].name].id
        images += part.images
    report.note(f"{src}: split folders {', '.join(f'{f.name}/ -> {s}' for s, f in folders.items())}")
    return Dataset(images, sorted(categories.values(), key=lambda c: c.id), root=src, format=fmt)
