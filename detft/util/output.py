"""Writing outputs safely: all or nothing, and never outside the folder the user named.

A file name inside annotations is untrusted data (``../../etc/x.jpg``, ``C:\\x.jpg``, ``/abs/x.jpg``):
:func:`safe_relpath` turns it into a relative path that cannot climb out, and
:func:`atomic_directory` builds the output in a sibling temp folder that is renamed into place only
when everything was written, so a crash or an error leaves no half dataset.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from ..errors import DetftError


def safe_relpath(name: str) -> PurePosixPath:
    """A relative POSIX path with no ``..``, root or drive parts, keeping the rest of ``name``."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":  # windows drive letter
        parts = parts[1:]
    if not parts:
        raise DetftError(f"file name {name!r} has no usable path component")
    return PurePosixPath(*parts)


NAME_MAX = 255  # bytes in one file name, on every common filesystem
MAX_COMPONENT = 100  # characters: far below every filesystem's 255-byte limit, with room for suffixes
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def safe_component(name: str, what: str = "name") -> str:
    """One folder or file name made from data (a split, subset, class or run name): the same name when
    it is already safe, else a sanitised one (separators, NUL and control characters, drive colons
    become ``_``; leading dots and spaces go; at most :data:`MAX_COMPONENT` characters). A name with
    nothing usable left is an error naming it. Callers report a changed name."""
    if not isinstance(name, str):
        raise DetftError(f"{what} {name!r} is not text")
    clean = _UNSAFE_CHARS.sub("_", name).strip().lstrip(". ")[:MAX_COMPONENT].rstrip(". ")
    if not clean.strip("_"):
        raise DetftError(f"{what} {name!r} cannot be used as a folder or file name")
    return clean


def inside(root: Path, rel: PurePosixPath | str) -> Path:
    """``root / rel``, refusing anything that would resolve outside ``root`` (symlinks included)."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise DetftError(f"refusing to write {rel!s}: it resolves outside {root}")
    return target


def check_target(out: Path) -> None:
    """A path a command will create: named errors, before any work, for what would otherwise fail half-way
    with an OS error (a parent that is a file, a link that leads nowhere)."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.is_symlink() and not p.exists():
            raise DetftError(f"cannot write {out}: {p} is a link to {os.readlink(p)}, which does not exist")
        if p != out and p.exists() and not p.is_dir():
            raise DetftError(f"cannot write {out}: {p} is a file, not a folder")


MARKER = ".detft-output"  # left in every folder detft publishes: what --overwrite may replace


@contextlib.contextmanager
def atomic_directory(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``out``; on success it replaces ``out`` in one rename, and only then is
    the old ``out`` removed. Temp folders of earlier runs that were killed are cleaned up first.

    ``overwrite`` replaces only a folder detft wrote (it holds :data:`MARKER`) or an empty one: a user's own
    folder is never deleted because a flag was given."""
    out = Path(out)
    check_replaceable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    # absolute: writers return paths resolved by inside(), and a relative OUT must compare with them
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent)).resolve()
    try:
        yield tmp
        verify_contained(tmp)
        (tmp / MARKER).write_text("written by detft; detft --overwrite may replace this folder\n", encoding="utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_replaceable(out: Path, overwrite: bool) -> None:
    """Whether :func:`atomic_directory` may publish ``out``: named errors that commands also call before long
    work (predicting every image), so a wrong OUT fails in a second, not after an hour."""
    check_target(out)
    if out.exists() and not out.is_dir():
        raise DetftError(f"{out} is a file: the output is a folder")
    if out.exists() and not overwrite:
        raise DetftError(f"{out} already exists (use --overwrite to replace it)")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise DetftError(f"{out} exists and detft did not write it (no {MARKER} in it): --overwrite replaces only "
                         "a folder detft wrote; choose another folder, or remove this one yourself")


def verify_contained(root: Path) -> None:
    """The last check before an output tree is published: every folder in it is a real folder inside it.
    A folder link (made by a writer fooled by a name from the data) would make the published dataset, and
    anything later written through it, reach outside; image files may be links, folders never."""
    real_root = root.resolve()
    for folder, dirs, _files in os.walk(root):
        for d in dirs:
            path = Path(folder) / d
            if path.is_symlink() or not path.resolve().is_relative_to(real_root):
                raise DetftError(f"refusing to publish {root.name}: {path.relative_to(root)} leads outside the output")


def remove_stale_temps(out: Path) -> list[Path]:
    """Remove ``.OUT.tmp-PID-*`` / ``.OUT.old-PID-*`` folders that this user's killed runs left beside
    ``out``: only folders of ours whose process is gone, never anything else."""
    removed = []
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(\d+)-[^/]+$")
    for entry in out.parent.iterdir() if out.parent.is_dir() else []:
        m = pattern.match(entry.name)
        if not m or entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
            continue
        if _alive(int(m.group(2))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid we can ask about: leave its folder alone
    return True


def check_output(out: Path, inputs: Iterable[Path | str | None], what: str = "output",
                 held: Iterable[Path | str | None] = ()) -> None:
    """The one rule for where a command may write, checked before any work whatever ``--overwrite`` says:
    ``out`` is neither, nor holds, any input (replacing it would delete the user's data), and it does not lie
    inside an input folder that is read whole (``inputs``: a dataset root, ``--source`` images, a run folder),
    where reading that input again would find the output as more data. ``held`` are inputs that are only
    files and the folders holding them (annotation files, image folders): ``out`` may sit beside them."""
    out = Path(out)
    check_target(out)
    outs = {out.absolute(), out.resolve()}
    read_whole = [Path(src) for src in inputs if src is not None]
    forms = [(src, p) for src in [*read_whole, *(Path(h) for h in held if h is not None)]
             for p in {src.absolute(), src.resolve()}]
    for src, p in forms:  # replacing OUT would delete this input: said first, it is the worse of the two
        for o in outs:
            if p == o or o in p.parents:
                raise DetftError(f"{what} {out} would replace input data ({src} is {'it' if p == o else 'inside it'}); "
                                 "choose another folder")
    for src in read_whole:
        if src.is_dir() and any(p in o.parents for p in {src.absolute(), src.resolve()} for o in outs):
            raise DetftError(f"{what} {out} is inside the input {src}: write it outside, where reading {src} again "
                             "cannot find it as more data")


def free_name(default: Path) -> Path:
    """``default`` when it does not exist yet, else the first of ``default2``, ``default3``... that does not: a
    command's default output folder (``runs/predict``) never replaces the last run's, and needs no --overwrite."""
    candidate, k = Path(default), 2
    while candidate.exists() or candidate.is_symlink():
        candidate, k = candidate.with_name(f"{Path(default).name}{k}"), k + 1
    return candidate


def input_folders(paths: Iterable[Path | str | None]) -> list[Path]:
    """The distinct folders that hold ``paths`` (image and annotation files): the inputs an OUT must stay out of."""
    return sorted({Path(p).parent for p in paths if p is not None})


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file through a temp name and rename, so readers never see half of it."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file through a temp name and rename, so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise DetftError(f"cannot write {path}: its name is {len(os.fsencode(path.name))} bytes, over the "
                         f"filesystem's {NAME_MAX}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:32]}.", dir=path.parent)  # the full name + 9 could pass 255
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
