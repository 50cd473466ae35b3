"""Pairing annotation files with their images wherever a dataset's publisher put them.

Published datasets name their folders as they like (``IMAGES/`` + ``ANNOTATIONS/``, ``train/images`` +
``train/annots``, ``Validation_Images/``) and their files' own image references go stale (a VOC ``<filename>``
keeping the camera's name after the files were renamed ``00001.jpg``, a name without its extension). The rule is
Roboflow's uploader's: the name inside the annotation file is a hint, tried first, and otherwise the image
whose stem is the annotation file's own stem, the one nearest to it in the folder tree. Every pairing says which
rule made it, so ``inspect`` can show how a dataset was understood."""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from ..annotations.dataset import ImageRecord, SourceRef
from ..annotations.images import LITTER_FOLDERS, is_image_name
from ..annotations.report import Report
from ..errors import DetftError
from ..util.output import safe_relpath
from .base import SPLIT_ALIASES, lies_within, may_climb

MAX_FILES = 1_000_000  # files under one dataset root: past this, a wrong root (a home folder, /) is far likelier
RULES = {"named": "by the name in the file", "named stem": "by the name in the file, another extension",
         "own stem": "by the annotation file's own name",
         "decoded": "by the name in the file URL-decoded or without Label Studio's upload prefix"}
_TOKEN = re.compile(r"[^0-9a-z]+")
UPLOAD = re.compile(r"^[0-9a-f]{8}-(.+)$")  # Label Studio names an upload /data/upload/<project>/<8 hex>-<name>


def url_file_name(ref: str) -> str | None:
    """The file name a URL names (``/data/local-files/?d=images/a%20b.jpg``, ``https://host/x/a.jpg``,
    ``/data/upload/3/0a1b2c3d-a.jpg``: how Label Studio's COCO export names images it did not download), decoded;
    None for a plain path."""
    if "?d=" in ref:
        return PurePosixPath(unquote(ref.split("?d=", 1)[1])).name or None
    if "://" in ref:
        return PurePosixPath(unquote(ref.split("://", 1)[1].split("?", 1)[0])).name or None
    if ref.startswith("/data/upload/"):  # an upload: the file the user uploaded, without the server's prefix
        name = PurePosixPath(unquote(ref)).name
        return m.group(1) if (m := UPLOAD.match(name)) else name
    return None


def name_variants(name: str) -> Iterator[str]:
    """The names an image reference may stand for beyond itself, as exports from a labelling server write them:
    URL-encoded (``a%20b.jpg``, a Label Studio URL's tail) and with Label Studio's upload prefix (``0a1b2c3d-a.jpg``,
    the file the user uploaded as ``a.jpg``). Tried only after the name as written found nothing."""
    seen = {name}
    for variant in (unquote(name), *(m.group(1) for m in [UPLOAD.match(unquote(name))] if m)):
        if variant not in seen:
            seen.add(variant)
            yield variant


def tree_distance(a: Path, b: Path) -> int:
    """Folder steps from ``a`` to ``b`` (siblings: 2)."""
    pa, pb = a.parts, b.parts
    common = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        common += 1
    return len(pa) + len(pb) - 2 * common


def split_of_path(path: Path, root: Path) -> str | None:
    """The split the folders between ``root`` and ``path`` name (``train/``, ``Validation_Images/``,
    ``valid/annots/``): the innermost folder with a split word among its words."""
    try:
        folders = path.parent.relative_to(root).parts
    except ValueError:
        return None
    for folder in reversed(folders):
        for word in _TOKEN.split(folder.lower()):
            if word in SPLIT_ALIASES:
                return SPLIT_ALIASES[word]
    return None


