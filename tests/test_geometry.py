"""Shape helpers: multi-part merging for YOLO-seg and RLE canonicalisation edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from detft.annotations.geometry import (
    canonical_rle,
    decode_mask,
    encode_mask,
    merge_polygons,
    polygons_to_mask,
    rle_bbox,
)


def square(x: int, y: int, s: int) -> list[float]:
    return [x, y, x + s, y, x + s, y + s, x, y + s]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80), st.integers(4, 15)), min_size=1, max_size=4))
def test_merged_disjoint_parts_rasterise_to_the_union(parts):
    polys = [square(*p) for p in parts]
    assume(polygons_to_mask(polys, 100, 100).sum() == sum(polygons_to_mask([q], 100, 100).sum() for q in polys))
    union = polygons_to_mask(polys, 100, 100).astype(bool)
    merged = polygons_to_mask([merge_polygons(polys)], 100, 100).astype(bool)
    # the zero-width bridges may touch a few boundary pixels; the parts themselves must all be there
    assert (merged & union).sum() >= 0.97 * union.sum()
    assert (merged & ~union).sum() <= 2 * max(1, len(parts) - 1) * 100


def test_rle_edge_cases_from_pycocotools(eval_vectors):
    cases = {c["name"]: c for c in json.loads((eval_vectors / "pycocotools_mask" / "rle_edge_cases.json").read_text())}
    with pytest.raises(ValueError):
        canonical_rle(cases["testInvalidRLECounts"]["rle"])
    zero = canonical_rle(cases["testZeroLeadingRLE"]["rle"])
    again = encode_mask(decode_mask(zero))
    assert rle_bbox(again) == rle_bbox(zero)


def test_uncompressed_rle_with_wrong_sum_is_an_error():
    with pytest.raises(ValueError, match="sum to 5"):
        canonical_rle({"size": [2, 3], "counts": [2, 3]})


def test_encode_decode_roundtrip():
    m = np.zeros((7, 9), np.uint8)
    m[1:4, 2:8] = 1
    assert (decode_mask(encode_mask(m)) == m).all()
    assert rle_bbox(encode_mask(m)) == (2, 1, 8, 4)


def test_yolo_writer_traces_overlapping_parts(tmp_path):
    from helpers import make_image

    from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
    from detft.annotations.report import Report
    from detft.formats import yolo

    make_image(tmp_path / "a.png", 50, 50)
    parts = [square(5, 5, 20), square(15, 15, 20)]  # overlapping
    ann = Annotation(1, (5, 5, 35, 35), polygons=parts)
    ds = Dataset([ImageRecord("a.png", 50, 50, path=tmp_path / "a.png", annotations=[ann])], [Category(1, "x")])
    report = Report()
    yolo.write(ds, tmp_path / "out", report)
    back = yolo.read(tmp_path / "out", Report())
    got = polygons_to_mask(back.images[0].annotations[0].polygons, 50, 50).astype(bool)
    want = polygons_to_mask(parts, 50, 50).astype(bool)
    # contour tracing runs through boundary pixel centres: about half a pixel is lost along the edge
    assert (got & want).sum() >= 0.90 * want.sum() and (got & ~want).sum() <= 0.05 * want.sum()
    assert [c.kind for c in report.changes if c.action == "converted"] == ["overlapping_parts_traced"]


def test_one_rle_encoder_for_one_mask_and_many():
    import numpy as np
    from pycocotools import mask as mask_utils

    from detft.annotations.geometry import decode_mask, encode_mask, encode_masks

    rng = np.random.default_rng(0)
    masks = rng.random((3, 17, 23)) > 0.6
    many = encode_masks(masks)
    assert [encode_mask(m) for m in masks] == many and encode_masks(np.zeros((0, 4, 4), bool)) == []
    for m, rle in zip(masks, many):
        assert rle["size"] == [17, 23] and isinstance(rle["counts"], str)
        assert (decode_mask(rle) == m).all()
        assert rle["counts"].encode() == mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"]
