"""Integration on the real BCCD dataset (Pascal VOC): convert to COCO and YOLO, count everything."""

from __future__ import annotations

import json
from pathlib import Path

import defusedxml.ElementTree as ET
import yaml

from detft.cli import main
from detft.formats.yolo import label_path


def xml_object_count(bccd: Path) -> int:
    return sum(len(ET.parse(f).getroot().findall("object")) for f in (bccd / "Annotations").glob("*.xml"))


def test_bccd_to_coco_and_yolo_counts_match_the_report(bccd: Path, tmp_path: Path, capsys):
    total = xml_object_count(bccd)
    assert main(["convert", str(bccd), str(tmp_path / "coco")]) == 0
    report = json.loads((tmp_path / "coco" / "convert_report.json").read_text())
    lost = report["annotations_lost"]
    assert lost == sum(c["annotations_lost"] for c in report["changes"])
    assert {c["kind"] for c in report["changes"] if c["annotations_lost"]} == {"degenerate_box"}
    n_coco = 0
    for f in (tmp_path / "coco" / "annotations").glob("*.json"):
        doc = json.loads(f.read_text())
        n_coco += len(doc["annotations"])
        assert [c["name"] for c in doc["categories"]] == ["Platelets", "RBC", "WBC"]
        assert min(a["id"] for a in doc["annotations"]) == 1 and min(i["id"] for i in doc["images"]) == 1
    assert n_coco == total - lost

    assert main(["convert", str(bccd), str(tmp_path / "yolo"), "--to", "yolo"]) == 0
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data["names"] == {0: "Platelets", 1: "RBC", 2: "WBC"} and data["task"] == "detect"
    images = list((tmp_path / "yolo" / "images").rglob("*.jpg"))
    assert len(images) == 364
    n_yolo = sum(len(label_path(p).read_text().splitlines()) for p in images)
    assert n_yolo == total - lost
    splits = {s: len(list((tmp_path / "yolo" / "images" / s).glob("*.jpg"))) for s in ("train", "val", "test")}
    assert splits == {"train": 205, "val": 87, "test": 72}  # the dataset's own ImageSets


def test_bccd_resplit_is_deterministic_and_inspect_draws(bccd: Path, tmp_path: Path, capsys):
    args = ["convert", str(bccd), "--split", "0.8,0.2,0", "--seed", "3"]
    assert main(args[:2] + [str(tmp_path / "a")] + args[2:]) == 0
    assert main(args[:2] + [str(tmp_path / "b")] + args[2:]) == 0
    a = json.loads((tmp_path / "a" / "annotations" / "instances_val.json").read_text())
    b = json.loads((tmp_path / "b" / "annotations" / "instances_val.json").read_text())
    assert [i["file_name"] for i in a["images"]] == [i["file_name"] for i in b["images"]]
    assert len(a["images"]) == round(0.2 * 364)
    assert not (tmp_path / "a" / "annotations" / "instances_test.json").exists()
    capsys.readouterr()
    grid = tmp_path / "grid.png"
    assert main(["inspect", str(tmp_path / "a"), "--grid", str(grid), "-n", "4"]) == 0
    out = capsys.readouterr().out
    assert "RBC" in out and "train boxes" in out and "COCO areas" in out
    from PIL import Image

    assert Image.open(grid).size == (640, 640)
