"""Label Studio tasks any server layout can serve (#44 item 1): image URLs relative to the server's document root
(``--ls-root``), so outputs sit side by side under one root, or under a web/bucket address (``--ls-url``); the note
beside tasks.json says how to serve them; a wrong root is named before anything is written; the written tasks read
back with detft's reader. The real server serves two outputs in tests/test_label_studio_server.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Oracle, make_image

from detft.annotations.report import Report
from detft.cli import main
from detft.config import EMBEDDED_DATA
from detft.errors import DetftError
from detft.formats import read_dataset
from detft.formats.labelstudio_serving import NOTE_FILE, local_file, serving
from detft.labelling.prelabels import save_labels
from detft.operations.convert import convert


def urls(out: Path) -> list[str]:
    return [t["data"]["image"] for t in json.loads((out / "tasks.json").read_text())]


def test_outputs_under_one_root_name_their_images_from_the_root(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    for name in ("batch1", "nested/batch2"):
        convert(EMBEDDED_DATA, root / name, to="labelstudio", ls_root=root)
        found = urls(root / name)
        assert len(found) == 64 and all(u.startswith(f"/data/local-files/?d={name}/images/") for u in found)
        for u in found[:3]:  # each URL names a file below the root: what the server's Local Storage serves
            assert local_file(u, root).is_file()
        note = (root / name / NOTE_FILE).read_text()
        assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root.resolve()} label-studio start" in note
        assert f"absolute local path `{(root / name).resolve() / 'images'}`" in note
        back = read_dataset(root / name, "labelstudio", Report())
        assert len(back.images) == 64 and all(im.path is not None and im.path.is_file() for im in back.images)
    plain = tmp_path / "plain"
    convert(EMBEDDED_DATA, plain, to="labelstudio")  # without a root: relative to OUT, as before
    assert urls(plain)[0].startswith("/data/local-files/?d=images/")
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={plain.absolute()} label-studio start" in (plain / NOTE_FILE).read_text()


def test_an_address_names_the_images_quoted_for_the_web_and_as_keys_for_a_bucket(tmp_path: Path):
    make_image(tmp_path / "shots" / "a b#1.png", 64, 48)
    oracle = Oracle(masks=False)
    web = save_labels(oracle, tmp_path / "shots", "labelstudio", tmp_path / "web", ls_url="https://cdn.example/x/")
    assert urls(web.out) == ["https://cdn.example/x/images/a%20b%231.png"]
    bucket = save_labels(oracle, tmp_path / "shots", "labelstudio", tmp_path / "s3", ls_url="s3://bucket/pre")
    assert urls(bucket.out) == ["s3://bucket/pre/images/a b#1.png"]
    assert "Add Source Storage for bucket `bucket`" in (bucket.out / NOTE_FILE).read_text()
    assert len(read_dataset(web.out, "labelstudio", Report()).images) == 1  # found by file name under the output


def test_a_root_the_output_is_not_under_is_named_before_anything_is_written(tmp_path: Path):
    (tmp_path / "root").mkdir()
    with pytest.raises(DetftError, match="is not below it"):
        convert(EMBEDDED_DATA, tmp_path / "elsewhere", to="labelstudio", ls_root=tmp_path / "root")
    with pytest.raises(DetftError, match="is not below it"):  # the root itself is no Local Storage path
        serving(tmp_path / "root", tmp_path / "root")
    with pytest.raises(DetftError, match="no such folder"):
        convert(EMBEDDED_DATA, tmp_path / "root" / "a", to="labelstudio", ls_root=tmp_path / "nope")
    with pytest.raises(DetftError, match="choose one"):
        serving(tmp_path / "root" / "a", tmp_path / "root", "https://x.org")
    for bad in ("ftp://x.org/a", "x.org/a", "https://x.org/a?b=1", "https://"):
        with pytest.raises(DetftError, match="--ls-url"):
            serving(tmp_path / "a", ls_url=bad)
    with pytest.raises(DetftError, match="coco names its images by path"):
        convert(EMBEDDED_DATA, tmp_path / "root" / "c", to="coco", ls_root=tmp_path / "root")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"] and not any((tmp_path / "root").iterdir())


def test_the_cli_flags_reach_convert_and_predict(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    assert main(["convert", str(EMBEDDED_DATA), str(root / "b"), "--to", "labelstudio", "--ls-root", str(root)]) == 0
    assert urls(root / "b")[0].startswith("/data/local-files/?d=b/images/")
    assert main(["convert", str(EMBEDDED_DATA), str(tmp_path / "u"), "--to", "labelstudio", "--ls-url",
                 "http://h:8000/u"]) == 0
    assert urls(tmp_path / "u")[0].startswith("http://h:8000/u/images/")
    assert main(["convert", str(EMBEDDED_DATA), str(tmp_path / "x"), "--to", "labelstudio", "--ls-root",
                 str(root)]) != 0
    from detft.cli import build_parser

    args = build_parser().parse_args(["predict", "--weights", "w", "--source", "s", "--save-labels", "labelstudio",
                                      "o", "--ls-root", "r"])
    assert (args.ls_root, args.ls_url) == (Path("r"), None)


@pytest.mark.parametrize("d", ["../secret.png", "a/../../secret.png", "", ".", "a/%00b"])
def test_a_local_files_url_never_leaves_the_root(tmp_path: Path, d: str):
    with pytest.raises(DetftError, match="not a file below the document root"):
        local_file(f"/data/local-files/?d={d}", tmp_path / "root")


def test_a_local_files_url_is_read_as_the_server_reads_it(tmp_path: Path):
    root = tmp_path / "root"
    assert local_file("/data/local-files/?d=a/./b%20c.png", root) == root / "a" / "b c.png"
    assert local_file("/data/local-files/?d=/a/b.png", root) == root / "a" / "b.png"  # "/" stripped, as the view does
    assert local_file("/data/local-files/?d=x.png&d=a/y.png", root) == root / "a" / "y.png"  # the last d wins
