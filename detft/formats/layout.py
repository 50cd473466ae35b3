"""Placing images into an output dataset under names that cannot escape it or collide."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

import cv2

from ..annotations.dataset import ImageRecord
from ..errors import DetftError
from ..annotations.images import read_rgb
from ..util.output import atomic_write_bytes, inside, place_image, safe_relpath
from ..annotations.report import Report


MAX_NAME_BYTES = 200  # a placed image's name; annotation files beside it and collision suffixes stay under 255
_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes of a file name that were not UTF-8 (os.fsdecode's escapes)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def writable_name(part: str) -> str:
    """``part`` as a name every writer can store: bytes that are not UTF-8 (a Latin-1 name on disk) become the
    Latin-1 characters they stand for, and a name over :data:`MAX_NAME_BYTES` keeps its start, gains a short hash
    of the whole (two long names that share a start stay apart) and keeps its suffix."""
    text = _UNDECODED.sub(lambda m: chr(ord(m.group()) - 0xDC00), part)
    if len(text.encode()) <= MAX_NAME_BYTES:
        return text
    stem, dot, suffix = text.rpartition(".") if "." in text[1:] else (text, "", "")
    suffix = (dot + suffix)[:16]
    digest = hashlib.sha1(part.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    keep = MAX_NAME_BYTES - len(suffix.encode()) - len(digest) - 1
    return stem.encode()[:keep].decode("utf-8", "ignore") + "-" + digest + suffix


class ImagePlacer:
    """Links or copies each image to ``out/<folder>/<safe name>`` and returns that name.

    The name is the annotation's own file name made safe (``../`` and absolute parts removed, control characters
    replaced: a newline would split the name over two lines of an image list); a change or a collision between two
    images is reported, never silently resolved. ``per_image_files`` is for writers that name a label file after
    each image's stem (YOLO, VOC, LabelMe, KITTI): there ``x.jpg`` and ``x.png`` (or ``X.jpg``, which is the same
    file on macOS and Windows) would share one label file, so the second is renamed ``x_png.png``."""

    def __init__(self, out: Path, mode: str, report: Report, per_image_files: bool = False):
        self.out, self.mode, self.report, self.per_image_files = out, mode, report, per_image_files
        self.used: set[tuple[str, str]] = set()

    def place(self, image: ImageRecord, folder: str) -> str:
        rel = safe_relpath(image.file_name)
        if rel.as_posix() != image.file_name.replace("\\", "/").removeprefix("./"):
            self.report.add("renamed", "unsafe_file_name", image.where(),
                            f"{image.file_name!r} written as {rel.as_posix()!r}")
        if _CONTROL.search(rel.as_posix()):
            clean = PurePosixPath(*(_CONTROL.sub("_", p) for p in rel.parts))
            self.report.add("renamed", "control_characters_in_file_name", image.where(),
                            f"{rel.as_posix()!r} holds control characters: written as {clean.as_posix()!r}")
            rel = clean
        writable = PurePosixPath(*(writable_name(p) for p in rel.parts))
        if writable != rel:
            kind = "non_utf8_file_name" if _UNDECODED.search(rel.as_posix()) else "long_file_name"
            why = "is not UTF-8 text" if kind == "non_utf8_file_name" else f"is over {MAX_NAME_BYTES} bytes"
            self.report.add("renamed", kind, image.where(), f"{rel.as_posix()!r} {why}: written as {writable.as_posix()!r}")
            rel = writable
        rel = self._unique(folder, rel, image)
        if image.path is not None and self.mode in ("copy", "hardlink") and image.path.is_symlink():
            # its content is about to be copied into OUT: say where it really comes from
            self.report.add("warning", "linked_image_copied", image.where(),
                            f"{image.path} is a link to {image.path.resolve()}; its target's content is {self.mode}ed")
        if image.window is not None and self.mode != "none":  # a tile: its pixels, cut from the source image
            ok, encoded = cv2.imencode(rel.suffix or ".png", cv2.cvtColor(read_rgb(image), cv2.COLOR_RGB2BGR))
            if not ok:
                raise DetftError(f"cannot encode tile {rel} as {rel.suffix}")
            atomic_write_bytes(inside(self.out, PurePosixPath(folder) / rel), encoded.tobytes())
        elif image.path is not None and self.mode != "none":
            place_image(image.path, inside(self.out, PurePosixPath(folder) / rel), self.mode)
        elif image.data is not None and self.mode != "none":  # embedded in the annotations: there is no file to link
            dst = inside(self.out, PurePosixPath(folder) / rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(image.data)
        return rel.as_posix()

    def _key(self, folder: str, rel: PurePosixPath) -> tuple[str, str]:
        """What two images must not share: their name, or where a label file is named after the image, their stem
        in any case."""
        if self.per_image_files:
            return folder, rel.with_suffix("").as_posix().casefold()
        return folder, rel.as_posix()

    def _unique(self, folder: str, rel: PurePosixPath, image: ImageRecord) -> PurePosixPath:
        candidate, k = rel, 1
        if self._key(folder, candidate) in self.used and self.per_image_files and rel.suffix:
            candidate = rel.with_name(f"{rel.stem}_{rel.suffix[1:]}{rel.suffix}")  # x.png -> x_png.png: which it was
        stem = candidate.stem
        while self._key(folder, candidate) in self.used:
            candidate = rel.with_name(f"{stem}_{k}{rel.suffix}")
            k += 1
        if candidate != rel:
            why = "its label file's name" if self.per_image_files else "the name"
            self.report.add("renamed", "name_collision", image.where(),
                            f"{why} {rel.as_posix()!r} already used by another image; written as "
                            f"{candidate.as_posix()!r}")
        self.used.add(self._key(folder, candidate))
        return candidate
