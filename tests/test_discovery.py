"""Dataset folders as they were published (#28): images and annotations paired wherever they lie, with no flags.

Each fixture is one layout seen in public datasets, VOC XML as labelImg writes it (``<folder>``, ``<filename>``,
``<path>`` from the labeller's machine, ``<size>``, ``<object>`` with ``pose/truncated/difficult``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import doc_block, make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detft.annotations.report import Report
from detft.cli import main
from detft.errors import DetftError
from detft.formats import detect
from detft.formats.pairing import ImageIndex, split_of_path
from detft.operations.convert import load

BOXES = {"000": (5, 6, 30, 40), "001": (10, 4, 50, 30), "002": (2, 2, 20, 44), "003": (30, 10, 60, 40)}


def voc_xml(filename: str | None, boxes: list[tuple[float, ...]], size: tuple[int, int] = (64, 48),
            label: str = "cell") -> str:
    name = f"\t<filename>{filename}</filename>\n" if filename is not None else ""
    objects = "".join(
        f"\t<object>\n\t\t<name>{label}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{b[0]}</xmin>\n\t\t\t<ymin>{b[1]}</ymin>\n"
        f"\t\t\t<xmax>{b[2]}</xmax>\n\t\t\t<ymax>{b[3]}</ymax>\n\t\t</bndbox>\n\t</object>\n" for b in boxes)
    return (f"<annotation>\n\t<folder>images</folder>\n{name}\t<path>C:\\Users\\me\\Desktop\\data\\{filename}</path>\n"
            f"\t<source>\n\t\t<database>Unknown</database>\n\t</source>\n\t<size>\n\t\t<width>{size[0]}</width>\n"
            f"\t\t<height>{size[1]}</height>\n\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n{objects}"
            "</annotation>\n")


def put(root: Path, image: str, xml: str, stem: str, filename: str | None = "same", seed: int = 0) -> None:
    """Image ``root/image`` and, for it, ``root/xml`` holding BOXES[stem] and the given <filename>."""
    make_image(root / image, 64, 48, seed=seed)
    (root / xml).parent.mkdir(parents=True, exist_ok=True)
    (root / xml).write_text(voc_xml(Path(image).name if filename == "same" else filename, [BOXES[stem]]))


def boxes_by_image(ds) -> dict[str, list[tuple]]:
    """Each image's boxes in VOC pixels (1-based), keyed by the image file's stem."""
    return {Path(im.path).stem: sorted((a.bbox[0] + 1, a.bbox[1] + 1, a.bbox[2], a.bbox[3]) for a in im.annotations)
            for im in ds.images}


@pytest.mark.parametrize("images,annotations", [("IMAGES", "ANNOTATIONS"), ("images", "annots"),
                                                ("Train_Img", "Train_XML")])
def test_voc_xml_and_images_in_sibling_folders_of_any_name(tmp_path: Path, images: str, annotations: str):
    for i, stem in enumerate(("000", "001")):
        put(tmp_path, f"{images}/{stem}.jpg", f"{annotations}/{stem}.xml", stem, seed=i)
    assert detect(tmp_path) == "voc"
    ds = load(tmp_path, None, Report())
    assert boxes_by_image(ds) == {s: [BOXES[s]] for s in ("000", "001")}


def test_a_second_folder_pair_for_validation_is_the_val_split(tmp_path: Path):
    put(tmp_path, "Train_Images/000.jpg", "Train_Annotations/000.xml", "000")
    put(tmp_path, "Validation_Images/001.jpg", "Validation_Annotations/001.xml", "001", seed=1)
    ds = load(tmp_path, None, Report())
    assert {Path(im.path).stem: im.split for im in ds.images} == {"000": "train", "001": "val"}


def test_split_folders_each_with_their_own_image_and_annotation_folders(tmp_path: Path):
    put(tmp_path, "dataset/train/images/000.jpg", "dataset/train/annots/000.xml", "000")
    put(tmp_path, "dataset/train/images/001.jpg", "dataset/train/annots/001.xml", "001", seed=1)
    put(tmp_path, "dataset/valid/images/000.jpg", "dataset/valid/annots/000.xml", "002", seed=2)  # same stem, other split
    ds = load(tmp_path / "dataset", None, Report())
    got = sorted((im.split, Path(im.path).relative_to(tmp_path / "dataset").as_posix(), len(im.annotations))
                 for im in ds.images)
    assert got == [("train", "train/images/000.jpg", 1), ("train", "train/images/001.jpg", 1),
                   ("val", "valid/images/000.jpg", 1)]
    val = next(im for im in ds.images if im.split == "val")
    assert val.annotations[0].bbox[2:] == BOXES["002"][2:]  # the valid/ XML paired with the valid/ image


@pytest.mark.parametrize("written,file", [("DSC_0042.JPG", "00001.jpg"), ("000", "000.jpg"),
                                          ("patches_104", "patches_104.jpg"), ("000.png", "000.jpg")])
def test_a_filename_that_does_not_name_the_image_pairs_by_the_annotation_file(tmp_path: Path, written: str, file: str):
    """Stale (the camera's name kept after renaming), without its extension, or with another extension."""
    stem = Path(file).stem
    make_image(tmp_path / "images" / file, 64, 48)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / f"{stem}.xml").write_text(voc_xml(written, [BOXES["001"]]))
    report = Report()
    ds = load(tmp_path, None, report)
    assert [Path(im.path).name for im in ds.images] == [file] and ds.images[0].file_name == file
    rule = "by the name in the file, another extension" if Path(written).stem == stem else "by the annotation file's own name"
    assert any(f"1 {rule}" in n for n in report.notes), report.notes


