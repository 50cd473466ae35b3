"""Against a real Label Studio server (#44 item 4): one server on 127.0.0.1 serves two detft outputs written with
``--ls-root`` under its one document root (a Local Storage each, no hand edits); a project made from detft's
labelling config imports detft's tasks, another detft's pre-labels (accepted as annotations); ``detft serve``
connected as a project's ML backend gives predictions through the server; the exports JSON, JSON-MIN, COCO and YOLO
are read back by detft with the counts written.

The server is the ``label-studio`` program of a separate venv (its pins clash with detft's): $DETFT_LABEL_STUDIO, else
``.venv-ls/bin/label-studio`` (made by .ci/run). Without it the module skips, except under CI (``CI`` set), where it
fails. One server start for the module (~40 s: migrations of a fresh database; detft's own work runs meanwhile): the
module takes ~80 s on 2 busy cores."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import config, free_port, make_data

import detft
from detft.annotations.report import Report
from detft.cli import main
from detft.operations.convert import load

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TOKEN = "detft-test-token-0123456789"
STARTUP_S = 240


def label_studio() -> Path:
    """The label-studio program, or the module skipped (failed under CI) saying where it was looked for."""
    given = os.environ.get("DETFT_LABEL_STUDIO")
    exe = Path(given) if given else REPO / ".venv-ls" / "bin" / "label-studio"
    if exe.is_file():
        return exe
    why = (f"no label-studio program at {exe} (set DETFT_LABEL_STUDIO, or: python3 -m venv .venv-ls && "
           ".venv-ls/bin/pip install label-studio==1.23.2 'sentry-sdk<3', as .ci/run does)")
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the real-server test: {why}")
    pytest.skip(why)


def wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url}: the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"{url}: not up after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """The process group this test started (the server and any child of it), ended."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Studio:
    url: str
    root: Path  # its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
    proc: subprocess.Popen
    log: Path

    def ready(self) -> None:
        """Up: waited for once (the module's detft work runs while the server starts)."""
        started = time.monotonic()
        wait_for(f"{self.url}/health", self.proc, self.log, STARTUP_S)
        print(f"label-studio ready after {time.monotonic() - started:.1f} s more")

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Token {TOKEN}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api(self, method: str, path: str, body=None):
        status, data = self.call(method, path, body)
        assert status < 300, f"{method} {path}: {status} {data[:1000]!r}"
        return json.loads(data) if data else None

    def project(self, title: str, out: Path) -> int:
        """A project from a detft output: its labelling config, a Local Storage of its images (not synced: the
        tasks name them), its tasks imported."""
        pid = self.api("POST", "/api/projects", {"title": title,
                                                 "label_config": (out / "labeling_config.xml").read_text()})["id"]
        self.api("POST", "/api/storages/localfiles", {"project": pid, "title": title, "path": str(out / "images"),
                                                      "use_blob_urls": False})
        self.api("POST", f"/api/projects/{pid}/import", json.loads((out / "tasks.json").read_text()))
        return pid

    def tasks(self, pid: int) -> list[dict]:
        return self.api("GET", f"/api/tasks?project={pid}&page_size=1000&fields=all")["tasks"]

    def export(self, pid: int, kind: str, folder: Path) -> Path:
        """Export ``kind`` saved as a user saves it: a JSON file into ``folder`` (its path returned), a zip unpacked
        there (the folder returned)."""
        status, data = self.call("GET", f"/api/projects/{pid}/export?exportType={kind}")
        assert status == 200, data[:500]
        folder.mkdir(parents=True, exist_ok=True)
        if data[:2] == b"PK":
            zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
            return folder
        (folder / f"project-{pid}-{kind.lower()}.json").write_bytes(data)
        return folder / f"project-{pid}-{kind.lower()}.json"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    exe = label_studio()
    home = tmp_path_factory.mktemp("studio")
    root = home / "root"
    root.mkdir()
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(home / "data"),
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(root),
           # detft serve listens on 127.0.0.1, which the server refuses as an ML backend's address (ML_BLOCK_LOCAL_IP) and,
           # in 1.23.2 whatever that says, as the address of the backend's webhook (its default banned subnets)
           "LABEL_STUDIO_ML_BLOCK_LOCAL_IP": "false", "LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS": "false",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false",  # no network
           "COLLECT_ANALYTICS": "false"}
    log = home / "label-studio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
                                 "--username", "detft@example.com", "--password", "detft-test-pass",
                                 "--user-token", TOKEN, "--enable-legacy-api-token"],
                                cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Studio(f"http://127.0.0.1:{port}", root, proc, log)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def written(studio: Studio, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two detft outputs under the server's root, written by the CLI with --ls-root: a dataset converted to tasks,
    and a tiny model's pre-labels of its val images."""
    work = tmp_path_factory.mktemp("detft")
    run = detft.train(config(make_data(work / "train", n=4), work, epochs=1, name="tiny"))
    photos = make_data(work / "photos", n=4, val_is_train=False)
    assert main(["convert", str(photos), str(studio.root / "annotated"), "--to", "labelstudio",
                 "--ls-root", str(studio.root)]) == 0
    assert main(["predict", "--weights", str(run.folder), "--source", str(photos / "images" / "val"),
                 "--conf", "auto", "--save-labels", "labelstudio", str(studio.root / "team" / "prelabels"),
                 "--ls-root", str(studio.root)]) == 0
    return {"run": run, "photos": photos,
            "annotated": load(studio.root / "annotated", "labelstudio", Report()),
            "prelabels": load(studio.root / "team" / "prelabels", "labelstudio", Report())}


@pytest.fixture(scope="module")
def projects(studio: Studio, written: dict) -> dict[str, int]:
    studio.ready()
    return {name: studio.project(name, studio.root / path) for name, path in
            (("annotated", "annotated"), ("prelabels", "team/prelabels"))}


def test_one_server_serves_two_outputs_under_its_root(studio: Studio, written: dict, projects: dict[str, int]):
    for name, pid in projects.items():
        tasks = studio.tasks(pid)
        assert len(tasks) == len(written[name].images) == (4 if name == "prelabels" else 8)
        for task in tasks:
            status, data = studio.call("GET", task["data"]["image"])
            assert status == 200 and data[:3] == b"\xff\xd8\xff", (name, task["data"]["image"], status)
    prelabelled = studio.tasks(projects["prelabels"])
    versions = {p["model_version"] for t in prelabelled for p in t["predictions"]}
    assert versions == {"tiny"}
    regions = sum(len(p["result"]) for t in prelabelled for p in t["predictions"])
    assert regions == written["prelabels"].num_annotations


def test_detft_serve_predicts_a_projects_tasks_through_the_server(studio: Studio, written: dict,
                                                                   projects: dict[str, int], tmp_path: Path):
    port = free_port()
    log = tmp_path / "serve.log"
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import tiny_models; from detft.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, str(REPO / "tests"), "serve", "--weights",
                                 str(written["run"].folder), "--conf", "auto", "--port", str(port), "--ls-root",
                                 str(studio.root), "--device", "cpu"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc, log, 120)
        pid = projects["annotated"]
        backend = studio.api("POST", "/api/ml", {"project": pid, "url": f"http://127.0.0.1:{port}", "title": "detft"})
        assert backend["state"] == "CO", backend  # connected: /health and /setup with the project's config answered
        test = studio.api("POST", f"/api/ml/{backend['id']}/predict/test?random=true")
        assert test["status"] == 200 and len(test["response"]) == 1 and "result" in test["response"][0], test
        studio.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
                   {"selectedItems": {"all": True, "excluded": []}})
        tasks = studio.tasks(pid)
        model = detft.load(written["run"], conf="auto", device="cpu")
        expected = {Path(im.file_name).name: len(model.predict(im.path)[0]) for im in written["annotated"].images}
        got = {}
        for task in tasks:
            [prediction] = [p for p in task["predictions"] if p["model_version"] == "tiny"]
            assert {(r["from_name"], r["to_name"], r["type"]) for r in prediction["result"]} <= {
                ("label", "image", "rectanglelabels")}  # the config's box tag: a box model's regions
            got[task["data"]["image"].rsplit("/", 1)[1]] = len(prediction["result"])
        assert got == expected and sum(got.values()) > 0
    finally:
        stop(proc)
        print(log.read_text()[-2000:])


