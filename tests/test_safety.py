"""Hostile input: a checkpoint never runs code unless trusted, nothing is written outside OUT, the
user's files are never destroyed, and unexpected failures are one line, not a traceback."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_image

from detft.cli import main
from detft.errors import DetftError
from detft.operations.convert import convert
from detft.util.output import MARKER, atomic_directory, safe_component

pytest.importorskip("ultralytics", reason="ultralytics is not installed")


class Payload:
    """Unpickling this writes ``marker``: what a crafted checkpoint does to whoever loads it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).write_text('pwned')",)


def crafted_run(root: Path, marker: Path) -> Path:
    """A folder that looks like a detft YOLO run, whose checkpoints carry the payload."""
    run = root / "evil_run"
    (run / "weights").mkdir(parents=True)
    meta = {"family": "yolo", "task": "detect", "imgsz": 64, "config": {"arch": "yolo", "epochs": 2},
            "labels": {"category_ids": [1, 2, 3], "names": ["circle", "rectangle", "triangle"], "background": False}}
    (run / "detft_meta.json").write_text(json.dumps(meta))
    for name in ("best.pt", "last.pt"):
        torch.save({"model": Payload(marker), "epoch": 0, "optimizer": {}}, run / "weights" / name)
    return run


def commands(run: Path, images: Path, out: Path) -> dict[str, list[str]]:
    return {
        "eval": ["eval", "--weights", str(run), "--out", str(out / "eval")],
        "predict": ["predict", "--weights", str(run), "--source", str(images), "--out", str(out / "pred")],
        "video": ["video", "--weights", str(run), "--source", str(images)],
        "train --weights": ["train", "--arch", "yolo", "--weights", str(run / "weights" / "best.pt"),
                            "--model", "yolov8n.yaml", "--project", str(out / "runs"), "--epochs", "1"],
        "train --resume": ["train", "--resume", str(run)],
    }


@pytest.mark.parametrize("command", ["eval", "predict", "video", "train --weights", "train --resume"])
def test_a_crafted_checkpoint_never_runs_code(tmp_path: Path, command: str, capsys):
    marker = tmp_path / "marker"
    run = crafted_run(tmp_path, marker)
    images = tmp_path / "images"
    make_image(images / "a.png", 64, 48)
    code = main(commands(run, images, tmp_path / "out")[command])
    err = capsys.readouterr().err
    assert not marker.exists(), "the checkpoint's payload ran"
    assert code == 1, err
    assert "refused by the safe checkpoint loader" in err and "builtins.exec" in err and "--trust-weights" in err


def test_trust_weights_is_the_only_way_to_the_full_unpickler(tmp_path: Path):
    marker = tmp_path / "marker"
    run = crafted_run(tmp_path, marker)
    make_image(tmp_path / "images" / "a.png", 64, 48)
    argv = commands(run, tmp_path / "images", tmp_path / "out")["predict"]
    assert main(argv) == 1 and not marker.exists()
    main([*argv, "--trust-weights"])  # the user vouched for it: now it is unpickled in full
    assert marker.read_text() == "pwned"


def test_a_run_cannot_vouch_for_itself(tmp_path: Path):
    """trust is an argument, never a saved setting: a run folder whose config says so is still refused."""
    marker = tmp_path / "marker"
    run = crafted_run(tmp_path, marker)
    meta = json.loads((run / "detft_meta.json").read_text())
    meta["config"]["trust_weights"] = True
    (run / "detft_meta.json").write_text(json.dumps(meta))
    assert main(["train", "--resume", str(run)]) == 1
    assert not marker.exists()


