"""``detft video --metrics-port`` (#47 item 3): /metrics in the Prometheus text format 0.0.4, read back by a parser
of the format written here (prometheus_client is not a dependency), and /health's codes, on a real server on a free
port over streams the tests change between scrapes."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest

from detft.errors import DetftError
from detft.inference.metrics import STATES, MetricsServer, StreamMetrics

Series = tuple[str, frozenset[tuple[str, str]]]  # metric name, labels

LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


def parse(text: str) -> tuple[dict[str, str], dict[str, str], dict[Series, float]]:
    """HELP and TYPE per family, and every sample; asserts what the format requires of the text: a newline at the
    end, HELP and TYPE once per family and before its samples, a family's samples together, no series twice."""
    assert text.endswith("\n")
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: dict[Series, float] = {}
    done: set[str] = set()  # families whose samples are over
    current = None
    for line in text.splitlines():
        if line.startswith("# "):
            keyword, name, rest = line[2:].split(" ", 2)
            table = {"HELP": helps, "TYPE": types}[keyword]
            assert name not in table and name not in done, line
            table[name] = rest
            if current is not None and current != name:
                done.add(current)
            current = name
            continue
        m = SAMPLE.fullmatch(line)
        assert m, line
        name, labels, value = m.groups()
        assert name == current and name in helps and name in types, line
        pairs = LABEL.findall(labels or "")
        assert "".join(f'{k}="{v}"{sep}' for k, v, sep in pairs) == (labels or ""), line
        key = (name, frozenset((k, re.sub(r"\\(.)", lambda e: UNESCAPE[e.group(1)], v)) for k, v, _ in pairs))
        assert key not in samples, line
        samples[key] = float(value)
    return helps, types, samples


def series(name: str, **labels: str) -> Series:
    return name, frozenset(("class" if k == "class_" else k, v) for k, v in labels.items())


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def stream(name: str, state: str = "live", **kw) -> StreamMetrics:
    values = dict(frames=0, fps=0.0, latency_p50_ms=None, latency_p95_ms=None, dropped=0, reconnects=0,
                  detections={}, events={})
    return StreamMetrics(name, state, **(values | kw))


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, list[StreamMetrics]]]:
    """A started server on a free port over a list the test fills and changes."""
    streams: list[StreamMetrics] = []
    with MetricsServer(0, lambda: [replace(s) for s in streams]) as server:
        yield server, streams