def test_one_image_described_by_several_annotation_files_is_one_image_with_every_object(tmp_path: Path):
    make_image(tmp_path / "images" / "000.jpg", 64, 48)
    for group, box in (("cells", BOXES["000"]), ("platelets", BOXES["003"])):
        (tmp_path / "labels" / group).mkdir(parents=True)
        (tmp_path / "labels" / group / "000.xml").write_text(voc_xml("000.jpg", [box], label=group))
    report = Report()
    ds = load(tmp_path, None, report)
    assert len(ds.images) == 1 and boxes_by_image(ds) == {"000": sorted([BOXES["000"], BOXES["003"]])}
    assert sorted(c.name for c in ds.categories) == ["cells", "platelets"]
    assert not report.changes and any("joined into one image" in n for n in report.notes)


def test_awkward_names_png_bytes_in_a_jpg_zero_size_and_float_coordinates(tmp_path: Path):
    from PIL import Image

    folder = tmp_path / "my images"
    folder.mkdir()
    Image.new("RGB", (64, 48), (90, 30, 30)).save(folder / "cell (1) #2 a=b.jpg", format="PNG")  # PNG bytes
    (tmp_path / "xml files").mkdir()
    xml = voc_xml("cell (1) #2 a=b.jpg", [(-3, 5.5, 30.25, 40)], size=(0, 0))
    (tmp_path / "xml files" / "cell (1) #2 a=b.xml").write_text(xml)
    report = Report()
    ds = load(tmp_path, None, report)
    im = ds.images[0]
    assert (im.width, im.height) == (64, 48) and im.path == folder / "cell (1) #2 a=b.jpg"
    assert im.annotations[0].bbox == (0, 4.5, 30.25, 40)  # VOC's 1-based -3 clipped at the left edge, reported
    assert [(c.action, c.kind) for c in report.changes] == [("clipped", "box_outside_image")]
    assert any("image size of 0 x 0" in n for n in report.notes)


def test_unannotated_images_are_negatives_and_annotations_without_an_image_are_dropped_by_name(tmp_path: Path):
    put(tmp_path, "images/000.jpg", "annotations/000.xml", "000")
    make_image(tmp_path / "images" / "background.jpg", 64, 48, seed=3)
    (tmp_path / "annotations" / "001.xml").write_text(voc_xml("001.jpg", [BOXES["001"]]))
    make_image(tmp_path / "unrelated" / "logo.png", 16, 16)  # no image of this folder is labelled: not a negative
    report = Report()
    ds = load(tmp_path, None, report)
    assert sorted((Path(im.path).name, len(im.annotations)) for im in ds.images) == [("000.jpg", 1), ("background.jpg", 0)]
    note = next(n for n in report.notes if n.startswith("pairing under"))
    assert "1 images paired" in note and "1 negatives" in note and "1 of 2 annotation files without an image" in note
    assert [(c.kind, c.annotations_lost) for c in report.changes if c.action == "dropped"] == [("missing_image", 1)]
    assert any("001.jpg" in c.detail for c in report.changes)


def test_labelme_json_whose_image_path_is_from_the_labelling_machine(tmp_path: Path):
    make_image(tmp_path / "images" / "0001.jpg", 64, 48)
    (tmp_path / "labels").mkdir()
    doc = {"version": "5.5.0", "flags": {}, "imagePath": "C:\\Users\\me\\Desktop\\IMG_20240101_1200.jpg",
           "imageData": None, "imageHeight": 48, "imageWidth": 64,
           "shapes": [{"label": "cell", "points": [[5, 5], [30, 5], [30, 30]], "group_id": None,
                       "shape_type": "polygon", "flags": {}}]}
    (tmp_path / "labels" / "0001.json").write_text(json.dumps(doc))
    report = Report()
    ds = load(tmp_path, None, report)
    assert ds.images[0].path == tmp_path / "images" / "0001.jpg" and len(ds.images[0].annotations) == 1


def test_inspect_prints_how_the_images_were_paired(tmp_path: Path, capsys):
    put(tmp_path, "IMAGES/000.jpg", "ANNOTATIONS/000.xml", "000", filename="DSC_1.JPG")
    put(tmp_path, "IMAGES/001.jpg", "ANNOTATIONS/001.xml", "001", seed=1)
    assert main(["inspect", str(tmp_path), "--grid", str(tmp_path / "grid.png")]) == 0
    out = capsys.readouterr().out
    assert "2 images paired (1 by the name in the file, 1 by the annotation file's own name)" in out


