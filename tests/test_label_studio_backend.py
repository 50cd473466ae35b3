"""detft serve (#44 item 3): the Label Studio ML backend protocol answered over HTTP by a model whose detections are
known exactly (helpers.Oracle: grey value k is class k), with task images from local files under a document root,
from a stand-in Label Studio server (uploads, with its token) and from plain http(s) URLs; the project's own tag
names and labels in the regions; bad requests answered 4xx; concurrent requests on one model. The real server
talks to it in tests/test_label_studio_server.py."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from helpers import Oracle
from PIL import Image

from detft.errors import DetftError
from detft.formats import brush
from detft.labelling.ml_backend import Backend
from detft.labelling.ml_server import make_server
from detft.labelling.task_images import Server, TaskImages

W, H = 120, 90
BOXES = {1: (5, 6, 30, 40), 2: (50, 10, 90, 30), 3: (70, 60, 110, 85)}  # class k painted with grey value k


def config(tag: str = "RectangleLabels", labels: str = '<Label value="a"/><Label value="b"/>',
           image: str = '<Image name="img" value="$photo"/>') -> str:
    return f'<View>{image}<{tag} name="objects" toName="img">{labels}</{tag}></View>'


def painted() -> bytes:
    """A PNG with one box of each class (Oracle finds exactly these)."""
    image = np.zeros((H, W, 3), np.uint8)
    for k, (x0, y0, x1, y1) in BOXES.items():
        image[y0:y1, x0:x1] = k
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A document root with one output's image and a file beside the root that no URL may reach."""
    (tmp_path / "root" / "batch" / "images").mkdir(parents=True)
    (tmp_path / "root" / "batch" / "images" / "a b.png").write_bytes(painted())
    (tmp_path / "secret.png").write_bytes(painted())
    return tmp_path / "root"


