"""Images decoded once at the model's working size: the sizes torchvision's transform makes, the same items
as decoding every epoch, no JPEG read after the first epoch (across worker processes), a budget obeyed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
import torch
from helpers import config, make_data, training_set
from torch.utils.data import DataLoader
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from detft.data.image_cache import ImageCache, shrink_image, shrink_targets, shrunk_size
from detft.data.torch_dataset import DetectionDataset, collate
from detft.engine.trainer import Trainer


@pytest.mark.parametrize("shape", [(480, 640), (3000, 4000), (1000, 333), (97, 1203), (64, 80)])
def test_shrunk_size_is_the_size_torchvisions_transform_makes(shape: tuple[int, int]):
    transform = GeneralizedRCNNTransform(256, 427, [0.0] * 3, [1.0] * 3)
    transform.eval()
    h, w = shape
    made = transform([torch.zeros(3, h, w)])[0].image_sizes[0]
    size = shrunk_size(h, w, 256, 427)
    assert size == (made if made[0] <= h else (h, w))  # never enlarged: the model enlarges itself


def test_shrunk_image_is_what_the_model_would_have_made_of_the_original():
    rng = np.random.default_rng(0)
    rgb = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    rgb = np.ascontiguousarray(np.repeat(np.repeat(rgb[::10, ::10], 10, 0), 10, 1))  # smooth-ish blocks
    transform = GeneralizedRCNNTransform(120, 200, [0.0] * 3, [1.0] * 3)
    transform.eval()
    as_float = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    direct = transform([as_float])[0].tensors[0]
    small = shrink_image(rgb, shrunk_size(300, 400, 120, 200))
    via = transform([torch.from_numpy(small).permute(2, 0, 1).float() / 255])[0].tensors[0]
    assert via.shape == direct.shape
    assert (via - direct).abs().mean() < 0.01  # uint8 rounding and a near-identity second resample

    boxes = np.array([[40, 30, 400, 300]], np.float32)
    masks = np.zeros((1, 300, 400), np.uint8)
    masks[0, 30:300, 40:400] = 1
    b, m = shrink_targets(boxes, masks, (300, 400), (120, 160))
    np.testing.assert_allclose(b, [[16, 12, 160, 120]])
    assert m.shape == (1, 120, 160) and m[0, 12:, 16:].all() and not m[0, :11].any()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("images") / "data", n=6, size=96)


def dataset(root: Path, resize=(64, 100), augment="flip") -> DetectionDataset:
    return training_set(root, augment=augment, seed=0, resize=resize)


def items(ds: DetectionDataset, epoch: int, workers: int) -> list:
    loader = DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate,
                        sampler=[(epoch, i) for i in range(len(ds))])
    return [(im, t) for images, targets in loader for im, t in zip(images, targets)]


def same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (ia, ta), (ib, tb) in zip(a, b):
        assert torch.equal(ia, ib)
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_cached_items_equal_decoded_ones_and_epoch_two_reads_no_jpeg(data: Path, tmp_path: Path):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    plain = dataset(root)
    cached = dataset(root)
    cached.cache = ImageCache(tmp_path / "cache" / "train.u8", cached.sizes, 2**30)
    assert cached.sizes[0] == (64, 64) and cached.cache.cached == len(cached)
    first = items(cached, 0, workers=2)  # filled by two worker processes through the shared file
    same(first, items(plain, 0, workers=0))
    assert cached.cache.describe().startswith(f"{len(cached)}/{len(cached)} images")
    assert first[0][0].shape[-2:] == (64, 64)
    shutil.rmtree(root / "images")  # epoch 2 must not need a single image file
    same(items(cached, 1, workers=2), items(dataset(data), 1, workers=0))
    cached.cache.close()
    assert not (tmp_path / "cache" / "train.u8").exists()


def test_images_over_the_budget_are_decoded_every_time(data: Path, tmp_path: Path):
    ds = dataset(data)
    ds.cache = ImageCache(tmp_path / "train.u8", ds.sizes, budget_bytes=2 * 64 * 64 * 3)
    assert ds.cache.cached == 2 and ds.cache.bytes == 2 * 64 * 64 * 3
    same(items(ds, 0, workers=0), items(dataset(data), 0, workers=0))
    assert ds.cache.get(0) is not None and ds.cache.get(2) is None


def test_training_keeps_images_until_it_ends_and_cache_off_is_the_same_run(data: Path, tmp_path: Path):
    runs = {}
    for mode in ("auto", "off"):
        trainer = Trainer(config(data, tmp_path, name=mode, epochs=2, imgsz=64, cache_images=mode))
        trainer.setup()
        assert len(trainer.image_caches) == (2 if mode == "auto" else 0)  # train and val
        trainer.fit()
        assert not trainer.run.image_cache_dir().exists()
        runs[mode] = [r["loss"] for r in trainer.rows]
    assert runs["auto"] == runs["off"]
