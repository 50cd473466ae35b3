"""The image a Label Studio task names, as the ML backend reads it: a local-files URL from disk under the server's
document root, an upload (or any other path the server serves) fetched from the server with a token, an http(s)
URL fetched as it is, a cloud URI (s3://, gs://, azure-blob://) through the server's presign route.

As label-studio-ml-backend's ``get_local_path`` does, but without its cache folder: the bytes are decoded in memory.
A token is sent only to the server it belongs to, never to another host (a presigned redirect included)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from ..annotations.images import probe_bytes
from ..errors import DetftError
from ..formats.labelstudio_serving import local_file

MAX_BYTES = 256 << 20  # an image larger than this is refused before it is read whole
TIMEOUT_S = 30.0
CLOUD = ("s3:", "gs:", "azure-blob:")
LOCAL_FILES_PATH = "/data/local-files"
ACCESS_TTL_S = 240.0  # a personal access token's access token lives 5 minutes on the server; renewed before


class TaskImageError(DetftError):
    """One task's image cannot be read: reported for that task, the others of the batch still predicted."""


@dataclass(frozen=True)
class Server:
    """The Label Studio server tasks come from: its address and an API token (a legacy token, or a personal access
    token, exchanged for short-lived access tokens as the server asks)."""

    host: str
    token: str | None = None


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects followed without the Authorization header once they leave the host it was meant for (the server's
    presign route redirects to the bucket)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlparse(newurl).netloc != urlparse(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


@dataclass
class TaskImages:
    """Reads task images. ``root``: the server's local-files document root (None: local-files URLs are fetched from
    the server); ``server``: where uploads come from (None: a /setup's hostname and token, per project)."""

    root: Path | None = None
    server: Server | None = None
    _access: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_env(cls, root: str | Path | None = None, host: str | None = None, token: str | None = None) -> TaskImages:
        """The arguments given, else Label Studio's own environment variables (those label-studio-ml-backend reads):
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY."""
        root = root or os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT") or os.environ.get(
            "LOCAL_FILES_DOCUMENT_ROOT")
        host = host or os.environ.get("LABEL_STUDIO_URL") or os.environ.get("LABEL_STUDIO_HOST")
        token = token or os.environ.get("LABEL_STUDIO_API_KEY")
        if host is not None and urlparse(host).scheme not in ("http", "https"):
            raise DetftError(f"--ls-host {host!r}: the Label Studio server's address, http(s)://host:port")
        if root is not None and not Path(root).is_dir():
            raise DetftError(f"--ls-root {root}: no such folder (the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
        return cls(Path(root).absolute() if root else None, Server(host.rstrip("/"), token) if host else None)

    def read(self, url: str, task_id: int | None = None, setup: Server | None = None) -> np.ndarray:
        """The RGB image (as displayed: EXIF orientation applied) ``url`` names; ``setup``: the server a project's
        /setup named, used when no server was given."""
        if not isinstance(url, str) or not url:
            raise TaskImageError("the task names no image")
        server = self.server or setup
        parsed = urlparse(url)
        local = parsed.path.rstrip("/") == LOCAL_FILES_PATH and not parsed.netloc
        if local and self.root is not None:
            try:
                path = local_file(url, self.root)
                data = _bounded(path.open("rb"), str(path))
            except DetftError as e:
                raise TaskImageError(str(e)) from None
            except OSError as e:
                raise TaskImageError(f"{url}: {path} cannot be read ({e.strerror or e})") from None
        elif url.startswith(CLOUD):
            if server is None or task_id is None:
                raise TaskImageError(f"{url}: a cloud URI is read through the server's presign route: give --ls-host")
            uri = base64.urlsafe_b64encode(url.encode()).decode()
            data = self._fetch(f"{server.host}/tasks/{task_id}/presign/?fileuri={uri}", server)
        elif url.startswith("/"):
            if server is None:
                raise TaskImageError(f"{url}: a file the Label Studio server serves: give --ls-host and --ls-token"
                                     + (", or --ls-root (its document root) to read it from disk" if local else ""))
            data = self._fetch(server.host + url, server)
        elif parsed.scheme in ("http", "https"):
            data = self._fetch(url, server)
        else:
            raise TaskImageError(f"{url!r}: not an image URL detft reads (local files, uploads, http(s), s3/gs/azure)")
        return _decode(data, url)

    def _fetch(self, url: str, server: Server | None) -> bytes:
        headers = {"User-Agent": "detft-serve"}
        if server is not None and server.token and urlparse(url).netloc == urlparse(server.host).netloc:
            headers["Authorization"] = self._authorization(server)
        opener = urllib.request.build_opener(_SameHostRedirects)
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as response:
                return _bounded(response, url)
        except urllib.error.HTTPError as e:
            raise TaskImageError(f"{url}: the server answered {e.code} {e.reason}"
                                 + (" (check --ls-token)" if e.code in (401, 403) else "")) from None
        except (urllib.error.URLError, OSError) as e:
            raise TaskImageError(f"{url}: cannot be fetched ({getattr(e, 'reason', e)})") from None

    def _authorization(self, server: Server) -> str:
        """``Token <key>`` for a legacy token; for a personal access token (a JWT, the refresh token) ``Bearer`` and
        an access token the server's /api/token/refresh/ gives, reused for a few minutes."""
        token = str(server.token)
        if token.count(".") != 2:
            return f"Token {token}"
        with self._lock:
            access, when = self._access.get((server.host, token), ("", 0.0))
            if time.monotonic() - when > ACCESS_TTL_S:
                request = urllib.request.Request(f"{server.host}/api/token/refresh/", method="POST",
                                                 data=json.dumps({"refresh": token}).encode(),
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                        access = json.loads(response.read())["access"]
                except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
                    raise TaskImageError(f"{server.host}: the personal access token was not accepted "
                                         f"({getattr(e, 'reason', e)})") from None
                self._access[(server.host, token)] = (access, time.monotonic())
        return f"Bearer {access}"


def _bounded(stream, where: str) -> bytes:  # type: ignore[no-untyped-def]
    """At most :data:`MAX_BYTES` of ``stream`` (closed after): a larger file is refused, not read whole."""
    with stream:
        data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise TaskImageError(f"{where}: larger than {MAX_BYTES >> 20} MB, not read")
    return data


def _decode(data: bytes, where: str) -> np.ndarray:
    """Bytes to RGB as displayed, the header checked first (a decompression bomb is refused as ``convert`` does)."""
    info = probe_bytes(data)
    if not info.ok:
        raise TaskImageError(f"{where}: {info.error}")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise TaskImageError(f"{where}: cannot be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
