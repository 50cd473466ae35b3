"""MLflow tracking (``train --mlflow``) against a real MLflow server the test starts on 127.0.0.1 (a sqlite store, the
artifacts served by it), everything read back through MLflow's own client; and the default ``./mlruns`` file store.

The server runs from a virtual environment of its own (mlflow with its web stack, which detft's does not carry): the
``mlflow`` that DETFT_MLFLOW_SERVER names, else ``.venv-mlflow/bin/mlflow`` in the checkout (.ci/run makes it).
Without it, or without the client (the ``mlflow`` extra), these tests skip, except under CI, where they fail."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
from helpers import config, free_port, make_data, yolo_config

import detft
from detft.config import TrainConfig
from detft.engine.mlflow_log import FILE_STORE_ENV, MLflowTracker, final_metrics, params_of
from detft.engine.tracking import NO_TRACKING, open_tracker
from detft.engine.trainer import Trainer
from detft.errors import DetftError
from detft.models.labels import LabelMap
from detft.runs import Run, RunInfo

REPO = Path(__file__).resolve().parents[1]
# what .ci/run installs into .venv-mlflow: mlflow 3.18.0 needs mlflow-tracing 3.18.0, which the registry lacks
SERVER_VERSION = "3.17.2"


def missing(reason: str) -> None:
    """Skip, but never in CI: there, a test that cannot run is a failure, not a silent pass."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, and the MLflow tests must run there)")
    pytest.skip(reason)


def need_client() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        missing("the MLflow client is not installed (pip install 'detft[mlflow]')")


@pytest.fixture
def client_installed() -> None:
    need_client()


