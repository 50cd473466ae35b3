"""YOLO through detft on CPU: tiny models from yaml (no download), det and seg, with no network at all."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

pytest.importorskip("ultralytics", reason="ultralytics is not installed")

import torch  # noqa: E402
from helpers import yolo_config  # noqa: E402

import detft  # noqa: E402
from detft import TrainConfig, train  # noqa: E402
from detft.errors import DetftError  # noqa: E402
from detft.families.yolo import augment_args, fingerprint  # noqa: E402
from detft.models import yolo as yolo_models  # noqa: E402


@pytest.fixture
def no_network(monkeypatch):
    """Every way out of the machine raises, and is counted."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("model,task", [("yolov8n.yaml", "detect"), ("yolov8n-seg.yaml", "segment")])
def test_tiny_yolo_trains_offline_and_evaluates_with_both_evaluators(tmp_path: Path, no_network, model, task):
    assert not torch.are_deterministic_algorithms_enabled()
    run = train(yolo_config(tmp_path, model))
    assert no_network == []  # not one connection attempt: fonts, AMP check, hub, updates all offline
    assert not torch.are_deterministic_algorithms_enabled()  # ultralytics' deterministic=True ended with the run
    for f in ("run.yaml", "ultralytics_args.yaml", "metrics.csv", "eval.json", "results.png", "ultralytics_results.png",
              "weights/best.pt", "weights/last.pt", "detections.json", "confusion_matrix.png"):
        assert (run / f).is_file(), f
    assert list(run.folder.glob("events.out.tfevents.*"))  # TensorBoard, as for R-CNN runs
    doc = json.loads((run / "eval.json").read_text())
    assert doc["overfitting"]["val_loss_min_epoch"] in (1, 2) and doc["errors"]["dAP"].keys() >= {"missed", "background"}
    info = detft.Run.open(run).info
    assert 0 < info.parameters["trainable"] <= info.parameters["total"]
    assert info.config.freeze == "none"  # --freeze auto from random init
    assert set(doc["metrics"]) == ({"bbox", "segm"} if task == "segment" else {"bbox"})
    assert "bbox_AP" in doc["ultralytics"] and ("segm_AP" in doc["ultralytics"]) == (task == "segment")
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "ultralytics_bbox_AP" in rows[0] and "loss_box" in rows[0]
    assert {"val_loss", "val_loss_box", "val_loss_cls"} <= set(rows[0].split(","))  # validation loss per epoch
    pred = detft.load(run, device="cpu", conf=0.001).predictor
    import numpy as np
    import ultralytics.nn.tasks

    assert ultralytics.nn.tasks.SAFE_LOAD  # detft's own run loaded through the restricted (weights_only) loader

    det = pred.predict([np.zeros((64, 64, 3), np.uint8)])[0]
    assert (det.masks is not None) == (task == "segment")
    assert set(det.labels.tolist()) <= {1, 2, 3}  # the dataset's category ids, not YOLO's 0-based classes