def test_metrics_values_and_format(served):
    server, streams = served
    streams += [stream("door", frames=120, fps=12.5, latency_p50_ms=40.0, latency_p95_ms=95.5, dropped=7,
                       reconnects=2, detections={"person": 30, "car": 4},
                       events={("enter", "person"): 3, ("cross_out", "car"): 1}),
                stream("yard", "reconnecting", frames=5, fps=0.0, error="lost")]
    status, headers, body = get(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    helps, types, samples = parse(body.decode())
    assert types == {
        "detft_stream_up": "gauge", "detft_stream_state": "gauge", "detft_frames_total": "counter",
        "detft_fps": "gauge", "detft_latency_ms": "gauge", "detft_dropped_frames_total": "counter",
        "detft_reconnects_total": "counter", "detft_detections_total": "counter", "detft_events_total": "counter"}
    assert helps.keys() == types.keys() and all(helps.values())
    assert samples == {
        series("detft_stream_up", stream="door"): 1, series("detft_stream_up", stream="yard"): 0,
        **{series("detft_stream_state", stream="door", state=s): float(s == "live") for s in STATES},
        **{series("detft_stream_state", stream="yard", state=s): float(s == "reconnecting") for s in STATES},
        series("detft_frames_total", stream="door"): 120, series("detft_frames_total", stream="yard"): 5,
        series("detft_fps", stream="door"): 12.5, series("detft_fps", stream="yard"): 0,
        # yard has no latency yet: no series rather than a made-up 0
        series("detft_latency_ms", stream="door", quantile="0.5"): 40,
        series("detft_latency_ms", stream="door", quantile="0.95"): 95.5,
        series("detft_dropped_frames_total", stream="door"): 7, series("detft_dropped_frames_total", stream="yard"): 0,
        series("detft_reconnects_total", stream="door"): 2, series("detft_reconnects_total", stream="yard"): 0,
        series("detft_detections_total", stream="door", class_="person"): 30,
        series("detft_detections_total", stream="door", class_="car"): 4,
        series("detft_events_total", stream="door", kind="enter", class_="person"): 3,
        series("detft_events_total", stream="door", kind="cross_out", class_="car"): 1}


def test_label_values_are_escaped(served):
    server, streams = served
    name, cls = 'cam "north"\\gate\nB', 'a\\"b'
    streams.append(stream(name, detections={cls: 2}, events={("cross_in", cls): 1}))
    text = get(server.url + "/metrics")[2].decode()
    assert 'stream="cam \\"north\\"\\\\gate\\nB"' in text
    _, _, samples = parse(text)
    assert samples[series("detft_detections_total", stream=name, class_=cls)] == 2
    assert samples[series("detft_events_total", stream=name, kind="cross_in", class_=cls)] == 1
    assert samples[series("detft_stream_up", stream=name)] == 1


def test_counters_only_grow_between_scrapes(served):
    server, streams = served
    streams.append(stream("door", frames=10, dropped=1, detections={"person": 3}, events={("enter", "person"): 1}))
    _, types, first = parse(get(server.url + "/metrics")[2].decode())
    s = streams[0]
    s.frames, s.dropped, s.reconnects = 25, 4, 1
    s.detections["person"] += 5
    s.detections["car"] = 1  # a class first seen after the first scrape
    s.events[("exit", "person")] = 1
    s.state, s.fps, s.latency_p50_ms = "reconnecting", 0.0, 30.0
    _, _, second = parse(get(server.url + "/metrics")[2].decode())
    counters = {k: v for k, v in first.items() if types[k[0]] == "counter"}
    assert counters and all(second[k] >= v for k, v in counters.items())
    assert second[series("detft_frames_total", stream="door")] == 25
    assert second[series("detft_detections_total", stream="door", class_="person")] == 8
    assert second[series("detft_detections_total", stream="door", class_="car")] == 1
    assert second[series("detft_events_total", stream="door", kind="exit", class_="person")] == 1
    assert second[series("detft_stream_up", stream="door")] == 0  # gauges follow the state either way
    assert second[series("detft_latency_ms", stream="door", quantile="0.5")] == 30
    assert series("detft_latency_ms", stream="door", quantile="0.95") not in second


@pytest.mark.parametrize("states, code, status", [
    (["live", "live"], 200, "ok"),
    (["live", "failed", "reconnecting"], 200, "degraded"),
    (["connecting", "ended", "failed"], 503, "down"),
    ([], 503, "down"),  # nothing started yet serves nothing
])
def test_health(served, states, code, status):
    server, streams = served
    streams += [stream(f"cam{i}", state, frames=i, fps=float(i), error="refused" if state == "failed" else None)
                for i, state in enumerate(states)]
    got, headers, body = get(server.url + "/health")
    assert got == code and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": status, "streams": {
        f"cam{i}": {"state": state, "frames": i, "fps": float(i), "error": "refused" if state == "failed" else None}
        for i, state in enumerate(states)}}


def test_routes_head_and_silence(served, capfd):
    server, streams = served
    streams.append(stream("door", frames=3))
    assert get(server.url + "/nope")[0] == 404
    assert get(server.url + "/")[0] == 404
    assert get(server.url + "/metrics/?x=1")[0] == 200  # a trailing slash and a query string name the same page
    for path in ("/metrics", "/health"):
        _, got_headers, got_body = get(server.url + path)
        status, headers, body = get(server.url + path, "HEAD")
        assert status == 200 and body == b""
        assert headers["Content-Length"] == str(len(got_body)) and headers["Content-Type"] == got_headers["Content-Type"]
    assert get(server.url + "/metrics", "POST")[0] == 501
    assert capfd.readouterr().err == ""  # no request lines on the video loop's stderr


def test_a_failing_snapshot_answers_500_and_the_next_scrape_works():
    calls = []

    def snapshot() -> list[StreamMetrics]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("dictionary changed size during iteration")
        return [stream("door", frames=1)]

    with MetricsServer(0, snapshot) as server:
        status, _, body = get(server.url + "/metrics")
        assert status == 500 and b"RuntimeError: dictionary changed size during iteration" in body
        status, _, body = get(server.url + "/metrics")
        assert status == 200 and parse(body.decode())[2][series("detft_frames_total", stream="door")] == 1
        assert get(server.url + "/health")[0] == 200


def test_a_port_in_use_names_it_and_the_option():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DetftError, match=rf"127\.0\.0\.1:{port} .*--metrics-port"):
            MetricsServer(port, list)


def test_close_is_idempotent_and_frees_the_port():
    server = MetricsServer(0, list).start()
    port = server.port
    assert port and get(server.url + "/health")[0] == 503
    server.close()
    server.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/health", timeout=2)
    with MetricsServer(port, list) as again:  # the same port, bound again at once
        assert again.port == port
    never_started = MetricsServer(0, list)
    never_started.close()  # does not wait for a serving thread that never ran
    never_started.close()


def test_an_unknown_state_is_refused_where_it_is_made():
    with pytest.raises(ValueError, match="'stopped' is not one of live, connecting"):
        stream("door", "stopped")
