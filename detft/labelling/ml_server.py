"""The HTTP side of ``detft serve``: the standard library's threading server in front of :class:`.ml_backend.Backend`
(one thread per request, the model loaded once). Every answer is JSON; a bad request is a 4xx with ``{"error": ...}``:
malformed JSON 400, an unknown route 404, a wrong method 405, a body over :data:`MAX_BODY` 413."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import DetftError
from .ml_backend import NO_TRAINING, Backend, RequestError

MAX_BODY = 64 << 20  # bytes: a batch of tasks is JSON text, images are fetched separately


def make_server(backend: Backend, host: str = "127.0.0.1", port: int = 9090) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: a free one, ``server.server_port``), not yet serving."""

    def health(_: Any) -> tuple[int, dict]:
        return 200, backend.health()

    def setup(body: dict) -> tuple[int, dict]:
        return 200, backend.setup(body)

    def predict(body: dict) -> tuple[int, dict]:
        return 200, backend.predict(body)

    def train(_: dict) -> tuple[int, dict]:
        backend.log(NO_TRAINING)
        return 501, {"error": NO_TRAINING}

    routes: dict[tuple[str, str], Callable[[Any], tuple[int, dict]]] = {
        ("GET", "/"): health, ("GET", "/health"): health, ("GET", "/metrics"): lambda _: (200, {}),
        ("GET", "/versions"): lambda _: (200, {"versions": [backend.model_version]}),
        ("POST", "/setup"): setup, ("POST", "/predict"): predict, ("POST", "/webhook"): backend.webhook,
        ("POST", "/train"): train}

    class Handler(BaseHTTPRequestHandler):
        server_version = "detft-serve"

        def do_GET(self) -> None:  # noqa: N802  (http.server's names)
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def _answer(self, method: str) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            try:
                route = routes.get((method, path))
                if route is None:
                    known = sorted({p for _, p in routes})
                    raise RequestError(405 if any(p == path for _, p in routes) else 404,
                                       f"{method} {path}: detft serve answers {', '.join(known)}")
                status, answer = route(self._body() if method == "POST" else None)
            except RequestError as e:
                status, answer = e.status, {"error": str(e)}
            except Exception as e:  # noqa: BLE001  a bug answers 500 and keeps the server up for the next request
                backend.log(f"{method} {path}: {traceback.format_exc()}")
                status, answer = 500, {"error": f"{e.__class__.__name__}: {e}"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict:
            try:
                size = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise RequestError(400, "Content-Length is not a number") from None
            if size > MAX_BODY:
                self.close_connection = True  # the body is left unread
                raise RequestError(413, f"{size} bytes: larger than the {MAX_BODY >> 20} MB a request may be")
            try:
                body = json.loads(self.rfile.read(size) or b"null")
            except (ValueError, UnicodeDecodeError) as e:
                raise RequestError(400, f"the body is not JSON ({e})") from None
            if not isinstance(body, dict):
                raise RequestError(400, "the body must be a JSON object")
            return body

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (http.server's signature)
            backend.log(f"{self.address_string()} {format % args}")

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise DetftError(f"cannot listen on {host}:{port} ({e.strerror or e}): another --port, or stop what uses it") \
            from None


def serve(backend: Backend, host: str = "127.0.0.1", port: int = 9090) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(backend, host, port)
    backend.log(f"{backend.model_version} on http://{host}:{server.server_port} (Label Studio: Settings > Model > "
                "Connect Model, this URL); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