def test_resume_checks_best_pt_too(tmp_path: Path, monkeypatch):
    """ultralytics unpickles best.pt in full when a resumed run ends: it is checked before training."""
    from detft import TrainConfig, train
    from detft.models.yolo import UntrustedCheckpoint

    marker = tmp_path / "marker"
    run = crafted_run(tmp_path, marker)
    # last.pt passes (as if it were genuine); best.pt must still be refused before ultralytics sees the run
    monkeypatch.setattr("detft.families.yolo.load_checkpoint", lambda path, trust=False: object())
    with pytest.raises(UntrustedCheckpoint, match=r"best\.pt was refused"):
        train(TrainConfig(epochs=0), resume=str(run))
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "jpeg", "not-a-checkpoint-zip"])
def test_damaged_yolo_checkpoints_give_named_errors(tmp_path: Path, damage: str):
    from detft.models.yolo import load_checkpoint

    path = tmp_path / "weights.pt"
    whole = tmp_path / "whole.pt"
    torch.save({"model": {"w": torch.zeros(1000)}}, whole)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif damage == "jpeg":
        path.write_bytes(make_image(tmp_path / "x.jpg", 8, 8).read_bytes())
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("hello.txt", "not a checkpoint")
    with pytest.raises(DetftError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    if damage == "jpeg":
        assert "JPEG" in str(e.value)


@pytest.mark.parametrize("meta", ["{not json", "[]", '{"labels": {"names": ["a"]}}',
                                  '{"labels": {"category_ids": [1], "names": ["a"], "background": false}, "imgsz": "x"}'])
def test_a_broken_run_metadata_file_is_a_named_error(tmp_path: Path, meta: str, capsys):
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    torch.save({}, run / "weights" / "best.pt")
    (run / "detft_meta.json").write_text(meta)
    make_image(tmp_path / "a.png", 32, 32)
    assert main(["predict", "--weights", str(run), "--source", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 1
    assert "detft_meta.json: damaged" in capsys.readouterr().err


# ---- writes outside OUT -------------------------------------------------------------------------

HOSTILE_SPLITS = ["../../../pwn", "../../../../../../pwn", "a/../../b", "x\ty", "..", "names"]


def csv_dataset(root: Path, splits: list[str]) -> Path:
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax,split"]
    for i, split in enumerate(splits):
        make_image(root / f"im{i}.jpg", 40, 30, seed=i)
        rows.append(f'im{i}.jpg,40,30,cat,2,2,20,20,"{split}"')
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


@pytest.mark.parametrize("to", ["coco", "yolo", "voc"])
def test_split_names_from_the_data_never_leave_out(sandbox, to: str):
    abs_split = str(sandbox.root / "abs_pwn")
    src = csv_dataset(sandbox.root / "data", [*HOSTILE_SPLITS, abs_split])
    out = sandbox.root / "d1" / "d2" / "d3" / "d4" / "out"
    sandbox.freeze()
    result = convert(src, out, to=to)
    # only OUT and the folders created to hold it changed
    assert set(sandbox.changed_outside(out)) <= {"d1", "d1/d2", "d1/d2/d3", "d1/d2/d3/d4"}
    renamed = [c for c in result.report.changes if c.kind == "unsafe_split_name"]
    assert len(renamed) == len(HOSTILE_SPLITS) + 1  # every hostile name, the absolute one too, reported once
    for f in out.rglob("*"):
        assert f.resolve().is_relative_to(out.resolve()) or f.is_symlink()


def test_safe_component():
    assert safe_component("train") == "train"
    assert safe_component("../../x") == "_.._x"
    assert safe_component("/etc/passwd") == "_etc_passwd"
    assert safe_component("C:\\x") == "C__x"
    assert len(safe_component("a" * 5000)) == 100
    with pytest.raises(DetftError):
        safe_component("..")
    with pytest.raises(DetftError):
        safe_component("\x00")


def test_a_run_name_with_a_path_is_refused(tmp_path: Path):
    assert main(["train", "--name", "../../escape", "--project", str(tmp_path / "runs"), "--epochs", "1"]) == 1
    assert not (tmp_path / "escape").exists()


def one_image_coco(folder: Path, name: str = "a.jpg") -> Path:
    """``folder/instances.json`` naming one 40x30 image with one box; the image is made (under images/) unless
    it exists already."""
    if not (folder / name).exists():
        make_image(folder / "images" / name, 40, 30)
    doc = {"images": [{"id": 1, "file_name": name, "width": 40, "height": 30}], "categories": [{"id": 1, "name": "a"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "iscrowd": 0}]}
    (folder / "instances.json").write_text(json.dumps(doc))
    return folder


def test_overwrite_never_deletes_the_source_images(tmp_path: Path, capsys):
    ds = one_image_coco(tmp_path / "ds")
    before = (ds / "images" / "a.jpg").read_bytes()
    code = main(["convert", str(ds / "instances.json"), str(ds / "images"), "--images-dir", str(ds / "images"),
                 "--overwrite"])
    assert code == 1 and "would replace input data" in capsys.readouterr().err
    assert (ds / "images" / "a.jpg").read_bytes() == before
    # through a symlink to the images' folder as well
    (tmp_path / "alias").symlink_to(ds / "images")
    assert main(["convert", str(ds / "instances.json"), str(tmp_path / "alias"), "--images-dir",
                 str(ds / "images"), "--overwrite"]) == 1
    assert (ds / "images" / "a.jpg").read_bytes() == before


def test_killed_runs_leave_no_temp_folders_behind(tmp_path: Path):
    out = tmp_path / "out"
    dead = tmp_path / f".out.tmp-{2 ** 22 + 12345}-abc"  # above the default pid_max: no such process
    dead.mkdir()
    alive = tmp_path / f".out.tmp-{os.getpid()}-xyz"  # a live run's folder is not touched
    alive.mkdir()
    other = tmp_path / ".other.tmp-1-abc"
    other.mkdir()
    with atomic_directory(out) as tmp:
        (tmp / "f").write_text("x")
    assert not dead.exists() and alive.exists() and other.exists() and (out / "f").is_file()


def test_predict_keeps_images_of_the_same_stem_apart(tmp_path: Path):
    from detft.inference.detections import Detections
    from detft.inference.sinks import ImageSink
    from detft.inference.sources import Frame

    files = [make_image(tmp_path / "in" / f"x{ext}", 16, 16) for ext in (".png", ".bmp", ".tif")]
    sink = ImageSink(tmp_path / "out", tmp_path / "in", files)
    empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    for i in range(3):
        sink.write(Frame(np.zeros((16, 16, 3), np.uint8), i, 0.0, 0.0), np.zeros((16, 16, 3), np.uint8), empty)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.bmp.png", "x.png", "x.tif.png"]


# ---- video and the CLI guard ---------------------------------------------------------------------

def test_a_source_that_never_opens_gives_up_with_a_named_error():
    from detft.inference.sources import LiveSource

    class Closed:
        def isOpened(self):
            return False

        def release(self):
            pass

    t0 = time.monotonic()
    src = LiveSource("rtsp://127.0.0.1:9/x", timeout_s=0.1, backoff=(0.01, 0.02), opener=lambda s, t: Closed(),
                     log=lambda m: None)
    with pytest.raises(DetftError, match=r"could not be opened after 6 attempts"):
        list(src)
    src.close()
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("kind", ["folder", "existing file"])
def test_video_out_that_is_a_folder_or_an_existing_file_is_refused_before_loading(tmp_path: Path, kind, capsys):
    out = tmp_path / "o"
    if kind == "folder":
        out.mkdir()
    else:
        out.write_bytes(b"keep me")
    code = main(["video", "--weights", str(tmp_path / "no-such-run"), "--source", "0", "--out", str(out)])
    assert code == 1 and str(out) in capsys.readouterr().err
    assert kind == "folder" or out.read_bytes() == b"keep me"


def test_a_damaged_video_reports_the_frames_it_lost():
    from detft.inference.sources import FileSource

    class Damaged:  # 10 declared frames, frames 3-4 undecodable, the file cut after frame 7
        def __init__(self):
            self.i = -1

        def read(self):
            self.i += 1
            ok = self.i < 8 and self.i not in (3, 4)
            return ok, (np.full((4, 4, 3), self.i, np.uint8) if ok else None)

    src = FileSource.__new__(FileSource)
    src.path, src.cap, src.fps, src.frame_count = "v.mp4", Damaged(), 25.0, 10
    from detft.inference.sources import SourceStats

    src.stats = SourceStats()
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2, 5, 6, 7]
    assert src.stats.lost == 4


def test_an_unexpected_exception_is_one_line_with_exit_70(tmp_path: Path, monkeypatch, capsys):
    import detft.cli as cli

    def boom(args):
        raise ValueError("something nobody expected\nsecond line")

    monkeypatch.setattr(cli, "cmd_inspect", boom)
    argv = ["inspect", str(tmp_path / "data")]
    assert main(argv) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "detft inspect: unexpected ValueError on" in err and "Traceback" not in err
    assert main(["--debug", *argv]) == 70
    assert "Traceback" in capsys.readouterr().err


# ---- file names and images that crash or exhaust native decoders -----------------------------------

def latin1_name(folder: Path, stem: bytes, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (os.fsdecode(stem) + suffix)


def test_non_utf8_file_names_never_reach_opencv(tmp_path: Path):
    """cv2.imread on such a name kills the process (signal 11): images decode from bytes read in Python,
    and a video, which OpenCV must open by name, is a named error."""
    from detft.annotations.images import read_bgr
    from detft.inference.sources import FileSource

    path = latin1_name(tmp_path, b"caf\xe9", ".png")
    make_image(path, 20, 10)
    assert read_bgr(path).shape == (10, 20, 3)
    video = latin1_name(tmp_path, b"vid\xe9o", ".mp4")
    video.write_bytes(b"\x00" * 64)
    with pytest.raises(DetftError, match="not valid UTF-8"):
        FileSource(video)


def test_masks_reader_reads_a_latin1_named_mask(tmp_path: Path):
    from detft.annotations.report import Report
    from detft.operations.convert import load

    img = latin1_name(tmp_path / "images", b"z\xfcrich", ".png")
    make_image(img, 20, 10)
    mask = np.zeros((10, 20), np.uint8)
    mask[2:8, 3:12] = 1
    from PIL import Image

    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / (img.stem + ".png"))
    (tmp_path / "classes.json").write_text(json.dumps({"default": {"1": "thing"}}))
    ds = load(tmp_path, "masks", Report())
    assert ds.num_annotations == 1


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"  # a header that claims 30000x30000 RGB (2.7 GB decoded)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    from detft.annotations.images import read_bgr

    with pytest.raises(DetftError, match=r"bomb\.png.*DecompressionBomb"):
        read_bgr(bomb)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["jpg", "png", "tif"])
def test_every_exif_orientation_probes_to_the_size_opencv_decodes(tmp_path: Path, fmt: str, orientation: int):
    from detft.annotations.images import probe, read_bgr

    path = make_image(tmp_path / f"o.{fmt}", 50, 30, exif_orientation=orientation)
    info = probe(path)
    assert read_bgr(path).shape[:2] == (info.height, info.width)
    assert (info.width, info.height) == ((30, 50) if orientation >= 5 else (50, 30))


def test_a_multi_frame_image_uses_the_first_frame_and_says_so(tmp_path: Path):
    from PIL import Image

    from detft.annotations.images import read_bgr
    from detft.annotations.report import Report
    from detft.operations.convert import load

    frames = [Image.fromarray(np.full((30, 40, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    one_image_coco(tmp_path, "a.gif")
    report = Report()
    ds = load(tmp_path / "instances.json", "coco", report)
    assert ds.num_annotations == 1
    assert [(c.kind, "3 frames" in c.detail) for c in report.changes] == [("multi_frame_image", True)]
    assert read_bgr(tmp_path / "a.gif").max() == 0  # the first frame


def test_an_output_tree_with_a_folder_link_is_never_published(tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(DetftError, match="leads outside the output"):
        with atomic_directory(out) as tmp:
            (tmp / "images").symlink_to(tmp_path, target_is_directory=True)
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_a_run_killed_with_sigkill_leaves_nothing_after_the_next_run(tmp_path: Path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    code = ("import sys, time\nfrom pathlib import Path\nfrom detft.util.output import atomic_directory\n"
            f"with atomic_directory(Path({str(out)!r})) as tmp:\n"
            "    (tmp / 'half.json').write_text('{')\n    print('writing', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(list(tmp_path.glob(".out.tmp-*"))) == 1 and not out.exists()  # killed: no half OUT, a stale temp
    with atomic_directory(out) as tmp:
        (tmp / "whole.json").write_text("{}")
    assert not list(tmp_path.glob(".out.tmp-*")) and sorted(p.name for p in out.iterdir()) == [MARKER, "whole.json"]


def test_a_video_with_its_middle_cut_out_warns_with_the_frames_lost(tmp_path: Path, capsys):
    import cv2

    from detft.inference.sources import FileSource
    from detft.inference.video import RunStats

    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = path.read_bytes()
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG frames
    path.write_bytes(data[:starts[10]] + data[starts[15]:])  # frames 10-14 cut out, the index left as it was
    src = FileSource(path)
    assert src.frame_count == 30 and len(list(src)) == 25 and src.stats.lost == 5
    assert "WARNING: 5 frame(s) of the file could not be decoded" in RunStats().line(src)


def test_out_neither_lies_inside_nor_holds_the_dataset_folder(tmp_path: Path):
    """Inside the dataset, the next read of it would find the output as a second annotation set (and
    --overwrite of such an OUT replaced the dataset's own files)."""
    ds = one_image_coco(tmp_path / "ds")
    for out in (ds / "converted", ds / "images" / "converted", ds):
        with pytest.raises(DetftError, match="inside the input|would replace input data"):
            convert(ds, out, images_dir=ds / "images", overwrite=True)
    with pytest.raises(DetftError, match="would replace input data"):
        convert(ds, tmp_path, images_dir=ds / "images", overwrite=True)  # OUT holds the dataset
    convert(ds, tmp_path / "converted", images_dir=ds / "images")
    convert(ds, tmp_path / "converted", images_dir=ds / "images", overwrite=True)  # a previous output is replaced
    assert (tmp_path / "converted" / "annotations" / "instances_train.json").is_file()
    assert sorted(p.name for p in ds.rglob("*")) == ["a.jpg", "images", "instances.json"]


def test_yolo_data_yaml_points_val_at_the_sanitised_folder(tmp_path: Path):
    """No val split: data.yaml's val falls back to a folder that exists, under its safe name."""
    from detft.annotations.dataset import Annotation, Category, Dataset, ImageRecord
    from detft.annotations.report import Report
    from detft.formats import yolo

    make_image(tmp_path / "a.jpg", 40, 30)
    ds = Dataset([ImageRecord("a.jpg", 40, 30, path=tmp_path / "a.jpg", split="my/split",
                              annotations=[Annotation(1, (1.0, 1.0, 20.0, 20.0))])], [Category(1, "a")])
    with atomic_directory(tmp_path / "out") as tmp:
        yolo.write(ds, tmp, Report())
    import yaml

    cfg = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert cfg["my/split"] == cfg["val"] == "images/my_split" and (tmp_path / "out" / cfg["val"]).is_dir()