def serve(backend: Backend) -> Iterator[str]:
    server = make_server(backend, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def logged() -> list[str]:
    return []


@pytest.fixture
def backend(root: Path, logged: list[str]) -> Backend:
    return Backend(Oracle(masks=True), "run7", TaskImages(root), log=logged.append)


@pytest.fixture
def url(backend: Backend) -> Iterator[str]:
    yield from serve(backend)


def call(url: str, path: str, body=None, raw: bytes | None = None, method: str | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def task(image: str, task_id: int = 1) -> dict:
    return {"id": task_id, "data": {"photo": image}, "project": 3}


def predict(url: str, tasks: list[dict], label_config: str) -> tuple[int, dict]:
    return call(url, "/predict", {"tasks": tasks, "project": "3.1700000000", "label_config": label_config,
                                  "params": {"login": None, "password": None, "context": None}})


LOCAL = "/data/local-files/?d=batch/images/a%20b.png"


def test_health_setup_versions_and_metrics_answer_as_label_studio_expects(url: str):
    assert call(url, "/health") == (200, {"status": "UP", "model_class": "detft", "model_version": "run7",
                                          "classes": ["a", "b", "c"]})
    assert call(url, "/")[1]["status"] == "UP"
    body = {"project": "3.1700000000", "schema": config(), "hostname": "http://localhost:8080",
            "access_token": "abc", "extra_params": None}
    assert call(url, "/setup", body) == (200, {"model_version": "run7"})
    assert call(url, "/versions") == (200, {"versions": ["run7"]})
    assert call(url, "/metrics") == (200, {})


def test_regions_carry_the_projects_tag_names_labels_and_scores(url: str, logged: list[str]):
    status, answer = predict(url, [task(LOCAL)], config())
    assert status == 200
    [prediction] = answer["results"]
    assert prediction["model_version"] == "run7"
    regions = sorted(prediction["result"], key=lambda r: r["value"]["rectanglelabels"])
    assert [r["value"]["rectanglelabels"] for r in regions] == [["a"], ["b"]]  # c: no such label in the project
    assert {(r["from_name"], r["to_name"], r["type"]) for r in regions} == {("objects", "img", "rectanglelabels")}
    assert len({r["id"] for r in regions}) == 2
    x0, y0, x1, y1 = BOXES[1]
    value = regions[0]["value"]
    assert (value["x"], value["y"]) == pytest.approx((x0 / W * 100, y0 / H * 100))
    assert (value["width"], value["height"]) == pytest.approx(((x1 - x0) / W * 100, (y1 - y0) / H * 100))
    assert regions[0]["original_width"] == W and regions[0]["original_height"] == H
    area = (x1 - x0) * (y1 - y0)
    assert regions[0]["score"] == pytest.approx(area / 1e4, abs=1e-4)
    assert prediction["score"] == pytest.approx(np.mean([r["score"] for r in regions]))
    assert answer["unknown_classes"] == ["c"]
    predict(url, [task(LOCAL)], config())
    said = [m for m in logged if "are not labels of" in m]
    assert len(said) == 1 and "classes c " in said[0]  # once per config


def test_labels_match_by_predicted_values_and_case(url: str):
    labels = '<Label value="Alpha" predicted_values="a"/><Label value="B"/><Label value="C"/>'
    _, answer = predict(url, [task(LOCAL)], config(labels=labels))
    names = sorted(r["value"]["rectanglelabels"][0] for r in answer["results"][0]["result"])
    assert names == ["Alpha", "B", "C"] and "unknown_classes" not in answer


@pytest.mark.parametrize("tag,kind", [("PolygonLabels", "polygonlabels"), ("BrushLabels", "brushlabels")])
def test_masks_become_the_projects_polygons_or_brush_strokes(url: str, tag: str, kind: str):
    _, answer = predict(url, [task(LOCAL)], config(tag=tag))
    regions = {r["value"][kind][0]: r for r in answer["results"][0]["result"]}
    assert set(regions) == {"a", "b"} and all(r["type"] == kind for r in regions.values())
    x0, y0, x1, y1 = BOXES[2]
    if kind == "brushlabels":
        mask = brush.decode(regions["b"]["value"]["rle"], H, W)
        assert mask.sum() == (x1 - x0) * (y1 - y0) and mask[y0:y1, x0:x1].all()
    else:
        points = np.array(regions["b"]["value"]["points"]) / 100 * [W, H]
        assert points.min(0) == pytest.approx([x0, y0], abs=1.01) and points.max(0) == pytest.approx([x1, y1], abs=1.01)


def test_a_box_model_fills_a_polygon_only_project_with_box_corners(root: Path):
    backend = Backend(Oracle(masks=False), "boxes", TaskImages(root), log=lambda m: None)
    for url in serve(backend):
        _, answer = predict(url, [task(LOCAL)], config(tag="PolygonLabels"))
        points = {r["value"]["polygonlabels"][0]: r["value"]["points"] for r in answer["results"][0]["result"]}
        x0, y0, x1, y1 = BOXES[1]
        np.testing.assert_allclose(np.array(points["a"]) / 100 * [W, H], [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def test_an_unreadable_task_is_answered_with_its_error_and_the_others_predicted(url: str):
    tasks = [task(LOCAL, 1), task("/data/local-files/?d=../secret.png", 2),
             task("/data/local-files/?d=batch/images/missing.png", 3), {"id": 4, "data": {}}, task(LOCAL, 5)]
    status, answer = predict(url, tasks, config())
    assert status == 200 and len(answer["results"]) == 5
    first, climbing, missing, nothing, last = answer["results"]
    assert first["result"] and last["result"] == first["result"]
    assert "result" not in climbing and "not a file below the document root" in climbing["error"]
    assert climbing["task"] == 2
    assert "result" not in missing and "missing.png" in missing["error"]
    assert "result" not in nothing and "names no image" in nothing["error"]


def test_uploads_come_from_the_server_with_its_token_and_urls_as_they_are(root: Path):
    """A stand-in Label Studio: /data/upload/... answers only with the token; a second host serves plain URLs and
    must never see the token."""
    image, seen = painted(), []

    class Files(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.server.server_port, self.path, self.headers.get("Authorization")))
            if self.path.startswith("/tasks/1/presign/?fileuri="):  # a cloud URI: redirected to the bucket
                self.send_response(303)
                self.send_header("Location", f"{other}/plain/from-bucket.png")
                self.end_headers()
                return
            ok = self.path.startswith("/plain/") or self.headers.get("Authorization") in ("Token t0k3n", "Bearer acc")
            self.send_response(200 if ok else 401)
            self.end_headers()
            if ok:
                self.wfile.write(image)

        def do_POST(self):  # a personal access token (a JWT: the refresh token) exchanged for an access token
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ok = self.path == "/api/token/refresh/" and body == {"refresh": "pat.j.wt"}
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(json.dumps({"access": "acc"}).encode())

        def log_message(self, *args):
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Files) for _ in range(2)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    studio, other = (f"http://127.0.0.1:{s.server_port}" for s in servers)
    try:
        with_token = Backend(Oracle(), "v", TaskImages(None, Server(studio, "t0k3n")), log=lambda m: None)
        for url in serve(with_token):
            tasks = [task("/data/upload/3/0a1b2c3d-a.png", 4), task(f"{other}/plain/a.png", 2),
                     task(LOCAL, 3),  # no --ls-root: a local file is fetched from the server too
                     task("s3://bucket/a.png", 1)]
            _, answer = predict(url, tasks, config())
            assert all(r.get("result") for r in answer["results"]), answer
        assert (servers[0].server_port, "/data/upload/3/0a1b2c3d-a.png", "Token t0k3n") in seen
        assert (servers[1].server_port, "/plain/a.png", None) in seen
        assert (servers[1].server_port, "/plain/from-bucket.png", None) in seen  # the token stayed home
        personal = Backend(Oracle(), "v", TaskImages(None, Server(studio, "pat.j.wt")), log=lambda m: None)
        for url in serve(personal):
            _, answer = predict(url, [task("/data/upload/3/0a1b2c3d-a.png")] * 2, config())
            assert all(r.get("result") for r in answer["results"]), answer
        assert seen[-1][2] == "Bearer acc"
        without = Backend(Oracle(), "v", TaskImages(None, Server(studio, "wrong")), log=lambda m: None)
        for url in serve(without):
            _, answer = predict(url, [task("/data/upload/3/0a1b2c3d-a.png")], config())
            assert "401" in answer["results"][0]["error"] and "--ls-token" in answer["results"][0]["error"]
        from_setup = Backend(Oracle(), "v", TaskImages(), log=lambda m: None)  # the server named in /setup
        for url in serve(from_setup):
            _, answer = predict(url, [task("/data/upload/3/0a1b2c3d-a.png")], config())
            assert "--ls-host" in answer["results"][0]["error"]
            call(url, "/setup", {"project": "3.1700000000", "schema": config(), "hostname": studio,
                                 "access_token": "t0k3n"})
            _, answer = predict(url, [task("/data/upload/3/0a1b2c3d-a.png")], config())
            assert answer["results"][0]["result"]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def test_bad_requests_are_named_4xx(url: str):
    assert call(url, "/predict", raw=b"{not json")[0] == 400
    assert call(url, "/predict", raw=b"[1, 2]") == (400, {"error": "the body must be a JSON object"})
    status, answer = call(url, "/nowhere")
    assert status == 404 and "/predict" in answer["error"]
    assert call(url, "/predict", method="GET")[0] == 405
    assert call(url, "/predict", {"tasks": "x", "label_config": config()})[0] == 400
    status, answer = call(url, "/predict", {"tasks": [task(LOCAL)]})
    assert status == 400 and "labelling config" in answer["error"]
    status, answer = call(url, "/setup", {"project": "1.2", "schema": "<View><Text name='t' value='$t'/></View>"})
    assert status == 400 and "RectangleLabels" in answer["error"]
    status, answer = call(url, "/setup", {"project": "1.2", "schema": config(labels='<Label value="dog"/>')})
    assert status == 400 and "none of the model's classes" in answer["error"] and "predicted_values" in answer["error"]
    status, answer = call(url, "/setup", {"project": "1.2", "schema": "<View><Image"})
    assert status == 400 and "invalid XML" in answer["error"]
    status, answer = call(url, "/setup", {"project": "1.2", "schema": '<!DOCTYPE v [<!ENTITY e "x">]><View>&e;</View>'})
    assert status == 400 and "unsafe XML" in answer["error"]


def test_training_is_left_to_detft_train_and_other_events_are_ignored(url: str):
    status, answer = call(url, "/webhook", {"action": "START_TRAINING", "project": {"id": 3}})
    assert status == 501 and "detft train" in answer["error"]
    assert call(url, "/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 3}})[0] == 200
    assert call(url, "/train", {"annotations": [], "project": "3.1"})[0] == 501


def test_concurrent_requests_share_one_model(url: str, backend: Backend):
    def one(k: int) -> list:
        return predict(url, [task(LOCAL, k)], config())[1]["results"][0]["result"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert all(r == results[0] and len(r) == 2 for r in results)
    assert len(backend.predictor.calls) == 16


def test_the_document_root_and_server_come_from_label_studios_variables(root: Path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(root))
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://studio:8080/")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k")
    images = TaskImages.from_env()
    assert images.root == root and images.server == Server("http://studio:8080", "k")
    with pytest.raises(DetftError, match="--ls-host"):
        TaskImages.from_env(host="studio:8080")
    with pytest.raises(DetftError, match="--ls-root"):
        TaskImages.from_env(root=root / "nope")
