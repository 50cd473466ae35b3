"""The letterbox, NMS and mapping around a YOLO graph (inference/yolo_graph.py) give what ultralytics' own functions
give, the PyTorch predictor's: boxes and scores bit for bit, masks to the pixel but for interpolation at edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detft.inference.yolo_graph import Letterbox, masks_in_image, select

ultralytics = pytest.importorskip("ultralytics")


@pytest.fixture(scope="module")
def ops():
    from detft.models.yolo import prepare_offline

    prepare_offline()
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import nms
    from ultralytics.utils import ops as uops

    return LetterBox, nms, uops


@pytest.mark.parametrize("height,width,size,tight", [(480, 640, 320, False), (480, 640, 320, True),
                                                     (97, 301, 160, True), (300, 100, 224, False), (64, 64, 64, True),
                                                     (1080, 1920, 640, True), (5, 700, 96, False)])
def test_the_letterbox_is_ultralytics_to_the_pixel(ops, height: int, width: int, size: int, tight: bool):
    LetterBox, _, _ = ops
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    theirs = LetterBox((size, size), auto=tight, stride=32)(image=image)
    theirs = theirs.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
    ours = Letterbox.fit(height, width, size, 32, tight).apply(image, np.float32)
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)


def raw_prediction(rng: np.random.Generator, anchors: int, classes: int, coefficients: int, size: int) -> np.ndarray:
    """A graph output in clusters: overlapping boxes of several classes, many near the score cut, some off the edge."""
    centres = rng.uniform(-10, size + 10, (anchors // 20 + 1, 2)).repeat(20, 0)[:anchors] + rng.normal(0, 3, (anchors, 2))
    sizes = rng.uniform(4, size / 2, (anchors // 20 + 1, 2)).repeat(20, 0)[:anchors] * rng.uniform(0.8, 1.2, (anchors, 2))
    scores = rng.uniform(0, 1, (anchors, classes)) ** 4
    scores[rng.integers(0, anchors, anchors // 10), :] = 0.25  # ties at the cut
    coeffs = rng.normal(0, 1, (anchors, coefficients))
    return np.concatenate([centres, sizes, scores, coeffs], 1).T[None].astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_nms_and_the_mapping_back_are_ultralytics_bit_for_bit(ops, seed: int):
    _, nms, uops = ops
    rng = np.random.default_rng(seed)
    classes, coefficients = int(rng.integers(1, 6)), int(rng.choice([0, 32]))
    size, height, width = 320, int(rng.integers(100, 900)), int(rng.integers(100, 900))
    raw = raw_prediction(rng, 2100, classes, coefficients, size)
    conf, iou, max_dets = float(rng.choice([0.001, 0.25])), 0.7, int(rng.choice([10, 300]))
    theirs = nms.non_max_suppression(torch.from_numpy(raw), conf, iou, None, False, max_det=max_dets,
                                     nc=classes if coefficients else 0)[0]
    ours = select(raw, conf, iou, max_dets, classes, end2end=False)
    assert len(ours) > 0 and torch.equal(ours, theirs)
    box = Letterbox.fit(height, width, size, 32, tight=False)
    mapped = box.boxes_to_image(ours[:, :4].clone(), height, width)
    assert torch.equal(mapped, uops.scale_boxes(box.shape, theirs[:, :4].clone(), (height, width)))


def test_an_end_to_end_graph_is_cut_at_the_score_and_count(ops):
    _, nms, _ = ops
    rows = torch.tensor([[1, 2, 30, 40, 0.9, 0], [5, 5, 9, 9, 0.2, 1], [0, 0, 4, 4, 0.5, 2]], dtype=torch.float32)
    raw = rows[None].numpy()
    theirs = nms.non_max_suppression(torch.from_numpy(raw), 0.3, 0.7, None, False, max_det=300, end2end=True)[0]
    assert torch.equal(select(raw, 0.3, 0.7, 300, 3, end2end=True), theirs)
    assert len(select(raw, 0.3, 0.7, 1, 3, end2end=True)) == 1


@pytest.mark.parametrize("height,width,tight", [(480, 640, False), (333, 517, True), (640, 200, False)])
def test_masks_are_ultralytics_but_for_edge_pixels(ops, height: int, width: int, tight: bool):
    _, _, uops = ops
    rng = np.random.default_rng(height)
    box = Letterbox.fit(height, width, 320, 32, tight)
    mh, mw = box.shape[0] // 4, box.shape[1] // 4
    coarse = torch.from_numpy(rng.normal(0, 1, (1, 32, mh // 6 + 2, mw // 6 + 2)).astype(np.float32))
    protos = torch.nn.functional.interpolate(coarse, (mh, mw), mode="bilinear").numpy()  # smooth, as trained ones are
    protos[0, 0] = np.linspace(-3, 3, mw)[None, :]  # a ramp: masks with long straight edges
    coefficients = torch.from_numpy(rng.normal(0, 1, (12, 32)).astype(np.float32))
    coefficients[:, 0] += 6
    x1, y1 = rng.uniform(0, width / 2, 12), rng.uniform(0, height / 2, 12)
    boxes = torch.from_numpy(np.stack([x1, y1, x1 + rng.uniform(20, width / 2, 12), y1 + rng.uniform(20, height / 2, 12)],
                                      1).astype(np.float32))
    ours, filled = masks_in_image(protos, coefficients, boxes, box, height, width)
    theirs = uops.process_mask_native(torch.from_numpy(protos[0]), coefficients, boxes, (height, width)).numpy() > 0
    assert ours.shape == theirs.shape and ours.any() and np.array_equal(filled, ours.any((1, 2)))
    for a, b in zip(ours, theirs):
        assert (a != b).sum() <= 0.02 * max(1, b.sum()), ((a != b).sum(), b.sum())
    none, filled = masks_in_image(protos, coefficients[:0], boxes[:0], box, height, width)
    assert none.shape == (0, height, width) and filled.shape == (0,)


def _masks_over_the_whole_image(protos, coefficients, boxes, box: Letterbox, height: int, width: int) -> np.ndarray:
    """The masks sampled over every pixel of the image, then cut to their boxes: what masks_in_image computed
    before it sampled each box's pixels alone."""
    p = torch.from_numpy(protos[0]).float()
    channels, mh, mw = p.shape
    logits = (coefficients @ p.view(channels, -1)).view(1, -1, mh, mw)
    (ih, iw), (rh, rw) = box.shape, box.resized
    theta = logits.new_tensor([[[rw / iw, 0, (2 * box.left + rw) / iw - 1], [0, rh / ih, (2 * box.top + rh) / ih - 1]]])
    grid = torch.nn.functional.affine_grid(theta, [1, 1, height, width], align_corners=False)
    masks = torch.nn.functional.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=False)[0] > 0
    cols, rows = torch.arange(width, dtype=boxes.dtype), torch.arange(height, dtype=boxes.dtype)
    inside = ((cols[None, None, :] >= boxes[:, 0, None, None]) & (cols[None, None, :] < boxes[:, 2, None, None])
              & (rows[None, :, None] >= boxes[:, 1, None, None]) & (rows[None, :, None] < boxes[:, 3, None, None]))
    return (masks & inside).numpy()