@pytest.fixture(autouse=True)
def no_tracking_env(monkeypatch) -> None:
    """Nothing from the developer's shell decides where a test's runs go."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", FILE_STORE_ENV):
        monkeypatch.setenv(name, "")  # recorded, so what detft sets during the test is undone after it
        monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """A real ``mlflow server`` on a free port of 127.0.0.1, stopped after the module's tests."""
    need_client()
    binary = Path(os.environ.get("DETFT_MLFLOW_SERVER") or REPO / ".venv-mlflow" / "bin" / "mlflow")
    if not binary.is_file():
        missing(f"no MLflow server at {binary}: python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install "
                f"mlflow=={SERVER_VERSION} (or name its mlflow with DETFT_MLFLOW_SERVER)")
    root = tmp_path_factory.mktemp("mlflow-server")
    uri = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen([str(binary), "server", "--host", "127.0.0.1", "--port", uri.rsplit(":", 1)[1],
                                 "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                                 "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"mlflow server exited ({proc.returncode}):\n"
                                f"{(root / 'server.log').read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow server not healthy after 180 s:\n{(root / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
            yield uri
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and the workers it started
            try:
                proc.wait(5)  # its store is thrown away: no need to wait out a slow graceful stop
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def experiment(monkeypatch, request) -> str:
    """An MLflow experiment of the test's own, so it can count its runs."""
    name = f"detft-{request.node.name}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
    return name


def record(run: Run) -> dict[str, str]:
    return json.loads(run.tracking_file.read_text())


def steps(client, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def artifact_paths(client, run_id: str) -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id):
        out |= {a.path for a in client.list_artifacts(run_id, item.path)} if item.is_dir else {item.path}
    return out


def expected_final(run: Run) -> dict[str, float]:
    doc = json.loads((run / "eval.json").read_text())
    return final_metrics(doc)


@pytest.mark.slow
def test_an_rcnn_run_and_its_resume_are_one_mlflow_run_read_back_from_a_real_server(tmp_path: Path, server: str,
                                                                                    experiment: str, capsys):
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    data = make_data(tmp_path / "data", n=4)
    run = detft.train(config(data, tmp_path, name="r", epochs=2), mlflow=server)
    rec = record(run)
    assert rec["uri"] == server and f"tracking in MLflow run {rec['run_id']} at {server}" in capsys.readouterr().out
    client = MlflowClient(server)
    got = client.get_run(rec["run_id"])
    assert got.info.status == "FINISHED" and got.info.run_name == "r"
    assert client.get_experiment(got.info.experiment_id).name == experiment
    params = got.data.params
    assert {f.name for f in fields(TrainConfig)} <= set(params)
    assert params["epochs"] == "2" and params["model"] == "tiny_fasterrcnn" and params["num_classes"] == "3"
    assert params["classes"] == ", ".join(run.info.labels.names)
    tags = got.data.tags
    assert tags["detft.family"] == "rcnn" and tags["detft.task"] == "detect" and tags["detft.start"] == "none"
    assert tags["detft.version"] == detft.__version__ and len(tags["detft.data_fingerprint"]) == 16
    assert tags["detft.run_folder"] == str(run.folder.resolve())
    for key in ("loss", "loss_classifier", "val_loss", "bbox_AP", "bbox_AP50", "lr"):
        assert steps(client, rec["run_id"], key) == [1, 2], key  # one step per epoch
    final = expected_final(run)
    assert {"eval/bbox_AP", "eval/bbox_AP50", "eval/bbox_AP75"} <= set(final)
    assert any(k.startswith("ap_bbox/") for k in final)
    assert {k: got.data.metrics[k] for k in final} == pytest.approx(final)
    assert artifact_paths(client, rec["run_id"]) >= {"eval.json", "run.yaml", "metrics.csv", "plots/results.png",
                                                      "weights/best.pt"}
    served = download_artifacts(run_id=rec["run_id"], artifact_path="eval.json", dst_path=str(tmp_path / "dl"),
                                tracking_uri=server)
    assert Path(served).read_bytes() == (run / "eval.json").read_bytes()

    # --resume with no --mlflow: the run folder says where it was tracked, and the same MLflow run continues
    resumed = detft.train(resume=run, epochs=3)
    assert record(resumed) == rec
    again = client.get_run(rec["run_id"])
    assert again.info.status == "FINISHED" and steps(client, rec["run_id"], "loss") == [1, 2, 3]
    assert again.data.params["epochs"] == "2" and again.data.tags["resume.epochs"] == "3"  # MLflow params never change
    assert len(client.search_runs([got.info.experiment_id])) == 1


@pytest.mark.slow
def test_a_yolo_run_killed_and_resumed_is_one_mlflow_run_read_back_from_a_real_server(tmp_path: Path, server: str,
                                                                                     experiment: str, monkeypatch):
    pytest.importorskip("ultralytics", reason="ultralytics is not installed")
    from mlflow import MlflowClient

    logged = MLflowTracker.log_epoch

    def ctrl_c_after_the_first_epoch(self, row):  # ultralytics has saved that epoch's last.pt by now
        logged(self, row)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(MLflowTracker, "log_epoch", ctrl_c_after_the_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            detft.train(yolo_config(tmp_path, "yolov8n-seg.yaml", augment="none"), mlflow=server)
    folder = Run(tmp_path / "runs" / "y")
    rec = record(folder)
    client = MlflowClient(server)
    assert client.get_run(rec["run_id"]).info.status == "KILLED"

    run = detft.train(resume=folder)  # no --mlflow: the run folder says where it was tracked
    assert record(run) == rec
    got = client.get_run(rec["run_id"])
    assert got.info.status == "FINISHED"
    assert got.data.tags["detft.family"] == "yolo" and got.data.tags["detft.task"] == "segment"
    assert got.data.params["arch"] == "yolo" and got.data.params["epochs"] == "2"
    for key in ("loss", "loss_box", "val_loss", "ultralytics_bbox_AP", "ultralytics_segm_AP", "lr/pg0"):
        assert steps(client, rec["run_id"], key) == [1, 2], key  # ultralytics' final validation adds no step
    final = expected_final(run)
    assert {"eval/bbox_AP", "eval/segm_AP"} <= set(final) and any(k.startswith("ap_segm/") for k in final)
    assert {k: got.data.metrics[k] for k in final} == pytest.approx(final)
    assert artifact_paths(client, rec["run_id"]) >= {"eval.json", "run.yaml", "metrics.csv", "plots/results.png",
                                                      "weights/best.pt"}
    # one run: ultralytics' own MLflow callback, which would log a second, stays off
    assert len(client.search_runs([got.info.experiment_id])) == 1


@pytest.mark.slow
@pytest.mark.parametrize("error,status", [(RuntimeError("validation broke"), "FAILED"),
                                          (KeyboardInterrupt(), "KILLED")])
def test_a_run_that_fails_is_marked_failed_and_ctrl_c_killed(tmp_path: Path, server: str, experiment: str,
                                                             monkeypatch, error, status):
    from mlflow import MlflowClient

    def validate(self, row):
        raise error

    monkeypatch.setattr(Trainer, "validate", validate)
    with pytest.raises(type(error)):
        detft.train(config(make_data(tmp_path / "data", n=4), tmp_path, name="f", epochs=2), mlflow=server)
    got = MlflowClient(server).get_run(record(Run(tmp_path / "runs" / "f"))["run_id"])
    assert got.info.status == status and got.data.tags["detft.error"].startswith(type(error).__name__)


def test_without_a_uri_the_run_goes_to_a_mlruns_file_store_in_the_working_folder(tmp_path: Path, client_installed,
                                                                               monkeypatch, capsys):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    run = detft.train(config(make_data(tmp_path / "data", n=4), tmp_path, name="local"), mlflow=True)
    rec = record(run)
    assert rec["uri"] == (tmp_path / "mlruns").resolve().as_uri()  # whole, so a resume from elsewhere finds it
    out = capsys.readouterr().out
    assert "a local file store" in out and f"{FILE_STORE_ENV}=true mlflow ui --backend-store-uri {rec['uri']}" in out
    client = MlflowClient(rec["uri"])
    assert client.get_run(rec["run_id"]).info.status == "FINISHED"
    assert steps(client, rec["run_id"], "loss") == [1] and "weights/best.pt" in artifact_paths(client, rec["run_id"])


def test_a_server_that_does_not_answer_stops_the_run_before_its_first_epoch(tmp_path: Path, client_installed, capsys):
    from detft.cli import main
    from detft.errors import ExitCode

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    data = make_data(tmp_path / "data", n=4)
    code = main(["train", "--data", str(data), "--model", "tiny_fasterrcnn", "--weights", "none", "--epochs", "1",
                 "--imgsz", "96", "--workers", "0", "--project", str(tmp_path / "runs"), "--name", "x", "--mlflow", uri])
    # said by detft's one look at /health, not after the client's 4 minutes of retries
    assert code == ExitCode.ERROR and f"MLflow server {uri} (--mlflow) does not answer" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "x" / "metrics.csv").exists()


def test_a_tracking_uri_in_the_environment_turns_tracking_on_and_no_mlflow_keeps_it_off(tmp_path: Path,
                                                                                      client_installed, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(tmp_path / "store"))
    tracker = open_tracker(None)
    assert isinstance(tracker, MLflowTracker) and tracker.why == "MLFLOW_TRACKING_URI"
    assert tracker.uri == (tmp_path / "store").as_uri()
    assert open_tracker(False) is NO_TRACKING  # --no-mlflow
    assert open_tracker("http://mlflow.example:5000").uri == "http://mlflow.example:5000"  # --mlflow URI wins


def test_asking_for_mlflow_without_its_client_names_the_extra_before_anything_is_read(tmp_path: Path, monkeypatch,
                                                                                      capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(DetftError, match=r"pip install 'detft\[mlflow\]'"):
        detft.train(data=str(tmp_path / "no such data"), mlflow=True)
    # a tracking URI merely set in the environment (for other tools, perhaps) is a note, not an error
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert open_tracker(None) is NO_TRACKING
    assert "not tracking in MLflow (MLFLOW_TRACKING_URI: http://127.0.0.1:5000)" in capsys.readouterr().out
    assert open_tracker(False) is NO_TRACKING


def test_metric_and_param_names_and_values_are_what_mlflow_takes(client_installed):
    per_class = [{"id": 1, "name": "traffic light", "AP": 0.5}, {"id": 2, "name": "a/b", "AP": 0.25},
                 {"id": 3, "name": "a_b", "AP": 0.75}, {"id": 4, "name": "狗", "AP": 0.1},
                 {"id": 5, "name": "never in val", "AP": -1.0}]
    doc = {"metrics": {"bbox": {"stats": {"AP": 0.4, "APl": -1.0}, "per_class": per_class}}}
    assert final_metrics(doc) == {"eval/bbox_AP": 0.4, "ap_bbox/traffic_light": 0.5, "ap_bbox/a_b": 0.25,
                                  "ap_bbox/a_b_3": 0.75, "ap_bbox/狗": 0.1}  # -1: COCO could not compute it
    names = tuple(f"class number {i}" for i in range(100))
    info = RunInfo(family="rcnn", model="m", task="detect", labels=LabelMap(tuple(range(1, 101)), names),
                   config=TrainConfig(), split={"rule": "seeded 80/20", "seed": 3})
    params = params_of(info)
    assert len(params["classes"]) == 500 and params["classes"].endswith("...")  # MLflow's value limit
    assert params["split.seed"] == "3" and params["num_classes"] == "100" and params["data"] == "None"
    tracker = MLflowTracker("http://127.0.0.1:1", "--mlflow", None)
    tracker.client()
    copy = pickle.loads(pickle.dumps(tracker))  # ultralytics hands its callbacks to its DDP processes pickled
    assert copy.uri == tracker.uri and copy._client is None
