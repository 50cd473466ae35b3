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


@pytest.mark.parametrize("model", ["tiny_fasterrcnn", "tiny_maskrcnn"])
def test_overfits_eight_images(tmp_path: Path, model: str):
    data = make_data(tmp_path / "data")
    arch = "maskrcnn" if "mask" in model else "fasterrcnn"
    run = train(config(data, tmp_path, arch=arch, model=model, epochs=60, freeze="none", conf=0.05))
    doc = json.loads((run / "eval.json").read_text())
    assert doc["metrics"]["bbox"]["stats"]["AP50"] > 0.9
    if arch == "maskrcnn":
        assert doc["metrics"]["segm"]["stats"]["AP50"] > 0.9
    for f in ("run.yaml", "metrics.csv", "loss.png", "map.png", "weights/best.pt", "weights/last.pt"):
        assert (run / f).is_file(), f
    # the checkpoint predicts through the shared Predictor interface
    pred = detft.load(run, device="cpu", conf=0.5).predictor
    from detft.convert import load
    from detft.images import read_rgb
    from detft.report import Report

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
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "nan" not in rows[2].lower()


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
    trainer.cfg.epochs = 1  # stop after one epoch, as a crash or Ctrl-C would
    trainer.fit()
    resumed = train(config(data, tmp_path, epochs=2), resume=str(tmp_path / "runs" / "part"))
    a = checkpoint.load(full / "weights" / "last.pt")["model"]
    b = checkpoint.load(resumed / "weights" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


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
