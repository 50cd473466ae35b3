"""How a Label Studio server reaches the images of the tasks detft writes, both ways: the URL a written task names,
the note beside ``tasks.json`` that says how to serve it, and a task's local-files URL back to a file.

Label Studio serves files from disk as ``/data/local-files/?d=<path>``, the path relative to its
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, and only from folders a project's Local Storage names, which must lie
strictly below that root. With ``ls_root`` the written paths are the output's path under that root, so any number
of outputs sit under one root and one server serves them all (a Local Storage each); without it they are relative
to the output itself, which must then be the root (one output per server, as before). With ``ls_url`` the images
are named by a web server's or a bucket's address instead: ``BASE/<path under the output>``."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, quote, urlparse

from ..errors import DetftError

LOCAL_FILES = "/data/local-files/?d="  # Label Studio's local storage URL: the path is relative to its document root
NOTE_FILE = "LABEL_STUDIO.md"
URL_SCHEMES = ("http", "https", "s3", "gs")
QUOTED_SCHEMES = ("http", "https")  # a bucket key is written as it is: Label Studio presigns the key it reads


@dataclass(frozen=True)
class Serving:
    """Where the server finds an output's images: ``root`` (the document root) with ``out`` below it, or ``base``."""

    out: Path  # the output folder as it will be published (absolute)
    root: Path | None = None
    base: str | None = None

    @property
    def prefix(self) -> str:
        """The output's path under the document root, with a trailing slash ('' when the output is the root)."""
        if self.root is None or self.out == self.root:
            return ""
        return self.out.relative_to(self.root).as_posix() + "/"

    def image_url(self, rel: str) -> str:
        """The URL a task names for the image at ``rel`` (a POSIX path under the output)."""
        if self.base is not None:
            key = quote(rel) if urlparse(self.base).scheme in QUOTED_SCHEMES else rel
            return f"{self.base.rstrip('/')}/{key}"
        return LOCAL_FILES + quote(self.prefix + rel)

    def note(self, tasks: str, config: str) -> str:
        """``LABEL_STUDIO.md``: the server command and the project settings that serve and import these tasks."""
        steps = [f"In a project, Settings > Labeling Interface > Code: paste `{config}`."]
        if self.base is None:
            root = self.root or self.out
            first = ("Start Label Studio with this folder below its document root (every output written with "
                     f"`--ls-root {root}` is served by the same server):\n\n"
                     f"       LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
                     f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root} label-studio start\n")
            steps.append("Settings > Cloud Storage > Add Source Storage > Local files, absolute local path "
                         f"`{self.out / 'images'}`; do not sync it (the tasks name their images, as "
                         f"`{LOCAL_FILES}{self.prefix}images/...`).")
        else:
            where = urlparse(self.base)
            first = (f"Put this folder's `images/` where `{self.base.rstrip('/')}/images/` serves it"
                     + (" (a web server over this folder, allowing Label Studio's origin by CORS)."
                        if where.scheme in QUOTED_SCHEMES else f" (uploaded under that {where.scheme}:// prefix)."))
            if where.scheme not in QUOTED_SCHEMES:
                steps.append(f"Settings > Cloud Storage > Add Source Storage for bucket `{where.netloc}`, presigned "
                             "URLs on; do not sync it (the tasks name their images): Label Studio reads them with it.")
        steps.append(f"Data Manager > Import: `{tasks}`.")
        return (f"# Serving {self.out.name} with Label Studio\n\n"
                + "\n".join(f"{k}. {step}" for k, step in enumerate([first, *steps], 1)) + "\n")


def serving(out: Path, ls_root: Path | str | None = None, ls_url: str | None = None) -> Serving:
    """The :class:`Serving` of output ``out``, checked before anything is written: ``out`` must lie below
    ``ls_root`` (Label Studio serves nothing else), ``ls_url`` must be an http(s), s3 or gs address."""
    if ls_root is not None and ls_url is not None:
        raise DetftError("--ls-root and --ls-url: the images are served either from the document root or from an "
                         "address, choose one")
    out = Path(os.path.abspath(out))
    if ls_url is not None:
        parsed = urlparse(ls_url)
        if parsed.scheme not in URL_SCHEMES or not parsed.netloc or parsed.query or parsed.fragment:
            raise DetftError(f"--ls-url {ls_url!r}: a base address ({', '.join(s + '://' for s in URL_SCHEMES)}"
                             "host/path) that the images' paths under the output are appended to")
        return Serving(out, base=ls_url)
    if ls_root is None:
        return Serving(out, root=out)
    root = Path(os.path.abspath(ls_root))
    if not root.is_dir():
        raise DetftError(f"--ls-root {ls_root}: no such folder (the document root of the Label Studio server)")
    real_out, real_root = out.resolve(), root.resolve()
    if real_out == real_root or not real_out.is_relative_to(real_root):
        raise DetftError(f"--ls-root {ls_root}: the output {out} is not below it; Label Studio serves local files "
                         "only from folders below its document root (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT): write "
                         f"the output into a folder under {root}")
    return Serving(real_out, root=real_root)


def serving_for(fmt: str, out: Path, ls_root: Path | str | None, ls_url: str | None) -> Serving | None:
    """:func:`serving` when ``fmt`` is Label Studio's; the options named as an error for any other format."""
    if fmt == "labelstudio":
        return serving(out, ls_root, ls_url)
    if ls_root is not None or ls_url is not None:
        raise DetftError(f"--ls-root and --ls-url say where Label Studio finds the images of Label Studio tasks "
                         f"(labelstudio); {fmt} names its images by path")
    return None


def local_file(url: str, root: Path) -> Path:
    """The file a ``/data/local-files/?d=<path>`` URL names under document root ``root``, read as Label Studio's
    view reads it (the last ``d``, normalised, relative to the root). A path that climbs out of the root is refused:
    symlinks placed below the root are followed, as the server follows them."""
    values = parse_qs(urlparse(url).query, keep_blank_values=True).get("d") or [""]
    rel = posixpath.normpath(values[-1]).lstrip("/")
    if not values[-1] or "\x00" in rel or rel == "." or PurePosixPath(rel).parts[:1] == ("..",):
        raise DetftError(f"{url}: not a file below the document root")
    return Path(root) / rel