def splits(dataset) -> dict[str, int]:
    return {s: len(dataset.images_in(s)) for s in dataset.splits()}




@pytest.mark.parametrize("kind", ["JSON", "JSON_MIN", "COCO", "YOLO"])
def test_each_export_reads_back_with_the_counts_written(studio: Studio, written: dict, projects: dict[str, int],
                                                       tmp_path: Path, kind: str):
    """JSON and JSON-MIN saved into the output beside tasks.json (as docs/labelling.md says) and named; COCO and YOLO
    (exported without images) unpacked into a folder of their own, read with the output's images/ as --images-dir."""
    out, report = studio.root / "annotated", Report()
    if kind.startswith("JSON"):
        back = load(studio.export(projects["annotated"], kind, out), "labelstudio", report)
    else:
        back = load(studio.export(projects["annotated"], kind, tmp_path / kind.lower()), None, report,
                    images_dir=out / "images")
    want = written["annotated"]
    assert (len(back.images), back.num_annotations) == (len(want.images), want.num_annotations), report.summary()
    assert {c.name for c in back.categories} == {c.name for c in want.categories}
    if kind.startswith("JSON"):  # the tasks' data keeps detft's split
        assert splits(back) == splits(want)


def test_accepted_prelabels_export_as_the_annotations_detft_wrote(studio: Studio, written: dict,
                                                                  projects: dict[str, int], tmp_path: Path):
    pid = projects["prelabels"]
    studio.api("POST", f"/api/dm/actions?id=predictions_to_annotations&project={pid}",
               {"selectedItems": {"all": True, "excluded": []}, "model_version": "tiny"})
    folder = studio.export(pid, "JSON", tmp_path / "accepted")
    back = load(folder, "labelstudio", Report(), images_dir=studio.root / "team" / "prelabels" / "images")
    assert len(back.images) == len({t["id"] for t in studio.tasks(pid) if t["annotations"]})
    assert back.num_annotations == written["prelabels"].num_annotations