def test_discovery_stays_inside_the_root_and_refuses_a_root_with_too_many_files(tmp_path: Path):
    put(tmp_path / "data", "images/000.jpg", "annots/000.xml", "000")
    make_image(tmp_path / "outside" / "001.jpg", 64, 48)
    (tmp_path / "data" / "images" / "001.jpg").symlink_to(tmp_path / "outside" / "001.jpg")  # a link out of the root
    (tmp_path / "data" / "loop").symlink_to(tmp_path / "data")  # a folder loop
    index = ImageIndex(tmp_path / "data")
    assert sorted(p.name for paths in index.by_name.values() for p in paths) == ["000.jpg"]
    with pytest.raises(DetftError, match="more than 1 files"):
        ImageIndex(tmp_path / "data", max_files=1)


def test_split_words_in_folder_names():
    root = Path("/d")
    assert split_of_path(Path("/d/Validation_Images/a.jpg"), root) == "val"
    assert split_of_path(Path("/d/train/annots/a.xml"), root) == "train"
    assert split_of_path(Path("/d/Train_XML/a.xml"), root) == "train"
    assert split_of_path(Path("/d/trainers/a.xml"), root) is None  # a word, not a substring
    assert split_of_path(Path("/d/a.xml"), root) is None


IMAGE_FOLDERS = ["images", "IMAGES", "JPEGImages", "imgs", "Photos"]
XML_FOLDERS = ["annotations", "ANNOTATIONS", "annots", "xml", "Labels"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=st.sampled_from(IMAGE_FOLDERS), xml=st.sampled_from(XML_FOLDERS), split=st.booleans(),
       names=st.lists(st.sampled_from(["same", "stale", "no extension"]), min_size=4, max_size=4))
def test_a_known_dataset_moved_into_any_sibling_or_split_layout_reads_the_same(tmp_path_factory, images, xml, split,
                                                                               names):
    root = tmp_path_factory.mktemp("layout")
    for i, stem in enumerate(BOXES):
        where = (("train" if i < 3 else "valid") + "/") if split else ""
        written = {"same": f"{stem}.jpg", "stale": f"IMG_{9000 + i}.JPG", "no extension": stem}[names[i]]
        put(root, f"{where}{images}/{stem}.jpg", f"{where}{xml}/{stem}.xml", stem, filename=written, seed=i)
    report = Report()
    ds = load(root, None, report)
    assert boxes_by_image(ds) == {s: [b] for s, b in BOXES.items()}
    expected = {s: ("train" if i < 3 else "val") if split else None for i, s in enumerate(BOXES)}
    assert {Path(im.path).stem: im.split for im in ds.images} == expected
    assert not [c for c in report.changes if c.action == "dropped"]
    shutil.rmtree(root)


def test_train_takes_images_dir_for_images_that_lie_outside_the_dataset_folder(tmp_path: Path):
    from detft import TrainConfig
    from detft.data.loading import load_data

    for i, stem in enumerate(("000", "001", "002", "003", "004")):
        make_image(tmp_path / "photos" / f"{stem}.jpg", 64, 48, seed=i)
        (tmp_path / "data" / "Annotations").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", [BOXES["000"]]))
    with pytest.raises(DetftError, match="none could be kept"):
        load_data(TrainConfig(data=str(tmp_path / "data")))
    loaded = load_data(TrainConfig(data=str(tmp_path / "data"), images_dir=str(tmp_path / "photos")))
    assert len(loaded.train) + len(loaded.val) == 5 and all(im.path.parent == tmp_path / "photos"
                                                            for im in loaded.dataset.images)


def test_yolo_labels_beside_their_images_in_one_flat_folder(tmp_path: Path):
    """A darknet-era folder: img.jpg + img.txt side by side, classes in obj.names, split lists among the labels."""
    for i in range(4):
        make_image(tmp_path / "plates" / f"car ({i}).jpg", 64, 48, seed=i)
        (tmp_path / "plates" / f"car ({i}).txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (tmp_path / "plates" / "obj.names").write_text("plate\nhelmet\n")
    (tmp_path / "plates" / "train.txt").write_text("data/obj/car (0).jpg\ndata/obj/car (1).jpg\ndata/obj/car (2).jpg\n")
    (tmp_path / "plates" / "test.txt").write_text("data/obj/car (3).jpg\n")
    assert detect(tmp_path / "plates") == "yolo"
    report = Report()
    ds = load(tmp_path / "plates", None, report)
    assert sorted((im.file_name, im.split, len(im.annotations)) for im in ds.images) == [
        ("car (0).jpg", "train", 1), ("car (1).jpg", "train", 1), ("car (2).jpg", "train", 1), ("car (3).jpg", "test", 1)]
    assert [c.name for c in ds.categories] == ["plate", "helmet"]
    assert not report.changes  # the split lists are not orphan labels
    assert any("never used: helmet" in n for n in report.notes) and any("split lists" in n for n in report.notes)


def test_the_one_dataset_one_level_down_is_read_and_several_are_listed(tmp_path: Path):
    """``repo/balloon/{train,val}`` (Matterport's balloon download) read from ``repo/`` with a note; two datasets
    side by side are an error that lists both with their formats and image counts."""
    put(tmp_path / "download" / "balloon", "train/images/000.jpg", "train/annots/000.xml", "000")
    put(tmp_path / "download" / "balloon", "val/images/001.jpg", "val/annots/001.xml", "001", seed=1)
    (tmp_path / "download" / "README.md").write_text("balloon dataset")
    report = Report()
    ds = load(tmp_path / "download", None, report)
    assert sorted((im.split, len(im.annotations)) for im in ds.images) == [("train", 1), ("val", 1)]
    assert any("read " + str(tmp_path / "download" / "balloon") + " (voc), the one folder" in n for n in report.notes)
    make_image(tmp_path / "download" / "cells" / "images" / "c.jpg", 64, 48)
    (tmp_path / "download" / "cells" / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "c.jpg", "width": 64, "height": 48}], "categories": [{"id": 1, "name": "c"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "iscrowd": 0}]}))
    with pytest.raises(DetftError, match=r"several folders in it do: .*balloon \(voc, 2 images\); .*cells \(coco, 1 images\)"):
        load(tmp_path / "download", None, Report())


