"""R-CNN fine-tuning: freezing proven bit for bit, exact resume, overfitting, empty images, weights."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn / tiny_maskrcnn)
import torch
from helpers import config, make_data

import detft
from detft import train
from detft.engine import checkpoint
from detft.engine.trainer import Trainer
from detft.errors import DetftError
from detft.models.defaults import AUTO, pretraining
from detft.models.registry import resolve


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_backbone_and_bn_stats_are_bit_identical_and_heads_train(tmp_path: Path):
    data = make_data(tmp_path / "data")
    trainer = Trainer(config(data, tmp_path, freeze="backbone", augment="flip,scale,color"))
    trainer.setup()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.model.backbone.body.modules())
    backbone, heads = snapshot(trainer.model.backbone), snapshot(trainer.model.roi_heads)
    assert any("running_mean" in k for k in backbone)  # BN statistics are part of the comparison
    trainer.train_epoch(0)
    trainer.train_epoch(1)
    after = trainer.model.backbone.state_dict()
    assert all(torch.equal(backbone[k], after[k]) for k in backbone)
    changed = [k for k, v in trainer.model.roi_heads.state_dict().items() if not torch.equal(heads[k], v)]
    assert any("box_predictor" in k for k in changed)


def test_unfreeze_at_trains_backbone_from_that_epoch_with_lower_lr(tmp_path: Path):
    data = make_data(tmp_path / "data")
    trainer = Trainer(config(data, tmp_path, freeze="1", unfreeze_at=1, backbone_lr_factor=0.5, epochs=2))
    trainer.setup()
    stem = snapshot(trainer.model.backbone.body.stem)
    layer1 = snapshot(trainer.model.backbone.body.layer1)
    trainer.train_epoch(0)
    assert all(torch.equal(stem[k], v) for k, v in trainer.model.backbone.body.stem.state_dict().items())
    assert not torch.equal(layer1["0.weight"], trainer.model.backbone.body.layer1.state_dict()["0.weight"])
    trainer.train_epoch(1)
    now = trainer.model.backbone.body.stem.state_dict()
    assert not torch.equal(stem["0.weight"], now["0.weight"])  # conv trains after unfreezing
    assert torch.equal(stem["1.running_mean"], now["1.running_mean"])  # frozen BN statistics stay frozen
    groups = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert groups["frozen"] == pytest.approx(groups["trainable"] * 0.5)


def test_trainable_backbone_layers_learn_at_the_backbone_factor(tmp_path: Path):
    data = make_data(tmp_path / "data")
    trainer = Trainer(config(data, tmp_path, freeze="1", backbone_lr_factor=0.25, lr=0.004))
    trainer.setup()
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert list(groups) == ["trainable", "backbone", "frozen"]
    assert groups["backbone"]["lr"] == groups["frozen"]["lr"] == pytest.approx(0.001)
    assert groups["trainable"]["lr"] == pytest.approx(0.004)
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    model = trainer.model
    assert {id(p) for p in model.backbone.body.layer1.parameters()} <= ids["backbone"]
    assert {id(p) for p in model.roi_heads.parameters()} <= ids["trainable"]
    assert {id(p) for p in model.backbone.body.stem.parameters()} <= ids["frozen"]


@pytest.mark.parametrize("model", ["tiny_fasterrcnn", "tiny_maskrcnn"])
def test_overfits_eight_images(tmp_path: Path, model: str):
    data = make_data(tmp_path / "data")
    arch = "maskrcnn" if "mask" in model else "fasterrcnn"
    run = train(config(data, tmp_path, arch=arch, model=model, epochs=60, freeze="none", conf=0.05))
    doc = json.loads((run / "eval.json").read_text())
    assert doc["metrics"]["bbox"]["stats"]["AP50"] > 0.9
    if arch == "maskrcnn":
        assert doc["metrics"]["segm"]["stats"]["AP50"] > 0.9
    for f in ("run.yaml", "metrics.csv", "results.png", "weights/best.pt", "weights/last.pt"):
        assert (run / f).is_file(), f
    # the checkpoint predicts through the shared Predictor interface
    pred = detft.load(run, device="cpu", conf=0.5).predictor
    from detft.annotations.images import read_rgb
    from detft.annotations.report import Report
    from detft.operations.convert import load

    image = load(data, None, Report()).images[0]
    det = pred.predict([read_rgb(image)])[0]
    assert set(det.labels.tolist()) <= {1, 2, 3} and (det.masks is not None) == (arch == "maskrcnn")


def test_images_without_objects_train_with_finite_loss(tmp_path: Path):
    data = make_data(tmp_path / "data", n=6)
    for split in ("train", "val"):
        f = data / "annotations" / f"instances_{split}.json"
        doc = json.loads(f.read_text())
        doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] == 1]  # one image keeps its objects
        f.write_text(json.dumps(doc))
    run = train(config(data, tmp_path, model="tiny_maskrcnn", arch="maskrcnn", epochs=2, augment="flip,scale"))
    import csv

    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 2
    losses = {k: float(v) for r in rows for k, v in r.items() if k.startswith(("loss", "val_loss"))}
    assert {"loss", "loss_mask", "val_loss"} <= set(losses) and all(np.isfinite(v) for v in losses.values()), losses


def test_resume_extends_epochs_and_refuses_a_finished_run(tmp_path: Path):
    data = make_data(tmp_path / "data", val_is_train=False)
    run = train(config(data, tmp_path, name="b", epochs=2))
    with pytest.raises(DetftError, match="already finished"):
        train(config(data, tmp_path, epochs=2), resume=str(run))
    resumed = train(config(data, tmp_path, epochs=3), resume=str(run))
    last = checkpoint.load(resumed / "weights" / "last.pt")
    assert last["epoch"] == 2 and [r["epoch"] for r in last["rows"]] == [1, 2, 3]
    assert len((resumed / "metrics.csv").read_text().splitlines()) == 4


def test_resume_after_interruption_is_bit_identical(tmp_path: Path):
    data = make_data(tmp_path / "data", val_is_train=False)
    full = train(config(data, tmp_path, name="full", epochs=2, augment="flip,scale,color", schedule="cosine"))
    part = config(data, tmp_path, name="part", epochs=2, augment="flip,scale,color", schedule="cosine")
    trainer = Trainer(part)
    trainer.setup()
    trainer.epochs = 1  # stop after one epoch, as a crash or Ctrl-C would
    trainer.fit()
    resumed = train(config(data, tmp_path, epochs=2), resume=str(tmp_path / "runs" / "part"))
    a = checkpoint.load(full / "weights" / "last.pt")["model"]
    b = checkpoint.load(resumed / "weights" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_freeze_auto_follows_what_the_start_learnt(tmp_path: Path):
    assert pretraining("none", "imagenet") == pretraining(None, "detector") == "none"
    assert pretraining("DEFAULT", "imagenet") == pretraining("backbone:IMAGENET1K_V2", "detector") == "imagenet"
    assert pretraining("DEFAULT", "detector") == pretraining("COCO_V1", "imagenet") == "detector"
    assert pretraining("runs/x/weights/best.pt", "imagenet") == "detector"  # a detector checkpoint
    assert resolve("fasterrcnn_mobilenet_v2_fpn").pretraining == "imagenet"
    assert resolve("fasterrcnn_resnet50_fpn_v2").pretraining == "detector"
    assert (AUTO["detector"].freeze, AUTO["detector"].box_head) == ("backbone", "default")  # kept as learnt
    trainer = Trainer(config(make_data(tmp_path / "data"), tmp_path, lr=0.004))  # random init, --freeze auto
    trainer.setup()
    assert trainer.cfg.freeze == "none" and trainer.info().config.freeze == "none"  # run.yaml says what it was
    assert trainer.cfg.box_head == "default" and "box_head" not in trainer.info().model_kwargs
    assert trainer.cfg.roi_batch is None  # the model's own sampling: only an ImageNet start changes it
    assert {g["name"]: g["lr"] for g in trainer.optimizer.param_groups} == \
        {"trainable": pytest.approx(0.004), "backbone": pytest.approx(0.004)}  # nothing learnt to protect


def test_resuming_a_run_whose_optimizer_has_other_groups_is_a_named_error(tmp_path: Path):
    data = make_data(tmp_path / "data")
    run = train(config(data, tmp_path, freeze="none"))
    last = checkpoint.load(run / "weights" / "last.pt")
    groups = last["optimizer"]["param_groups"]  # as a detft that trained the backbone at the heads' rate saved it
    last["optimizer"]["param_groups"] = [{**groups[0], "params": [i for g in groups for i in g["params"]]}]
    checkpoint.save(run / "weights" / "last.pt", last)
    with pytest.raises(DetftError, match=r"parameter groups \['trainable'\].*backbone-lr-factor"):
        train(config(data, tmp_path, epochs=2), resume=str(run))


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_320_fpn", "maskrcnn_resnet50_fpn_v2"])
def test_registry_models_train_one_step_and_predict(name: str):
    spec = resolve(name)
    model = spec.build(num_classes=4, weights="none", min_size=64, max_size=64)
    from detft.models.freeze import freeze, param_counts

    freeze(model, "backbone")
    trainable, total = param_counts(model)
    assert 0 < trainable < total
    model.train()
    img = torch.rand(3, 64, 80)
    target = {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([2])}
    if spec.masks:
        target["masks"] = torch.zeros(1, 64, 80, dtype=torch.uint8)
        target["masks"][0, 6:50, 5:40] = 1
    losses = model([img], [target])
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    from detft.inference.predictor import RCNNPredictor
    from detft.models.labels import LabelMap

    pred = RCNNPredictor(model, LabelMap((10, 20, 30), ("a", "b", "c")), "cpu")
    det = pred.predict([np.zeros((64, 80, 3), np.uint8)])[0]
    assert det.boxes.shape[1] == 4 and set(det.labels.tolist()) <= {10, 20, 30}
    assert (det.masks is not None) == spec.masks


def test_offline_pretrained_weights_give_a_clear_message(monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(DetftError, match=r"(?s)offline.*fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9\.pth.*checkpoints"):
        resolve("fasterrcnn_mobilenet_v3_large_320_fpn").build(num_classes=3, weights="DEFAULT")


def test_an_offline_coco_start_names_the_exact_command_of_each_offline_start_installed(
        monkeypatch, tmp_path: Path, capsys):
    from detft.cli import main
    from detft.models import packaged

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    monkeypatch.setattr(packaged, "available", lambda name: name in ("mobilenet_v2", "yolo11n-coco"))
    data = make_data(tmp_path / "data", n=2)
    argv = ["train", "--data", str(data), "--epochs", "1", "--weights", "COCO_V1", "--project", str(tmp_path / "runs")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # the default model, fasterrcnn_resnet50_fpn_v2, downloads its COCO weights: offline, each start that would train
    assert "could not download pretrained weights FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1" in err
    start = f"detft train --data {data} --epochs 1 --project {tmp_path / 'runs'}"
    assert f"offline start installed here: {start} --model fasterrcnn_mobilenet_v2_fpn\n" in err
    assert err.rstrip().endswith(f"offline start installed here: {start} --arch yolo")
    assert "efficientnet" not in err
    with pytest.raises(DetftError, match="offline start installed here: model='fasterrcnn_mobilenet_v2_fpn'"):
        resolve("fasterrcnn_mobilenet_v3_large_320_fpn").build(num_classes=3, weights="DEFAULT")


def test_cached_pretrained_weights_load_and_heads_are_replaced(monkeypatch):
    """Stands in for torchvision's cache: the test makes the 'downloaded' COCO weights itself."""
    from torchvision.models import detection as tvd

    torch.manual_seed(5)
    coco = tvd.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=91)
    state = coco.state_dict()
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", lambda *a, **k: state)
    model = resolve("fasterrcnn_mobilenet_v3_large_320_fpn").build(num_classes=3, weights="DEFAULT")
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    ours = model.state_dict()
    body = [k for k in state if k.startswith("backbone.body.") and k.endswith("weight") and k in ours]
    assert body and all(torch.equal(state[k], ours[k]) for k in body)