class ImageIndex:
    """Every image file under ``root`` (links followed only to files inside it, unless ``follow_links``: a folder the
    user named as where the images are, such as a detft output's ``images/`` of links; hidden folders skipped), by
    stem and by name, and which of them a reader paired."""

    def __init__(self, root: Path, max_files: int = MAX_FILES, follow_links: bool = False):
        self.root = root
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        self.by_stem: dict[str, list[Path]] = defaultdict(list)
        self.paired: set[Path] = set()
        self.rules: Counter[str] = Counter()
        self.unreadable: list[OSError] = []
        real_root, seen = os.path.realpath(root), 0
        # never into linked folders: no loops, nothing outside root; a folder it may not list is said, not fatal
        for folder, dirs, files in os.walk(root, onerror=self.unreadable.append):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in LITTER_FOLDERS)
            seen += len(files)
            if seen > max_files:
                raise DetftError(f"{root} holds more than {max_files:,} files: is it the dataset's own folder? "
                                 "Point detft at the folder that holds the images and annotations")
            for name in files:
                if not is_image_name(name):
                    continue
                path = Path(folder) / name
                outside = path.is_symlink() and not os.path.realpath(path).startswith(real_root + os.sep)
                if outside and not follow_links:
                    continue
                self.by_name[name].append(path)
                self.by_stem[PurePosixPath(name).stem].append(path)

    def find(self, annotation: Path, hint: str | None, own_stem: bool = True) -> tuple[Path | None, str | None]:
        """The image ``annotation`` describes and the rule that paired it (a key of :data:`RULES`); ``own_stem``
        False for files that describe many images (a CSV), whose own name names none of them."""
        base = (hint or "").replace("\\", "/").rsplit("/", 1)[-1]
        stem = annotation.stem
        for rule, pool in (("named", self.by_name.get(base)), ("named stem", self.by_stem.get(PurePosixPath(base).stem)),
                           ("own stem", self.by_stem.get(stem) if own_stem else None),
                           ("decoded", self._decoded(base, stem if own_stem else ""))):
            if base or rule in ("own stem", "decoded"):
                if pool:
                    image = min(pool, key=lambda p: (tree_distance(annotation.parent, p.parent), str(p)))
                    self.paired.add(image)
                    self.rules[rule] += 1
                    return image, rule
        return None, None

    def _decoded(self, name: str, stem: str) -> list[Path] | None:
        """The images a URL-encoded or upload-prefixed name (or annotation file stem) stands for."""
        for variant in name_variants(name) if name else ():
            if pool := self.by_name.get(variant) or self.by_stem.get(PurePosixPath(variant).stem):
                return pool
        for variant in name_variants(stem) if stem else ():
            if pool := self.by_stem.get(variant):
                return pool
        return None

    def claim(self, image: Path) -> None:
        """Record an image that a reader found where its format puts images (VOC's ``JPEGImages/<filename>``):
        paired by the name in the file."""
        self.paired.add(image)
        self.rules["named"] += 1

    def negatives(self) -> list[Path]:
        """Images nobody paired that lie in a folder where others were paired: the unlabelled images of a
        labelled folder, which are negative examples (images in unrelated folders are left alone)."""
        folders = {p.parent for p in self.paired}
        return sorted(p for paths in self.by_name.values() for p in paths if p not in self.paired and p.parent in folders)

    def summary(self, described: int, unpaired: int, what: str = "annotation files", negatives: int | None = None) -> str:
        """One line: how many images each rule paired, the negatives kept, and how many of the ``described``
        (annotation files, a CSV's image names) found no image."""
        rules = ", ".join(f"{self.rules[r]} {text}" for r, text in RULES.items() if self.rules[r])
        kept = f"{negatives} negatives (images without an annotation file), " if negatives is not None else ""
        skipped = (f"; {len(self.unreadable)} folder(s) could not be listed and were skipped (e.g. "
                   f"{self.unreadable[0].filename}: {self.unreadable[0].strerror})") if self.unreadable else ""
        return (f"pairing under {self.root}: {sum(self.rules.values())} images paired ({rules or 'none'}), "
                f"{kept}{unpaired} of {described} {what} without an image{skipped}")


class Fallback:
    """The image index behind readers whose files name their images (COCO, CVAT, VIA, Label Studio): built the
    first time an image is not where the format puts it, then the name the file gives is looked up anywhere under
    ``images_dir`` (the user's ``--images-dir``: an export without its images, such as Label Studio's COCO and YOLO
    exports, beside the folder, split subfolders and all, that holds them), then anywhere under ``root``, nearest
    first (images in another folder of the root, a stale path, an absolute path from the author's machine).
    ``root`` None (a file given alone) looks nowhere but ``images_dir``."""

    def __init__(self, root: Path | None, images_dir: Path | None = None):
        self.roots = list(dict.fromkeys(r for r in (images_dir, root) if r is not None))
        self.images_dir = images_dir
        self.indexes: dict[Path, ImageIndex] = {}

    def find(self, annotation: Path, name: str, own_stem: bool = False) -> Path | None:
        """The image ``name`` (or, with ``own_stem``, the annotation file's own name) stands for."""
        for root in self.roots:
            if root not in self.indexes:
                self.indexes[root] = ImageIndex(root, follow_links=root == self.images_dir)
            found = self.indexes[root].find(annotation, name, own_stem=own_stem)[0]
            if found is not None:
                return found
        return None

    def note(self, images: list[ImageRecord], report: Report, what: str) -> None:
        """The pairing line of each index that was needed: how many images each rule found, and how many none."""
        unpaired = sum(im.path is None for im in images)
        for index in self.indexes.values():
            report.note(index.summary(len(images), unpaired, what=what))


