"""A frozen trunk computed once per image and flip (or augmented view): the same losses as computing it every
epoch, fresh augmented draws bypass it, unfreezing drops it; box heads that fit the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn / tiny_maskrcnn)
import torch
from helpers import config, make_data, training_set, widen_images

import detft
from detft.engine import checkpoint
from detft.data.transforms import DEFAULT_VIEWS, UNCACHEABLE, view_of
from detft.engine.feature_cache import FeatureStore
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


@pytest.mark.parametrize("augment,mode,views", [("flip", "auto", None), ("flip,color", "auto", 0),
                                                ("flip", "disk", None), ("flip,scale,color", "ram", 2)])
def test_cached_training_has_the_losses_of_uncached_training(data: Path, tmp_path: Path, augment: str, mode: str,
                                                             views: int | None):
    kw = dict(augment=augment, augment_views=views, epochs=3 if views else 2)
    plain = fit(data, tmp_path, name="plain", cache_features="off", **kw)
    cached = fit(data, tmp_path, name="cached", cache_features=mode, cache_precision="fp32", **kw)
    assert plain.cache is None and cached.cache is not None and plain.trunk is not None  # off: the same trunk, no store
    assert cached.cache.hits > 0  # later epochs reused features computed in earlier ones
    if views == 0:
        assert cached.cache.bypassed > 0  # fresh colour-jittered draws ran the trunk as usual
    if views:  # every sample was one of an image's views: none bypassed, at most `views` computed per image
        assert cached.cache.bypassed == 0 and cached.cache.misses <= views * len(cached.train_set)
        assert cached.cache.hits == 3 * len(cached.train_set) - cached.cache.misses
        assert detft.Run.open(cached.run.folder).info.config.augment_views == views  # a resume continues them
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


def test_each_view_repeats_its_pixels_and_boxes_and_shows_once_per_cycle(data: Path):
    """What makes a view cacheable: the same key always carries the same pixels and boxes; and what keeps the
    augmentation's worth: every view is shown once per cycle, and views differ from each other."""
    ds = training_set(data, augment="flip,scale,color", seed=3)
    ds.use_views(3, until=6)
    for index in range(len(ds)):
        seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        cycles = [[view_of(3, epoch, index, 3) for epoch in range(c, c + 3)] for c in (0, 3)]
        assert sorted(cycles[0]) == sorted(cycles[1]) == [0, 1, 2]
        for epoch in range(6):
            image, target = ds[(epoch, index)]
            key = int(target["cache_key"][1])
            if key in seen:
                assert torch.equal(seen[key][0], image) and torch.equal(seen[key][1], target["boxes"])
            seen[key] = image, target["boxes"]
        assert len(seen) > 1
        fresh = [int(ds[(epoch, index)][1]["cache_key"][1]) for epoch in range(6, 12)]  # past `until`
        assert all(k in (0, 1, UNCACHEABLE) for k in fresh)


def test_default_views_follow_the_cache(data: Path, tmp_path: Path):
    """Unset, --augment-views is 4 where a store keeps the features of backbone and neck and a pixel-changing
    augmentation is on, 0 elsewhere; run.yaml records what was used, so a resume continues it."""
    cases = [(dict(augment="flip,scale,color"), DEFAULT_VIEWS), (dict(augment="flip"), 0),
             (dict(augment="flip,scale,color", freeze="backbone"), 0),
             (dict(augment="flip,color", cache_features="off"), 0), (dict(augment="color", freeze="none"), 0),
             (dict(augment="color", freeze="none", augment_views=3), 3)]
    for kw, views in cases:
        trainer = Trainer(config(data, tmp_path, freeze=kw.pop("freeze", "backbone+neck"), **kw))
        trainer.setup()
        assert (trainer.cfg.augment_views, trainer.train_set.views) == (views, views), kw
    with pytest.raises(DetftError, match="--augment-views"):
        config(data, tmp_path, augment_views=-1).check()


def test_spilled_files_stop_at_their_disk_budget(tmp_path: Path):
    """Views multiply what a cache holds: past its disk budget a map is handed back, not written."""
    store = FeatureStore("auto", tmp_path / "cache", budget_bytes=0, precision="fp32", disk_bytes=3 * 4 * 16)
    maps = {"0": torch.ones(1, 4, 4)}
    for view in range(5):
        assert torch.equal(store.put((0, view), maps)["0"], maps["0"])
    assert store.on_disk == {(0, 0), (0, 1), (0, 2)} and store.disk_bytes == 3 * 4 * 16
    assert store.get((0, 2)) is not None and store.get((0, 3)) is None


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
