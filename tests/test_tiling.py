"""Tiled datasets (#25): tiles that map back to their source exactly, annotations cut exactly, every cut object
accounted for, tiles written as real crops, and training on tiles that never mixes one image into two splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image

from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
from detft.annotations.geometry import decode_mask, encode_mask, polygons_to_mask
from detft.annotations.report import Report
from detft.errors import DetftError
from detft.operations.tiling import Tiling, clip_polygon, tile_dataset, tile_name, tile_origin


def shoelace(p: list[float]) -> float:
    xs, ys = p[0::2], p[1::2]
    return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2


def test_clipping_keeps_exactly_the_part_inside_convex_or_not():
    square = [0, 0, 10, 0, 10, 10, 0, 10]
    assert shoelace(clip_polygon(square, 5, -1, 20, 20)) == pytest.approx(50)
    ell = [0, 0, 10, 0, 10, 4, 4, 4, 4, 10, 0, 10]  # an L: area 64
    assert shoelace(clip_polygon(ell, 2, 2, 20, 20)) == pytest.approx(8 * 2 + 2 * 6)  # what is left of both bars
    assert clip_polygon(square, 20, 20, 30, 30) == []


def big_image(tmp_path: Path) -> Dataset:
    """A 300 x 200 photo with a box, a triangle and a mask, each inside some 128 px tile, and one large box."""
    path = make_image(tmp_path / "frame.jpg", 300, 200)
    mask = np.zeros((200, 300), np.uint8)
    mask[150:180, 210:260] = 1
    anns = [Annotation(1, (10.5, 20.25, 40, 60)),
            Annotation(2, (100, 100, 150, 140), polygons=[[100, 100, 150, 120, 110, 140]]),
            Annotation(1, (210, 150, 260, 180), rle=encode_mask(mask)),
            Annotation(2, (20, 10, 170, 190))]  # larger than any tile
    return Dataset([ImageRecord("frame.jpg", 300, 200, path=path, annotations=anns, split="train")],
                   [Category(1, "a"), Category(2, "b")], root=tmp_path)


def in_source(a: Annotation, tile: ImageRecord) -> tuple[float, ...]:
    """A tile annotation's box in its source image, from nothing but the tile's name."""
    _, x, y = tile_origin(tile.file_name)
    return (a.bbox[0] + x, a.bbox[1] + y, a.bbox[2] + x, a.bbox[3] + y)


def test_tiles_map_back_to_their_source_exactly(tmp_path: Path):
    ds = big_image(tmp_path)
    source = {(s.category_id, s.bbox): s for s in ds.images[0].annotations}
    tiled = tile_dataset(ds, Tiling(128, 0.25, min_visibility=0.3, negatives=1.0), Report())
    held = set()
    for tile in tiled.images:
        stem, x, y = tile_origin(tile.file_name)
        assert stem == "frame" and tile.window == (x, y, x + tile.width, y + tile.height) and tile.split == "train"
        for a in tile.annotations:
            whole = source.get((a.category_id, in_source(a, tile)))
            if whole is None:  # a piece of an object cut by this tile's border
                continue
            held.add(whole.bbox)  # an object the tile holds entirely comes back to the same coordinates, to the bit
            if a.polygons:
                assert [[v + (x if k % 2 == 0 else y) for k, v in enumerate(p)] for p in a.polygons] == whole.polygons
            if a.rle is not None:
                assert np.array_equal(decode_mask(a.rle), decode_mask(whole.rle)[y:y + tile.height, x:x + tile.width])
    assert held == {b for _, b in list(source)[:3]}  # each small object whole in at least one tile
    assert tile_origin("frame.jpg") is None and tile_origin(tile_name("a/b__c.png", 64, 0)) == ("b__c", 64, 0)


def test_a_cut_polygon_is_the_part_of_the_mask_inside_the_tile(tmp_path: Path):
    ds = big_image(tmp_path)
    tri = ds.images[0].annotations[1]
    full = polygons_to_mask(tri.polygons, 200, 300)
    tiled = tile_dataset(ds, Tiling(128, 0.25, min_visibility=0.05), Report())
    for tile in tiled.images:
        _, x, y = tile_origin(tile.file_name)
        for a in tile.annotations:
            if a.polygons:
                piece = polygons_to_mask(a.polygons, tile.height, tile.width)
                truth = full[y:y + tile.height, x:x + tile.width]
                assert abs(int(piece.sum()) - int(truth.sum())) <= 0.05 * truth.sum() + 8  # rasterised edges only


def test_an_object_no_tile_holds_enough_of_is_a_reported_loss_and_pieces_are_reported(tmp_path: Path):
    ds = big_image(tmp_path)
    report = Report()
    tiled = tile_dataset(ds, Tiling(128, 0.25, min_visibility=0.9, negatives=0), report)
    kinds = {(c.action, c.kind): c for c in report.changes}
    assert kinds[("dropped", "cut_by_tiles")].annotations_lost == 1 and report.annotations_lost == 1
    assert ("warning", "tile_piece_left_out") in kinds
    assert all(t.annotations for t in tiled.images)  # negatives 0: no empty tile kept
    lenient = Report()
    tile_dataset(ds, Tiling(128, 0.25, min_visibility=0.1), lenient)
    assert lenient.annotations_lost == 0 and any(c.kind == "cut_by_tile" for c in lenient.changes)


@pytest.mark.parametrize("kwargs,match", [({"size": 16}, "at least 32 px"), ({"size": 128, "overlap": 1.0}, "not including, 1"),
                                          ({"size": 128, "min_visibility": 0}, "above 0"),
                                          ({"size": 128, "negatives": -1}, "0 or more")])
def test_bad_tiling_is_a_named_error(kwargs: dict, match: str):
    with pytest.raises(DetftError, match=match):
        Tiling(**kwargs)


def test_convert_tile_writes_each_tile_as_its_own_crop_and_reads_back(tmp_path: Path, capsys):
    from PIL import Image

    from detft.cli import main
    from detft.operations.convert import load

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(tmp_path / "frame.png")
    doc = {"images": [{"id": 1, "file_name": "frame.png", "width": 300, "height": 200}],
           "categories": [{"id": 1, "name": "a"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "iscrowd": 0},
                           {"id": 2, "image_id": 1, "category_id": 1, "bbox": [200, 120, 40, 40], "iscrowd": 0}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    assert main(["convert", str(tmp_path / "ann.json"), str(tmp_path / "out"), "--tile", "128", "--tile-overlap",
                 "0.25", "--tile-negatives", "0"]) == 0
    assert "tiled 1 images into" in capsys.readouterr().out
    ds = load(tmp_path / "out", None, Report())
    source = np.asarray(Image.open(tmp_path / "frame.png"))
    assert ds.images and all(im.annotations for im in ds.images)
    for im in ds.images:
        _, x, y = tile_origin(im.file_name)
        assert np.array_equal(np.asarray(Image.open(im.path)), source[y:y + im.height, x:x + im.width])  # lossless PNG


def test_training_on_tiles_keeps_each_source_image_s_tiles_in_one_split(tmp_path: Path):
    from helpers import make_data

    from detft import TrainConfig
    from detft.data.loading import load_data

    data = make_data(tmp_path / "data", n=10, size=160, val_is_train=False)
    loaded = load_data(TrainConfig(data=str(data), tile=96, tile_overlap=0.25, tile_negatives=0.5))
    train = {tile_origin(t.file_name)[0] for t in loaded.train}
    val = {tile_origin(t.file_name)[0] for t in loaded.val}
    assert train and val and not train & val
    assert all(t.width <= 96 and t.height <= 96 for t in loaded.train + loaded.val)


def test_a_tiled_run_reports_the_full_image_score_it_is_used_at(tmp_path: Path, capsys):
    """Training on tiles ends by scoring the full-size val images sliced as it was tiled (the number a user gets
    with --slice), the tile-level score beside it; ``detft eval --weights RUN`` gives the same number, and so does
    ``--slice <tile>`` on the full images."""

    import tiny_models  # noqa: F401  (registers tiny_fasterrcnn)
    from helpers import make_data

    from detft.cli import main

    data = make_data(tmp_path / "data", n=6, size=160, val_is_train=False)
    run = tmp_path / "runs" / "tiled"
    assert main(["train", "--data", str(data), "--model", "tiny_fasterrcnn", "--weights", "none", "--epochs", "1",
                 "--batch", "2", "--workers", "0", "--imgsz", "96", "--augment", "none", "--tile", "96",
                 "--project", str(tmp_path / "runs"), "--name", "tiled", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((run / "eval.json").read_text())
    assert doc["slicing"]["size"] == 96 and doc["tiles"]["size"] == 96 and doc["tiles"]["images"] > doc["n_images"]
    ap = doc["metrics"]["bbox"]["stats"]["AP"]
    assert "full-size images predicted in 96 px windows" in printed and "tiles of 96 px" in printed
    assert printed.rstrip().endswith(f"run folder: {run}") and f"AP {ap:.4f}" in printed.split("scoring the full-size")[1]
    assert main(["eval", "--weights", str(run), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "eval.json").read_text())
    assert again["metrics"]["bbox"]["stats"] == doc["metrics"]["bbox"]["stats"] and again["tiles"] == doc["tiles"]
    detections = json.loads((run / "detections.json").read_text())
    assert detections and json.loads((tmp_path / "again" / "detections.json").read_text()) == detections
    assert main(["eval", "--weights", str(run), "--slice", "96"]) == 0
    sliced = json.loads((run / "eval_slice96" / "eval.json").read_text())
    assert sliced["metrics"]["bbox"]["stats"]["AP"] == ap
    assert json.loads((run / "eval_slice96" / "detections.json").read_text()) == detections
    # used as it was evaluated: predict, rank, video and the API slice a tiled run unless told not to
    import detft

    assert detft.load(run).slicing.size == 96 and detft.load(run, slice=None).slicing is None
    capsys.readouterr()
    assert main(["predict", "--weights", str(run), "--source", str(data / "images" / "val"), "--out",
                 str(tmp_path / "pred")]) == 0
    assert "predicted in 96 px windows" in capsys.readouterr().err
    assert main(["predict", "--weights", str(run), "--source", str(data / "images" / "val"), "--out",
                 str(tmp_path / "whole"), "--no-slice"]) == 0
    assert "windows" not in capsys.readouterr().err
    assert main(["eval", "--weights", str(run), "--no-slice"]) == 0
    whole = json.loads((run / "eval_whole" / "eval.json").read_text())
    assert "slicing" not in whole and json.loads((run / "eval.json").read_text())["slicing"]["size"] == 96