def complete(index: ImageIndex | None, images: list[ImageRecord], report: Report) -> list[ImageRecord]:
    """A per-image reader's records made whole: an image that several annotation files describe (one XML per
    class group) becomes one record with every object, and the labelled folders' unannotated images join as
    negatives; the pairing summary is noted."""
    if index is None:
        return images
    by_path: dict[Path, ImageRecord] = {}
    joined, out = 0, []
    for im in images:
        first = by_path.get(im.path) if im.path is not None else None
        if first is None:
            if im.path is not None:
                by_path[im.path] = im
            out.append(im)
            continue
        first.annotations += im.annotations
        joined += 1
    if joined:
        report.note(f"{joined} annotation file(s) describe an image another file already does: their objects are "
                    "joined into one image (one file per class group, as some datasets ship)")
    negatives = index.negatives()
    for path in negatives:
        out.append(ImageRecord(path.name, 0, 0, path=path, split=split_of_path(path, index.root),
                               source=SourceRef(str(path))))
    report.note(index.summary(len(images), sum(im.path is None and im.data is None for im in images),
                              negatives=len(negatives)))
    return out


def tail_under(root: Path, written: str, min_parts: int = 1) -> Path | None:
    """The longest end of a path written on another machine that exists under ``root``
    (``/home/alice/data/images/train/x.jpg`` -> ``root/images/train/x.jpg``), keeping at least ``min_parts`` of its
    parts: more exact than a file name alone where two splits hold files of one name."""
    parts = [p for p in written.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    for i in range(len(parts) - min(min_parts, len(parts)) + 1):
        candidate = root.joinpath(*parts[i:])
        if candidate.exists():
            return candidate
    return None


def listed_images(listing: Path, entries: list[str], bases: list[Path], fallback: Fallback,
                  report: Report) -> list[Path]:
    """The images a split list names (YOLO/darknet ``train.txt``): each entry where it says, relative to the first
    of ``bases`` that holds it, else by its file name anywhere under the root, nearest the list first (a prefix from
    the labelling machine: ``data/obj_train_data/x.jpg``, ``aerial/x.jpg``, ``/home/me/x.jpg``, ``C:\\x.jpg``).
    The end of the written path found under a base comes before the bare name. An entry that names no image is
    returned as written so the check reports it missing with its objects; the list says how many matched and how."""
    out: list[Path] = []
    where = moved = outside = 0
    for entry in entries:
        written = Path(entry.replace("\\", "/"))
        tries = [written] if written.is_absolute() else [base / written for base in bases]
        kept = [p for p in tries if not may_climb(entry) or lies_within(p, bases)]  # never opened outside the dataset
        outside += len(kept) < len(tries)
        found = next((p for p in kept if p.is_file()), None)
        if found is not None:
            where += 1
        elif (found := next(filter(None, (tail_under(base, entry) for base in bases)), None)
              or fallback.find(listing, entry)) is not None:
            moved += 1
        out.append(found if found is not None else kept[0] if kept else bases[0] / safe_relpath(entry))
    missing = len(entries) - where - moved
    report.note(f"{listing}: {len(entries)} entries, {where + moved} matched an image"
                + (f" ({moved} not where the entry says but by the end of its path or its file name)" if moved else "")
                + (f", {missing} did not (reported as missing images)" if missing else ""))
    if outside:
        report.add("warning", "image_path_outside_dataset", str(listing),
                   f"{outside} entries point outside the dataset's folders: not opened there; looked up under the "
                   "dataset by the end of their path or their file name")
    return out