def test_checkpoints_load_weights_only(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": checkpoint.FORMAT, "x": Evil()}, tmp_path / "bad.pt")
    with pytest.raises(DetftError, match=r"cannot read checkpoint .*bad\.pt"):
        checkpoint.load(tmp_path / "bad.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DetftError, match="cut.pt"):
        checkpoint.load(tmp_path / "cut.pt")


def test_val_loss_learns_nothing_and_measures_the_same_way_every_time(tmp_path: Path):
    data = make_data(tmp_path / "data", val_is_train=False)
    trainer = Trainer(config(data, tmp_path, freeze="none"))
    trainer.setup()
    trainer.model.train()
    before = snapshot(trainer.model)
    assert any("running_mean" in k for k in before)  # BatchNorm that trains: its statistics are compared too
    rng = torch.get_rng_state()
    first = trainer.val_losses()
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert all(p.grad is None for p in trainer.model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream is not consumed
    norms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training for m in norms)  # back in training mode afterwards
    assert set(first) == {"val_loss", "val_loss_classifier", "val_loss_box_reg", "val_loss_objectness",
                          "val_loss_rpn_box_reg"} and np.isfinite(list(first.values())).all()
    assert trainer.val_losses() == first


def test_a_run_logs_val_loss_beside_training_loss_csv_plot_and_tensorboard(tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_data(tmp_path / "data", val_is_train=False)
    run = train(config(data, tmp_path, epochs=2))
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "val_loss", "val_loss_classifier", "bbox_AP"} <= set(header)
    events = EventAccumulator(str(run.folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/val", "loss_classifier/train", "loss_classifier/val", "metrics/bbox_AP"} <= tags
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2]
    watch = json.loads((run / "eval.json").read_text())["overfitting"]
    assert watch["val_loss_min_epoch"] in (1, 2) and watch["note"].startswith("overfitting watch")


def test_without_tensorboard_a_run_says_so_and_trains(tmp_path: Path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if the package were not installed
    run = train(config(make_data(tmp_path / "data"), tmp_path))
    assert "no TensorBoard event file" in capsys.readouterr().out
    assert not list(run.folder.glob("events.out.tfevents.*")) and (run / "metrics.csv").is_file()


def test_overfitting_watch_names_where_val_loss_and_map_parted():
    from detft.engine.metrics import overfitting

    rows = [{"epoch": 1, "loss": 3.0, "val_loss": 2.0, "bbox_AP": 0.10}, {"epoch": 2, "loss": 2.0, "val_loss": 1.5, "bbox_AP": 0.30},
            {"epoch": 3, "loss": 1.0, "val_loss": 1.7, "bbox_AP": 0.35}, {"epoch": 4, "loss": 0.5, "val_loss": 2.0, "bbox_AP": 0.32}]
    watch = overfitting(rows)
    assert watch["parted_at"] == 3 and watch["val_loss_min_epoch"] == 2 and watch["best_map_epoch"] == 3
    assert "parted at epoch 3" in watch["note"] and "training loss kept falling" in watch["note"]
    steady = overfitting([{**r, "val_loss": 2.0 - r["epoch"] * 0.1} for r in rows])
    assert steady["parted_at"] is None and "more epochs may still help" in steady["note"]
    assert overfitting([{"epoch": 1, "loss": 1.0}]) is None


def test_a_time_budget_fits_the_epochs_and_the_schedule_to_it(tmp_path: Path, capsys):
    trainer = Trainer(config(make_data(tmp_path / "data"), tmp_path, epochs=5, time_budget=1e-4, schedule="cosine"))
    trainer.setup()
    run = trainer.fit()
    assert len((run / "metrics.csv").read_text().splitlines()) == 2  # one epoch fitted the 6 ms budget
    assert trainer.epochs == 1 and trainer.scheduler.lr_lambdas[0].total == len(trainer.sampler)
    assert "time budget of 0.0001 min used after 1 epoch(s)" in capsys.readouterr().out
    # the refitted schedule is part of last.pt, so --resume continues on it
    state = checkpoint.load(run / "weights" / "last.pt")["scheduler"]
    assert state["lr_lambdas"][0]["total"] == len(trainer.sampler)


def test_amp_runs_its_autocast_and_scaler_and_a_run_without_amp_resumes_with_it(tmp_path: Path, capsys):
    """A run started on a CPU saves a disabled scaler's empty state; resumed where AMP is on (CUDA resolves
    --amp to on; the CPU's fp16 autocast and an enabled scaler stand in for it here) it must continue."""
    data = make_data(tmp_path / "data", n=4)
    part = Trainer(config(data, tmp_path, name="part", epochs=3))
    part.setup()
    part.epochs = 1
    part.fit()
    assert checkpoint.load(part.run.checkpoint_path("last"))["scaler"] == {}
    resumed = Trainer(part.run.info.config.replace(amp=True), part.run)  # what a CUDA machine resolves
    resumed.setup(checkpoint.load(part.run.checkpoint_path("last")))
    assert resumed.amp and resumed.scaler.is_enabled()
    assert "gradient scaler starts at its initial scale" in capsys.readouterr().out
    dtypes = []  # the backbone runs under fp16 autocast in every training step (and the val loss pass)

    def record(module, inputs, out) -> None:
        if module.training:
            dtypes.append(out["0"].dtype)

    resumed.model.backbone.register_forward_hook(record)
    resumed.fit()
    assert dtypes and set(dtypes) == {torch.float16}
    saved = checkpoint.load(part.run.checkpoint_path("last"))
    assert saved["epoch"] == 2 and saved["scaler"]["scale"] > 0  # the scaler ran and its state was kept
    assert all(np.isfinite(r["loss"]) for r in saved["rows"]) and len(saved["rows"]) == 3
    again = Trainer(part.run.info.config.replace(amp=True, epochs=4), part.run)  # an enabled scaler's state loads
    again.setup(checkpoint.load(part.run.checkpoint_path("last")))
    assert again.scaler.state_dict()["scale"] == saved["scaler"]["scale"]


def test_a_val_split_without_objects_still_gives_best_pt_by_val_loss(tmp_path: Path, capsys):
    data = make_data(tmp_path / "data", n=4)
    f = data / "annotations" / "instances_val.json"
    doc = json.loads(f.read_text())
    doc["annotations"] = []
    f.write_text(json.dumps(doc))
    run = train(config(data, tmp_path, epochs=2))
    out = capsys.readouterr().out
    assert "best.pt is the epoch with the lowest val loss" in out
    best, last = (checkpoint.load(run / "weights" / f"{w}.pt") for w in ("best", "last"))
    losses = [r["val_loss"] for r in last["rows"]]
    assert best["epoch"] == int(np.argmin(losses))  # the epoch whose val loss was lowest
    assert (run / "eval.json").is_file()  # the final evaluation ran on best.pt
    model = detft.load(run, device="cpu")
    assert model.evaluate().images == 4
