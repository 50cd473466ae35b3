"""Writing outputs safely: all or nothing, and never outside the folder the user named.

A file name inside annotations is untrusted data (``../../etc/x.jpg``, ``C:\\x.jpg``, ``/abs/x.jpg``):
:func:`safe_relpath` turns it into a relative path that cannot climb out, and
:func:`atomic_directory` builds the output in a sibling temp folder that is renamed into place only
when everything was written, so a crash or an error leaves no half dataset.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .errors import DetftError


def safe_relpath(name: str) -> PurePosixPath:
    """A relative POSIX path with no ``..``, root or drive parts, keeping the rest of ``name``."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":  # windows drive letter
        parts = parts[1:]
    if not parts:
        raise DetftError(f"file name {name!r} has no usable path component")
    return PurePosixPath(*parts)


def inside(root: Path, rel: PurePosixPath | str) -> Path:
    """``root / rel``, refusing anything that would resolve outside ``root`` (symlinks included)."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise DetftError(f"refusing to write {rel!s}: it resolves outside {root}")
    return target


@contextlib.contextmanager
def atomic_directory(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``out``; on success it replaces ``out`` in one rename."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DetftError(f"{out} already exists (use --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file through a temp name and rename, so readers never see half of it."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file through a temp name and rename, so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def place_image(src: Path, dst: Path, mode: str) -> None:
    """Put an image into an output dataset by symlink, hard link or copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(src.resolve(), dst)
    elif mode == "hardlink":
        try:
            os.link(src, dst)
        except OSError:  # another filesystem: fall back to a copy rather than fail
            shutil.copy2(src, dst)
    elif mode == "copy":
        shutil.copy2(src, dst)
    else:
        raise DetftError(f"unknown image mode {mode!r} (symlink, hardlink or copy)")
