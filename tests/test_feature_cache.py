"""A frozen trunk computed once per image and flip: the same losses as computing it every epoch, augmented
samples bypass it, unfreezing drops it; box heads that fit the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn / tiny_maskrcnn)
import torch
from helpers import config, make_data, widen_images

import detft
from detft.engine import checkpoint
from detft.engine.trainer import Trainer
from detft.errors import DetftError


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("cache") / "data", n=8)


def fit(data: Path, tmp: Path, **kw) -> Trainer:
    kw = {"epochs": 2, "freeze": "backbone", **kw}
    trainer = Trainer(config(data, tmp, name=kw.pop("name", "run"), **kw))
    trainer.setup()
    trainer.fit()
    return trainer


def losses(trainer: Trainer) -> list[float]:
    """Training and validation loss of every epoch, in one flat list."""
    return [r[k] for r in trainer.rows for k in ("loss", "val_loss")]


@pytest.mark.parametrize("augment,mode", [("flip", "auto"), ("flip,color", "auto"), ("flip", "disk")])
def test_cached_training_has_the_losses_of_uncached_training(data: Path, tmp_path: Path, augment: str, mode: str):
    plain = fit(data, tmp_path, name="plain", augment=augment, cache_features="off")
    cached = fit(data, tmp_path, name="cached", augment=augment, cache_features=mode, cache_precision="fp32")
    assert plain.cache is None and cached.cache is not None and plain.trunk is not None  # off: the same trunk, no store
    assert cached.cache.hits > 0  # later epochs reused features computed in earlier ones
    if "color" in augment:
        assert cached.cache.bypassed > 0  # colour-jittered samples ran the trunk as usual
    assert losses(cached) == pytest.approx(losses(plain), abs=1e-5)
    assert not cached.run.feature_cache_dir().exists()  # spilled files go when training ends
    first = cached.model.backbone.body
    assert "forward" not in first.__dict__  # the trunk is itself again


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """12 images of four widths: batches pad to different sizes, as with real photos."""
    return widen_images(make_data(tmp_path_factory.mktemp("mixed") / "data", n=12))


@pytest.mark.parametrize("trunk", ["backbone", "backbone+neck"])
def test_on_images_of_several_sizes_the_cache_changes_nothing(mixed: Path, tmp_path: Path, trunk: str):
    """A map is kept at its image's own extent and padded to each batch it joins: the anchors' stride (padded
    batch size / map size) stays right whichever batch computed the map."""
    kw = dict(epochs=3, freeze=trunk, augment="flip", batch=3)
    plain = fit(mixed, tmp_path, name="plain", cache_features="off", **kw)
    cached = fit(mixed, tmp_path, name="cached", cache_features="ram", cache_precision="fp32", **kw)
    assert cached.cache.hits > 0
    assert losses(cached) == pytest.approx(losses(plain), abs=1e-5)


def test_an_fp16_cache_stays_close(data: Path, tmp_path: Path):
    plain = fit(data, tmp_path, name="plain", augment="flip", cache_features="off")
    half = Trainer(config(data, tmp_path, name="half", epochs=2, freeze="backbone+neck", augment="flip"))
    half.setup()
    assert half.cache is not None and half.trunk.trunk is half.model.backbone
    half.fit()
    assert losses(half) == pytest.approx(losses(plain), rel=2e-2)  # fp16 features: close, not equal


def test_unfreezing_drops_the_cache_and_a_cache_without_a_frozen_trunk_is_an_error(data: Path, tmp_path: Path):
    trainer = Trainer(config(data, tmp_path, epochs=2, freeze="backbone", unfreeze_at=1, augment="flip"))
    trainer.setup()
    body = trainer.model.backbone.body
    assert "forward" in body.__dict__
    trainer.fit()
    assert trainer.trunk is None and trainer.cache is None and "forward" not in body.__dict__
    for freeze in ("none", "1"):
        with pytest.raises(DetftError, match="needs --freeze backbone or backbone"):
            Trainer(config(data, tmp_path, freeze=freeze, cache_features="ram")).setup()
    quiet = Trainer(config(data, tmp_path, freeze="none"))  # auto: simply no cache
    quiet.setup()
    assert quiet.trunk is None and quiet.cache is None


@pytest.mark.parametrize("head", ["light", "convfc"])
def test_box_heads_train_save_and_load_with_the_head_they_trained_with(data: Path, tmp_path: Path, head: str):
    run = detft.train(config(data, tmp_path, epochs=1, box_head=head, rpn_batch=32, roi_batch=16))
    info = detft.Run.open(run).info
    assert info.model_kwargs["box_head"] == head
    model = detft.load(run, device="cpu", conf=0.0)
    box_head = model.predictor.model.roi_heads.box_head
    assert type(box_head).__name__ == ("FastRCNNConvFCHead" if head == "convfc" else "TwoMLPHead")
    image = sorted((data / "images" / "val").iterdir())[0]
    assert len(model.predict(image)[0]) > 0
    width = model.predictor.model.roi_heads.box_predictor.cls_score.in_features
    assert width == (256 if head == "light" else 1024)


def test_sampling_sizes_reach_the_samplers(data: Path, tmp_path: Path):
    trainer = Trainer(config(data, tmp_path, rpn_batch=32, roi_batch=16))
    trainer.setup()
    assert trainer.model.rpn.fg_bg_sampler.batch_size_per_image == 32
    assert trainer.model.roi_heads.fg_bg_sampler.batch_size_per_image == 16
    with pytest.raises(DetftError, match="--roi-batch 0"):
        Trainer(config(data, tmp_path, roi_batch=0)).setup()
    assert torch.is_grad_enabled()


def test_an_interrupted_cached_run_on_images_of_several_sizes_resumes_bit_identical(mixed: Path, tmp_path: Path):
    """With persistent loader workers too (the default --workers 2): a loader that drew its workers' seed from the
    global RNG in the resumed process's first epoch shifted the model's proposal sampling from there on."""
    kw = dict(freeze="backbone+neck", augment="flip,color", batch=3, cache_features="ram", cache_precision="fp16",
              workers=2)
    full = fit(mixed, tmp_path, name="full", epochs=3, **kw)
    part = Trainer(config(mixed, tmp_path, name="part", epochs=3, **kw))
    part.setup()
    part.epochs = 2  # stopped after two epochs, as a crash or Ctrl-C would
    part.fit()
    resumed = Trainer(part.run.info.config, part.run)
    resumed.setup(checkpoint.load(part.run.checkpoint_path("last")))
    assert resumed.cache is not None and not resumed.cache.ram  # what it caches now starts empty
    resumed.fit()
    a, b = (checkpoint.load(t.run.checkpoint_path("last"))["model"] for t in (full, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
