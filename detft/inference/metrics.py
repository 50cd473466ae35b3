"""``detft video --metrics-port``: what the video loop counts, served for Prometheus (``/metrics``) and for a load
balancer or a watchdog (``/health``), so a run over many cameras is watched from outside instead of by reading its
log. The standard library's threading server in a daemon thread, on 127.0.0.1 by default (the numbers name the
cameras); a scrape asks the loop for a fresh :class:`StreamMetrics` per stream, nothing is cached here.

``/metrics`` is the Prometheus text exposition format 0.0.4: every family has its ``# HELP`` and ``# TYPE`` once,
counters end in ``_total``, every series carries ``stream="name"``. ``/health`` is JSON: ``ok`` (200) when every
stream is live, ``degraded`` (200) when some are, ``down`` (503) when none is (or there are none yet)."""

from __future__ import annotations

import json
import math
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from ..errors import DetftError

STATES = ("live", "connecting", "reconnecting", "ended", "failed")
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
PLAIN_TEXT = "text/plain; charset=utf-8"
POLL_S = 0.1  # how often the serving thread checks for close(): close() waits up to this long


@dataclass
class StreamMetrics:
    """One stream's numbers at one moment, filled by the video loop; counters are cumulative since the run began."""

    name: str
    state: str  # one of STATES
    frames: int  # frames processed (predicted)
    fps: float  # processed frames per second over the last window the loop chose
    latency_p50_ms: float | None  # None until a frame was processed
    latency_p95_ms: float | None
    dropped: int  # frames read but replaced by newer ones (latest-frame policy)
    reconnects: int
    detections: dict[str, int]  # per class name
    events: dict[tuple[str, str], int]  # (event kind: "enter", "exit", "cross_in", "cross_out"..., class name) -> count
    error: str | None = None  # why it failed, for /health

    def __post_init__(self) -> None:
        # a misspelt state would read as a stream that is in none of them: fail where it is made instead
        if self.state not in STATES:
            raise ValueError(f"stream {self.name!r}: state {self.state!r} is not one of {', '.join(STATES)}")


def _escape(value: str) -> str:
    """A label value as the exposition format quotes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(int(value))  # int(): a bool is 1 or 0, not True
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render_metrics(streams: list[StreamMetrics]) -> str:
    """The text exposition of ``streams``: families in a fixed order, a stream's series in the snapshot's order,
    classes and events sorted, so two scrapes of the same numbers are the same text."""
    latency = (("0.5", "latency_p50_ms"), ("0.95", "latency_p95_ms"))
    families: list[tuple[str, str, str, list[tuple[dict[str, str], float]]]] = [
        ("detft_stream_up", "gauge", "1 while the stream delivers frames (state live), else 0.",
         [({"stream": s.name}, int(s.state == "live")) for s in streams]),
        ("detft_stream_state", "gauge", f"The stream's state, one-hot over {', '.join(STATES)}.",
         [({"stream": s.name, "state": state}, int(s.state == state)) for s in streams for state in STATES]),
        ("detft_frames_total", "counter", "Frames the model processed.",
         [({"stream": s.name}, s.frames) for s in streams]),
        ("detft_fps", "gauge", "Processed frames per second over the video loop's last window.",
         [({"stream": s.name}, s.fps) for s in streams]),
        ("detft_latency_ms", "gauge", "Capture-to-result latency in milliseconds, quantiles over the recent frames "
                                      "(absent until a frame was processed).",
         [({"stream": s.name, "quantile": q}, getattr(s, field)) for s in streams for q, field in latency
          if getattr(s, field) is not None]),
        ("detft_dropped_frames_total", "counter", "Frames read but replaced by a newer one before the model took "
                                                  "them (a live stream keeps only its newest frame).",
         [({"stream": s.name}, s.dropped) for s in streams]),
        ("detft_reconnects_total", "counter", "Times the stream was lost and opened again.",
         [({"stream": s.name}, s.reconnects) for s in streams]),
        ("detft_detections_total", "counter", "Detections per class.",
         [({"stream": s.name, "class": c}, n) for s in streams for c, n in sorted(s.detections.items())]),
        ("detft_events_total", "counter", "Counting events (zone enter/exit, line crossings) per kind and class.",
         [({"stream": s.name, "kind": kind, "class": c}, n) for s in streams
          for (kind, c), n in sorted(s.events.items())]),
    ]
    lines = []
    for name, kind, text, samples in families:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            quoted = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{quoted}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def health(streams: list[StreamMetrics]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON of ``/health``: 503 only when no stream is live, so a balancer drops a run that
    serves nothing but keeps one that lost some of its cameras (``degraded`` says which, with their errors)."""
    live = sum(s.state == "live" for s in streams)
    status = "ok" if streams and live == len(streams) else "degraded" if live else "down"
    return (503 if status == "down" else 200), {
        "status": status,
        "streams": {s.name: {"state": s.state, "frames": s.frames, "fps": s.fps, "error": s.error} for s in streams}}


def _handler(snapshot: Callable[[], list[StreamMetrics]]) -> type[BaseHTTPRequestHandler]:
    def metrics(streams: list[StreamMetrics]) -> tuple[int, str, str]:
        return 200, PROMETHEUS_TEXT, render_metrics(streams)

    def health_json(streams: list[StreamMetrics]) -> tuple[int, str, str]:
        status, answer = health(streams)
        return status, "application/json", json.dumps(answer)

    routes = {"/metrics": metrics, "/health": health_json}

    class Handler(BaseHTTPRequestHandler):
        server_version = "detft-metrics"
        timeout = 10  # seconds: a client that stalls mid-request gives its thread back

        def do_GET(self) -> None:  # noqa: N802  (http.server's names)
            self._answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            route = routes.get(path)
            if route is None:
                known = ", ".join(routes)
                status, kind, text = 404, PLAIN_TEXT, f"{path}: not found; detft video --metrics-port answers {known}\n"
            else:
                try:
                    status, kind, text = route(snapshot())
                except Exception:  # noqa: BLE001  a bug in a snapshot answers 500; the next scrape is served again
                    status, kind, text = 500, PLAIN_TEXT, "the metrics snapshot failed\n" + traceback.format_exc()
            data = text.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)
            except ConnectionError:  # the scraper hung up (its timeout): nothing to tell anyone
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (http.server's signature)
            """Silent: a scrape every few seconds would bury the video loop's own lines on stderr."""

    return Handler


class MetricsServer:
    """``/metrics`` and ``/health`` on ``host:port``, bound when made (so a taken port fails before a model loads),
    served by :meth:`start` until :meth:`close`. ``snapshot`` is called on a server thread for every request, by
    several threads when scrapes overlap: it must be safe to call from there, and return values the loop does not
    mutate while they are read (copies)."""

    def __init__(self, port: int, snapshot: Callable[[], list[StreamMetrics]], host: str = "127.0.0.1"):
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(snapshot))
        except (OSError, OverflowError) as e:  # OverflowError: a port outside 0-65535
            reason = getattr(e, "strerror", None) or str(e)
            raise DetftError(f"cannot serve metrics on {host}:{port} ({reason}): pick another port with "
                             "--metrics-port (0: any free one), or stop what uses it") from None
        self.host, self.port = host, self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> MetricsServer:
        """Serve in a daemon thread (a run that ends without close() is not kept alive by it); once only."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_S,),
                                            name=f"detft-metrics {self.url}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port; again is a no-op."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:  # shutdown() waits for serve_forever: never call it when that never ran
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