@pytest.mark.parametrize("height,width,tight", [(480, 640, False), (333, 517, True), (640, 200, True)])
def test_masks_sampled_in_their_boxes_are_the_masks_sampled_over_the_whole_image(height: int, width: int, tight: bool):
    rng = np.random.default_rng(width)
    box = Letterbox.fit(height, width, 320, 32, tight)
    protos = rng.normal(0, 1, (1, 32, box.shape[0] // 4, box.shape[1] // 4)).astype(np.float32)
    coefficients = torch.from_numpy(rng.normal(0, 1, (9, 32)).astype(np.float32))
    x1, y1 = rng.uniform(-5, width, 9), rng.uniform(-5, height, 9)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0, width, 9), y1 + rng.uniform(0, height, 9)], 1)
    boxes[0] = [3.0, 4.0, 3.0, 50.0]  # zero width: an empty mask
    boxes[1] = [0.0, 0.0, width, height]  # the whole image
    boxes[2] = [10.5, 7.25, 11.0, 8.0]  # under a pixel
    boxes = torch.from_numpy(np.clip(boxes, 0, [width, height, width, height]).astype(np.float32))
    ours, filled = masks_in_image(protos, coefficients, boxes, box, height, width)
    reference = _masks_over_the_whole_image(protos, coefficients, boxes, box, height, width)
    assert ours.shape == reference.shape == (9, height, width) and ours[1].any() and not ours[0].any()
    assert np.array_equal(filled, ours.any((1, 2)))
    assert (ours != reference).sum() <= 2, ((ours != reference).sum(), "the same points, up to float rounding")