def test_a_folder_that_cannot_be_listed_is_said_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import os

    put(tmp_path, "images/000.jpg", "annots/000.xml", "000")
    (tmp_path / "locked").mkdir()
    real = os.scandir

    def scandir(path="."):  # what a folder without read permission gives (the tests run as root, who reads all)
        if Path(path) == tmp_path / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = Report()
    ds = load(tmp_path, None, report)
    assert len(ds.images) == 1
    assert any("1 folder(s) could not be listed" in n and "locked: Permission denied" in n for n in report.notes)


def test_two_formats_over_the_same_images_are_never_merged(tmp_path: Path, capsys):
    """Two annotation sets of the same image: one is read (the one keeping most objects; on a tie the first
    found), said with both counts, never both (the object would be there twice)."""
    put(tmp_path / "data", "images/000.jpg", "annotations/000.xml", "000")
    (tmp_path / "data" / "boxes.csv").write_text("filename,class,xmin,ymin,xmax,ymax\n000.jpg,cell,5,6,30,40\n")
    assert main(["convert", str(tmp_path / "data"), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "read voc, which keeps the most objects with their images (voc: 1 objects on 1 images, csv: 1" in out
    doc = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert len(doc["annotations"]) == 1
    assert main(["convert", str(tmp_path / "data"), str(tmp_path / "out2"), "--from", "csv"]) == 0


def test_a_csv_finds_the_images_it_names_in_folders_of_any_name_below_it(tmp_path: Path):
    make_image(tmp_path / "data" / "Photos 2023" / "a.jpg", 64, 48)
    make_image(tmp_path / "data" / "Photos 2024" / "b.jpg", 64, 48, seed=1)
    (tmp_path / "data" / "labels.csv").write_text("filename,class,xmin,ymin,xmax,ymax\n"
                                                  "a.jpg,cell,5,6,30,40\nb.jpg,cell,1,1,20,20\nc.jpg,cell,1,1,9,9\n")
    report = Report()
    ds = load(tmp_path / "data", None, report)
    assert sorted(im.path.parent.name for im in ds.images) == ["Photos 2023", "Photos 2024"]
    assert any("2 images paired (2 by the name in the file), 1 of 3 image names without an image" in n
               for n in report.notes)


# ------------------------------------------------------------------ split lists read whole (#34, item 3)
WGISD_IDS = ["CDY_2018", "CFR_1659", "SVB_1952", "SYH_2017-04-27_1332", "CSV_1873", "CDY_20180427_153201477_BURST000_COVER_TOP"]


@pytest.mark.parametrize("ending,bom", [("\r", b""), ("\r\n", b"\xef\xbb\xbf"), ("\n", b"")])
def test_voc_split_lists_are_read_whole_with_any_line_ending(tmp_path: Path, ending: str, bom: bytes):
    """Ids as wgisd and RSOD commit them (one per line, no suffix), written with classic-Mac CR, CRLF with a BOM, or
    LF; blank lines, VOC's per-class form (``id  1`` / ``id -1``) and a prefix from the author's machine
    (``aerial/x.jpg``): each list says how many entries it had and how many matched, and every id lands in its split."""
    for i, stem in enumerate(WGISD_IDS):
        make_image(tmp_path / "JPEGImages" / f"{stem}.jpg", 64, 48, seed=i)
        (tmp_path / "Annotations").mkdir(exist_ok=True)
        (tmp_path / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", [BOXES["000"]]))
    main_dir = tmp_path / "ImageSets" / "Main"
    main_dir.mkdir(parents=True)
    lists = {"train": [WGISD_IDS[0], "", WGISD_IDS[1], WGISD_IDS[2]],
             "val": [f"{WGISD_IDS[3]}  1", f"{WGISD_IDS[4]} -1", "", "gone_id"],
             "test": [f"aerial/{WGISD_IDS[5]}.jpg"]}
    for split, lines in lists.items():
        (main_dir / f"{split}.txt").write_bytes(bom + ending.join(lines).encode() + ending.encode())
    report = Report()
    ds = load(tmp_path, None, report)
    splits = {Path(im.file_name).stem: im.split for im in ds.images}
    assert splits == {**dict.fromkeys(WGISD_IDS[:3], "train"), **dict.fromkeys(WGISD_IDS[3:5], "val"),
                      WGISD_IDS[5]: "test"}
    notes = "\n".join(report.notes)
    assert "train.txt: 3 entries, 3 matched" in notes and "test.txt: 1 entries, 1 matched" in notes
    assert "val.txt: 3 entries, 2 matched an annotation file, 1 did not" in notes
    missing = [c for c in report.changes if c.kind == "missing_annotation_file"]
    assert len(missing) == 1 and "'gone_id'" in missing[0].detail and missing[0].where.endswith("val.txt")


@pytest.mark.parametrize("ending", ["\r", "\r\n"])
def test_yolo_split_lists_with_any_line_ending(tmp_path: Path, ending: str):
    """darknet/CVAT YOLO 1.1 lists (``data/obj_train_data/x.jpg``) with CR or CRLF endings list every image."""
    from detft.formats.base import read_list

    listing = tmp_path / "train.txt"
    listing.write_bytes(ending.join(f"data/obj_train_data/frame_{i:06d}.jpg" for i in range(29)).encode() + b"\r")
    assert read_list(listing) == [f"data/obj_train_data/frame_{i:06d}.jpg" for i in range(29)]


def test_a_yolo_yaml_and_lists_written_on_the_authors_machine(tmp_path: Path):
    """The shape DocLayNet-style repositories commit: ``path:`` an absolute folder of the author's machine, ``train:
    train.txt`` listing absolute paths (CRLF), ``val.txt`` with ``./`` entries, a Windows path and one image that is
    gone; a page name present in both splits pairs by the end of its path, not by its name alone."""
    names = {"train": ["page 1.jpg", "Seite_ü.jpg", "p3.jpg"], "val": ["page 1.jpg", "v2.jpg"]}
    for split, files in names.items():
        for i, name in enumerate(files):
            make_image(tmp_path / "images" / split / name, 64, 48, seed=i)
            (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
            (tmp_path / "labels" / split / Path(name).with_suffix(".txt")).write_text(f"{i % 2} 0.5 0.5 0.2 0.3\n")
    (tmp_path / "data.yaml").write_text("path: /home/alice/datasets/doclaynet\ntrain: train.txt\nval: val.txt\n"
                                        "test: val.txt\n\nnames:\n  0: Caption\n  1: Table\n")
    (tmp_path / "train.txt").write_bytes(b"\r\n".join(f"/home/alice/datasets/doclaynet/images/train/{n}".encode()
                                                      for n in names["train"]) + b"\r\n")
    (tmp_path / "val.txt").write_text("./images/val/page 1.jpg\nC:\\Users\\alice\\doclaynet\\images\\val\\v2.jpg\n"
                                      "./images/val/gone.jpg\n")
    report = Report()
    ds = load(tmp_path, None, report)
    got = sorted((im.split, im.path.relative_to(tmp_path).as_posix()) for im in ds.images if im.path is not None)
    assert got == sorted((s, f"images/{s}/{n}") for s, files in names.items() for n in files)
    assert all(len(im.annotations) == 1 for im in ds.images if im.path is not None)
    notes = "\n".join(report.notes)
    assert "train.txt: 3 entries, 3 matched an image (3 not where the entry says" in notes
    assert "val.txt: 3 entries, 2 matched an image (1 not where the entry says" in notes and "1 did not" in notes
    fixes = [c for c in report.changes if c.kind == "dataset_path_not_found"]
    assert len(fixes) == 1 and "/home/alice/datasets/doclaynet" in fixes[0].detail
    assert any(c.kind == "split_reused" for c in report.changes)  # test: val.txt is val, said once
    missing = [c for c in report.changes if c.kind == "missing_image"]
    assert len(missing) == 1 and "gone.jpg" in missing[0].where + missing[0].detail


def test_a_darknet_list_with_a_stale_prefix_pairs_by_name(tmp_path: Path):
    """CVAT's YOLO 1.1 export re-zipped under another folder: ``train.txt`` says ``data/obj_train_data/x.jpg`` but
    the images now lie in ``frames/``; each pairs by name, labels beside, and the list says so."""
    for i in range(3):
        make_image(tmp_path / "frames" / f"frame_{i:06d}.jpg", 64, 48, seed=i)
        (tmp_path / "frames" / f"frame_{i:06d}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "obj.names").write_text("car\n")
    (tmp_path / "obj.data").write_text("classes = 1\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    (tmp_path / "train.txt").write_bytes(b"\r".join(f"data/obj_train_data/frame_{i:06d}.jpg".encode() for i in range(3)))
    report = Report()
    ds = load(tmp_path, None, report)
    assert sorted((im.file_name, len(im.annotations)) for im in ds.images) == [
        (f"frame_{i:06d}.jpg", 1) for i in range(3)]
    assert any("train.txt: 3 entries, 3 matched an image (3 not where" in n for n in report.notes)


def test_a_roboflow_data_yaml_pointing_at_a_renamed_split_folder_is_read_past(tmp_path: Path):
    """Roboflow's data.yaml as it writes it (``val: ../valid/images``, ``nc``, ``names`` as a list, a ``roboflow:``
    block) over a dataset whose valid/ was renamed validate/: the folder the root holds is read, reported as a fix
    naming both paths, not a stop at the first broken pointer."""
    (tmp_path / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\nnames: ['CUOX', 'NOCUOX']\n\n"
        "roboflow:\n  workspace: mineralizadosyolov3old\n  project: mineralesall\n  version: 1\n  license: CC BY 4.0\n"
        "  url: https://universe.roboflow.com/mineralizadosyolov3old/mineralesall/dataset/1\n")
    for split, n in (("train", 3), ("validate", 2), ("test", 1)):
        for i in range(n):
            stem = f"IMG_{i:04d}_jpg.rf.{split[:3]}{i}a8c1e2f3"
            make_image(tmp_path / split / "images" / f"{stem}.jpg", 64, 48, seed=i)
            (tmp_path / split / "labels").mkdir(parents=True, exist_ok=True)
            (tmp_path / split / "labels" / f"{stem}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.3\n")
    report = Report()
    ds = load(tmp_path, None, report)
    assert sorted((im.split, len(im.annotations)) for im in ds.images) == [("test", 1)] + [("train", 1)] * 3 + [("val", 1)] * 2
    fixes = [c for c in report.changes if c.kind == "split_path_not_found"]
    assert len(fixes) == 1 and "'../valid/images' does not exist" in fixes[0].detail
    assert str(tmp_path / "validate" / "images") in fixes[0].detail


def test_yolo_class_ids_past_the_names_are_kept_and_mixed_rows_counted(tmp_path: Path):
    """A names list one class short (a class added after the export) and a label folder mixing box and polygon rows:
    every object is kept, the undeclared class under a generated name, both said."""
    (tmp_path / "data.yaml").write_text("train: train/images\nval: train/images\n\nnc: 2\nnames: ['crack', 'dent']\n")
    make_image(tmp_path / "train" / "images" / "a.jpg", 64, 48)
    (tmp_path / "train" / "labels").mkdir(parents=True)
    (tmp_path / "train" / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n2 0.3 0.3 0.1 0.1\n1 0.1 0.1 0.4 0.1 0.4 0.4 0.1 0.4\n2 0.7 0.7 0.1 0.1\n")
    report = Report()
    ds = load(tmp_path, None, report)
    assert [c.name for c in ds.sorted_categories()] == ["crack", "dent", "class2"]
    assert sorted(a.category_id for a in ds.images[0].annotations) == [0, 1, 2, 2]
    fix = [c for c in report.changes if c.kind == "undeclared_class"]
    assert len(fix) == 1 and "class index 2 is used by 2 object(s)" in fix[0].detail and report.annotations_lost == 0
    assert any("3 box rows and 1 polygon rows" in n for n in report.notes)


# ------------------------------------------------------------------ one mask per object (#34, item 6)
def _mask(path: Path, shape: tuple[int, int], box: tuple[int, int, int, int], value: int = 255) -> None:
    from PIL import Image

    m = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m).save(path)


def test_dsb_2018_one_binary_mask_per_object_loads_with_no_flag(tmp_path: Path):
    """Data Science Bowl 2018 / Matterport nucleus: ``<64-hex id>/images/<id>.png`` (RGBA) and ``<id>/masks/<64-hex>.png``,
    0/255 masks, one per nucleus; one class, named after the dataset folder unless --class-name names it."""
    from PIL import Image

    root = tmp_path / "stage1_train"
    ids = ["00071198d059ba7f5914a526d124d28e6d010c92466da21d4a04cd5413362552",
           "003cee89357d9fe13516167fd67b609a164651b21934585648c740d2c3d86dc1"]
    boxes = [[(2, 3, 12, 14), (30, 5, 44, 20), (10, 30, 25, 45)], [(5, 5, 15, 15)]]
    for k, (image_id, objects) in enumerate(zip(ids, boxes)):
        (root / image_id / "images").mkdir(parents=True)
        Image.fromarray(np.full((48, 64, 4), 40 + k, np.uint8), "RGBA").save(root / image_id / "images" / f"{image_id}.png")
        for j, box in enumerate(objects):
            _mask(root / image_id / "masks" / f"{hash((k, j)) & (1 << 64) - 1:016x}.png", (48, 64), box, 255 if j else 1)
    _mask(root / ids[1] / "masks" / "empty.png", (48, 64), (0, 0, 0, 0))
    assert detect(root) == "object-masks"
    report = Report()
    ds = load(root, None, report)
    got = sorted((Path(im.file_name).parent.parent.name[:6], sorted(tuple(int(v) for v in a.bbox) for a in im.annotations))
                 for im in ds.images)
    assert got == [(ids[0][:6], sorted(boxes[0])), (ids[1][:6], boxes[1])]
    assert [c.name for c in ds.categories] == ["stage1_train"] and any("stage1_train" in n for n in report.notes)
    assert [c.kind for c in report.changes] == ["empty_mask"] and report.annotations_lost == 1
    assert [c.name for c in load(root, None, Report(), class_name="nucleus").categories] == ["nucleus"]


@pytest.mark.parametrize("nested", [False, True])
def test_masks_per_object_beside_images(tmp_path: Path, nested: bool):
    """``images/<stem>.jpg`` with ``masks/<stem>_<n>.png`` or ``masks/<stem>/<n>.png``: an object each."""
    for i, stem in enumerate(("cell a", "cell b")):  # names with spaces, as exports write them
        make_image(tmp_path / "images" / f"{stem}.jpg", 64, 48, seed=i)
        for n, box in enumerate([(4, 4, 20, 20), (30, 10, 50, 40)][: i + 1]):
            _mask(tmp_path / "masks" / (f"{stem}/{n}.png" if nested else f"{stem}_{n}.png"), (48, 64), box)
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    ds = load(tmp_path, None, Report(), class_name="cell")
    assert sorted((im.file_name, len(im.annotations)) for im in ds.images) == [("images/cell a.jpg", 1),
                                                                              ("images/cell b.jpg", 2)]


# ------------------------------------------------------------------ custom text annotations (#34, item 7)
def test_per_image_text_files_with_pixel_corners_in_a_sibling_folder_load_with_one_template(tmp_path: Path, capsys):
    """DeepPCB's shape: ``group<id>/<id>/<id>NNN.jpg`` with ``group<id>/<id>_not/<id>NNN.txt`` of ``x1 y1 x2 y2 type``
    lines (type 1-6, no names file): every box kept, each file paired with its image by stem, an image without a
    file kept as a negative."""
    rows = {"00041000": ["4 5 30 22 1", "40 8 60 30 3"], "00041001": ["10 10 20 20 6"]}
    for i, (stem, lines) in enumerate(rows.items()):
        make_image(tmp_path / "PCBData" / "group00041" / "00041" / f"{stem}.jpg", 64, 48, seed=i)
        (tmp_path / "PCBData" / "group00041" / "00041_not").mkdir(parents=True, exist_ok=True)
        (tmp_path / "PCBData" / "group00041" / "00041_not" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    make_image(tmp_path / "PCBData" / "group00041" / "00041" / "00041002.jpg", 64, 48, seed=9)
    (tmp_path / "PCBData" / "trainval.txt").write_text("group00041/00041/00041000.jpg group00041/00041_not/00041000.txt\n")
    report = Report()
    ds = load(tmp_path / "PCBData", "text", report, fields="x1 y1 x2 y2 class")
    got = {Path(im.file_name).stem: sorted((ds.category_by_id()[a.category_id].name, a.bbox) for a in im.annotations)
           for im in ds.images}
    assert got == {"00041000": [("1", (4.0, 5.0, 30.0, 22.0)), ("3", (40.0, 8.0, 60.0, 30.0))],
                   "00041001": [("6", (10.0, 10.0, 20.0, 20.0))], "00041002": []}
    assert report.annotations_lost == 0
    assert main(["convert", str(tmp_path / "PCBData"), str(tmp_path / "coco"), "--from", "text", "--fields",
                 "x1 y1 x2 y2 class"]) == 0
    doc = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert len(doc["annotations"]) == 3 and len(doc["images"]) == 3


def test_one_text_file_for_all_images_with_a_header_names_file_and_normalized_centres(tmp_path: Path):
    make_image(tmp_path / "imgs" / "a b.jpg", 100, 50)
    make_image(tmp_path / "imgs" / "c.jpg", 100, 50, seed=1)
    (tmp_path / "classes.txt").write_text("scratch\ndent\n")
    (tmp_path / "all.txt").write_text(
        "file;id;cx;cy;w;h;conf\r\n"  # a header, CRLF, semicolons
        "a b.jpg;7;1;0.5;0.5;0.2;0.4;0.9\r\n"
        "c.jpg;8;0;0.25;0.5;0.1;0.2;0.8\r\n"
        "c.jpg;9;1;nan;0.5;0.1;0.2;0.7\r\n"
        "gone.jpg;10;0;0.5;0.5;0.1;0.1;0.5\r\n")
    report = Report()
    ds = load(tmp_path / "all.txt", "text", report, fields="image _ class cx cy w h score", coords="normalized")
    got = {im.file_name: [(ds.category_by_id()[a.category_id].name, a.bbox, a.attributes["score"])
                          for a in im.annotations] for im in ds.images}
    assert got == {"imgs/a b.jpg": [("dent", (40.0, 15.0, 60.0, 35.0), 0.9)],
                   "imgs/c.jpg": [("scratch", (20.0, 20.0, 30.0, 30.0), 0.8)]}
    assert any("read as a header" in n for n in report.notes)
    assert sorted(c.kind for c in report.changes) == ["bad_line", "missing_image"]


@pytest.mark.parametrize("fields,match", [("x1 y1 x2 class", "name one box"), ("x1 y1 x2 y2 cx class", "name one box"),
                                          ("x1 y1 x2 y2 kind", "unknown field"), ("x y w h class class", "twice")])
def test_a_text_template_that_cannot_be_read_is_named(tmp_path: Path, fields: str, match: str):
    (tmp_path / "a.txt").write_text("1 2 3 4 a\n")
    with pytest.raises(DetftError, match=match):
        load(tmp_path, "text", Report(), fields=fields)


def test_the_documented_adapter_example_loads_its_data(tmp_path: Path, capsys):
    """The adapter the docs show, written to a file as a user would, read through --from my_adapter.py."""
    (tmp_path / "my_adapter.py").write_text(doc_block("formats.md", "tests/test_discovery.py").code)
    data = tmp_path / "my_data"
    make_image(data / "photos" / "a.jpg", 64, 48)
    make_image(data / "photos" / "b.jpg", 64, 48, seed=1)
    (data / "photos" / "a.boxes").write_text("crack 4 5 20 10\ndent 30 8 12 12\n")
    (data / "photos" / "b.boxes").write_text("crack 1 1 10 10\nbroken\n")
    with pytest.raises(DetftError, match=r"adapter .*my_adapter.py failed on .*ValueError"):  # the user's code fails
        load(data, str(tmp_path / "my_adapter.py"), Report())
    (data / "photos" / "b.boxes").write_text("crack 1 1 10 10\n")
    report = Report()
    ds = load(data, str(tmp_path / "my_adapter.py"), report)
    got = sorted((im.file_name, ds.category_by_id()[a.category_id].name, a.bbox) for im in ds.images for a in im.annotations)
    assert got == [("photos/a.jpg", "crack", (4.0, 5.0, 24.0, 15.0)), ("photos/a.jpg", "dent", (30.0, 8.0, 42.0, 20.0)),
                   ("photos/b.jpg", "crack", (1.0, 1.0, 11.0, 11.0))]
    assert main(["convert", str(data), str(tmp_path / "out"), "--from", str(tmp_path / "my_adapter.py")]) == 0
    with pytest.raises(SystemExit):
        main(["convert", str(data), str(tmp_path / "out2"), "--from", "nosuch"])
    assert "or an adapter file my_adapter.py" in capsys.readouterr().err


def test_an_installed_package_adds_a_format_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from importlib.metadata import EntryPoint

    import detft.formats.adapters as adapters

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "shelf_reader.py").write_text(
        "def read(root):\n    return [{'image': 'shelf.png', 'split': 'val', 'objects': [{'class': 'can', "
        "'polygon': [2, 2, 20, 2, 20, 30, 2, 30]}]}]\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.setattr(adapters, "entry_points",
                        lambda group: [EntryPoint("shelves", "shelf_reader:read", group)] if group == adapters.GROUP else [])
    make_image(tmp_path / "data" / "deep" / "shelf.png", 64, 48)
    ds = load(tmp_path / "data", "shelves", Report())
    assert [(im.split, im.annotations[0].bbox, ds.category_by_id()[im.annotations[0].category_id].name)
            for im in ds.images] == [("val", (2.0, 2.0, 20.0, 30.0), "can")]
    assert main(["inspect", str(tmp_path / "data"), "--from", "shelves", "--grid", str(tmp_path / "g.png")]) == 0


@pytest.mark.parametrize("name", ["C:\\Users\\ana\\labelling\\frames\\f 01.jpg", "/home/ana/frames/f 01.jpg", "old/f 01.jpg"])
def test_coco_and_via_images_named_by_a_stale_or_foreign_path_pair_through_the_image_index(tmp_path: Path, name: str):
    """The name a COCO or VIA file gives, stale or from the author's machine, pairs with the image wherever it lies
    under the root (here data/batch1/), counted on the pairing line."""
    make_image(tmp_path / "data" / "batch1" / "f 01.jpg", 64, 48)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": name, "width": 64, "height": 48}], "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "iscrowd": 0}]}))
    report = Report()
    ds = load(tmp_path, None, report)
    assert ds.images[0].path == tmp_path / "data" / "batch1" / "f 01.jpg" and report.annotations_lost == 0
    assert any("1 images paired (1 by the name in the file)" in n for n in report.notes)
    via = tmp_path / "via"
    make_image(via / "pics" / "deep" / "f 01.jpg", 64, 48)
    (via / "via_region_data.json").write_text(json.dumps({"f 01.jpg62": {
        "filename": name, "size": 62, "regions": [{"shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 9,
                                                                        "height": 9}, "region_attributes": {"label": "a"}}],
        "file_attributes": {}}}))
    ds = load(via, "via", Report())
    assert ds.images[0].path == via / "pics" / "deep" / "f 01.jpg" and len(ds.images[0].annotations) == 1