def test_the_same_command_trains_the_same_yolo_twice(tmp_path: Path):
    """The start's fresh layers are initialised from --seed: ultralytics copies them into the model it trains after
    seeding its own generator, so unseeded they made two runs of one command differ (bbox mAP50 0.16 vs 0.21)."""
    runs = [train(yolo_config(tmp_path, "yolov8n-seg.yaml", epochs=1, name=f"r{i}", augment="none")) for i in (0, 1)]
    a, b = (torch.load(r / "weights" / "last.pt", map_location="cpu", weights_only=False)["model"].state_dict()
            for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    import csv

    losses = [[{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader((r / "metrics.csv").open())]
              for r in runs]
    assert losses[0] == losses[1] and len(losses[0]) == 1


def with_callbacks(monkeypatch, **callbacks) -> None:
    """Make detft's YOLO trainer build models that carry these ultralytics callbacks (event=function)."""
    real_load = yolo_models.load_model

    def load(name: str, *args):
        model = real_load(name, *args)
        for event, fn in callbacks.items():
            model.add_callback(event, fn)
        return model

    monkeypatch.setattr(yolo_models, "load_model", load)


@pytest.fixture
def weight_probe(monkeypatch) -> dict[str, dict[str, torch.Tensor]]:
    """The live training model's state at the start and the end of ultralytics' training."""
    captured: dict[str, dict[str, torch.Tensor]] = {}

    def grab(key):
        return lambda trainer: captured.__setitem__(
            key, {k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    with_callbacks(monkeypatch, on_train_start=grab("start"), on_train_end=grab("end"))
    return captured


def test_frozen_backbone_and_its_bn_stats_stay_bit_identical(tmp_path: Path, weight_probe):
    real_load = yolo_models.load_model
    train(yolo_config(tmp_path, "yolov8n.yaml", freeze="backbone", epochs=1, augment="none"))
    captured = weight_probe
    nb = len(real_load("yolov8n.yaml").model.yaml["backbone"])
    assert nb == 10  # read from the model's yaml, not assumed
    start, end = captured["start"], captured["end"]
    frozen = [k for k in start if any(k.startswith(f"model.{i}.") for i in range(nb))]
    assert any(k.endswith("running_mean") for k in frozen)
    assert all(torch.equal(start[k], end[k]) for k in frozen)
    head = [k for k in start if k.startswith(f"model.{nb + 2}.") and k.endswith("weight")]
    assert head and any(not torch.equal(start[k], end[k]) for k in head)


def test_unfreeze_at_lets_the_backbone_train(tmp_path: Path, weight_probe, capsys):
    train(yolo_config(tmp_path, "yolov8n.yaml", freeze="backbone", unfreeze_at=1, epochs=2, augment="none"))
    assert "epoch 1: unfroze" in capsys.readouterr().out
    start, end = weight_probe["start"], weight_probe["end"]
    conv = [k for k in start if k.startswith("model.0.") and k.endswith("conv.weight")]
    assert conv and not torch.equal(start[conv[0]], end[conv[0]])


def test_resume_uses_the_runs_own_settings_and_refuses_a_finished_run(tmp_path: Path):
    run = train(yolo_config(tmp_path, "yolov8n.yaml", epochs=1, augment="none"))
    with pytest.raises(DetftError, match="already holds a run"):
        train(yolo_config(tmp_path, "yolov8n.yaml", epochs=1))
    with pytest.raises(DetftError, match="cannot resume .*finished"):
        train(TrainConfig(epochs=0), resume=str(run))  # CLI defaults: arch and data come from the run


def test_interrupted_run_resumes_to_the_end(tmp_path: Path, monkeypatch):
    def crash(trainer):
        if trainer.epoch == 0:  # last.pt of epoch 1 is on disk by now
            raise KeyboardInterrupt

    with_callbacks(monkeypatch, on_fit_epoch_end=crash)
    with pytest.raises(KeyboardInterrupt):
        train(yolo_config(tmp_path, "yolov8n.yaml", epochs=2, augment="none"))
    run = tmp_path / "runs" / "y"
    assert not (run / "eval.json").exists()
    monkeypatch.undo()
    train(TrainConfig(epochs=0), resume=str(run))
    assert (run / "eval.json").is_file()
    assert [r.split(",")[0] for r in (run / "metrics.csv").read_text().splitlines()[1:]] == ["1", "2"]


def test_missing_yolo_weights_say_what_to_download(tmp_path: Path):
    with pytest.raises(DetftError, match=r"(?s)yolo11n\.pt not found.*releases/download.*yolo11n\.yaml"):
        train(yolo_config(tmp_path, "yolo11n.pt"))


def test_converted_dataset_is_cached_until_the_source_changes(tmp_path: Path):
    from detft.operations.synthetic import generate

    src = tmp_path / "data"
    generate(src, n_train=4, n_val=2, size=64)
    a = fingerprint(src, "detect", 0)
    assert fingerprint(src, "detect", 0) == a and fingerprint(src, "segment", 0) != a
    f = src / "annotations" / "instances_train.json"
    f.write_text(f.read_text().replace('"version": "1"', '"version": "2"'))
    assert fingerprint(src, "detect", 0) != a


def test_augmentation_is_explicit():
    none = augment_args("none")
    assert all(v == 0.0 for k, v in none.items() if k != "augmentations")
    assert [type(t).__name__ for t in none["augmentations"]] == ["NoOp"]  # ultralytics' implicit Blur/CLAHE off
    default = augment_args(None)
    assert default["mosaic"] == 1.0 and default["fliplr"] == 0.5
    with pytest.raises(DetftError, match="unknown"):
        augment_args("rotate")


def test_device_strings_mean_the_same_gpu_for_ultralytics(monkeypatch, tmp_path: Path):
    import numpy as np
    from ultralytics import YOLO as UltralyticsYOLO

    from detft.families import yolo as yolo_family
    from detft.families.yolo import evaluate_run
    from detft.inference.yolo_predictor import YOLOPredictor
    from detft.models.labels import LabelMap
    from detft.util.devices import pick_device, ultralytics_device

    assert ultralytics_device("cpu") == "cpu"
    assert ultralytics_device(torch.device("cuda:1")) == ultralytics_device("1") == 1  # was 0 in evaluation
    assert ultralytics_device("0,1") == "0,1"  # ultralytics' own multi-GPU training
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert ultralytics_device(torch.device("cuda")) == 2
    with pytest.raises(DetftError, match="torchrun --nproc-per-node 2"):
        pick_device("0,1")  # the R-CNN family's one process per GPU
    with pytest.raises(DetftError, match="list of GPU indices"):
        pick_device("0,gpu")

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def called(name):
        def record(self, *args, **kwargs):
            seen[name] = kwargs.get("device")
            raise Stop

        return record

    for name in ("train", "val", "predict"):
        monkeypatch.setattr(UltralyticsYOLO, name, called(name))
    for device, index in (("cuda:1", 1), ("0,1", "0,1")):
        with pytest.raises(Stop):
            train(yolo_config(tmp_path, "yolov8n.yaml", device=device, name=device.replace(":", "")))
        assert seen.pop("train") == index, device
    monkeypatch.setenv("WORLD_SIZE", "2")  # started by torchrun: ultralytics would build a sampler with no group
    with pytest.raises(DetftError, match="without torchrun, with --device 0,1"):
        train(yolo_config(tmp_path, "yolov8n.yaml", name="torchrun"))
    monkeypatch.delenv("WORLD_SIZE")
    model = UltralyticsYOLO("yolov8n.yaml")
    with pytest.raises(Stop):
        YOLOPredictor(model, LabelMap((1,), ("a",), False), device=ultralytics_device("cuda:1")).predict(
            [np.zeros((8, 8, 3), np.uint8)])
    assert seen.pop("predict") == 1
    run = detft.Run(tmp_path / "runs" / "cuda1")  # evaluation after training on 0,1: on the first GPU
    monkeypatch.setattr(yolo_family, "load_checkpoint", lambda *a, **k: model)
    monkeypatch.setattr(detft.Run, "checkpoint", lambda self, which: tmp_path / "best.pt")
    with pytest.raises(Stop):
        evaluate_run(run, None, [], run.info.config.replace(device="0,1"))
    assert seen.pop("val") == 0


def test_the_amp_check_on_cuda_never_downloads(no_network, monkeypatch, tmp_path: Path):
    """ultralytics' check_amp loads yolo26n.pt by name (a download) once the model is on CUDA; detft's replaces it.
    The device is faked here so the CUDA branch runs: the model itself, under autocast, is what gets checked."""
    from ultralytics.engine import trainer as engine
    from ultralytics.nn.tasks import DetectionModel

    from detft.models import yolo_trainers

    assert engine.check_amp is yolo_trainers.check_amp  # the name ultralytics' BaseTrainer._setup_train calls
    monkeypatch.chdir(tmp_path)
    model = DetectionModel("yolov8n.yaml", nc=2, verbose=False)
    assert engine.check_amp(model) is False  # on the CPU: off, as ultralytics decides
    monkeypatch.setattr(yolo_trainers, "model_device", lambda m: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H100 80GB HBM3")
    assert engine.check_amp(model) is True
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA GeForce GTX 1660 Ti")
    assert engine.check_amp(model) is False  # ultralytics' list of GPUs that break fp16
    assert no_network == [] and not list(tmp_path.iterdir())  # nothing fetched, no ./weights/yolo26n.pt
