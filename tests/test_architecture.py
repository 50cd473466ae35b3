"""The seams DESIGN.md promises, checked on the source: no import cycles, family questions asked only
behind families/, one freeze and augmentation vocabulary, one renderer, a flag for every config field."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import detft
from detft.config import TrainConfig
from detft.errors import DetftError

PACKAGE = Path(detft.__file__).parent


def module_graph() -> dict[str, set[str]]:
    """detft module -> the detft modules it imports (at any depth in the file: a lazy import is still a
    dependency); ``from pkg import sub`` depends on the submodule, not on pkg/__init__."""
    paths = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        paths[".".join(parts)] = p
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in paths]
                targets = subs if len(subs) == len(node.names) else [target, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in paths and t != name}
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_inside_detft():
    graph = module_graph()
    assert len(graph) > 60 and "detft.families.yolo" in graph["detft.families"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_inference_does_not_depend_on_training():
    graph = module_graph()
    for name, deps in graph.items():
        if name.startswith("detft.inference"):
            assert not {d for d in deps if d.startswith(("detft.engine", "detft.families"))}, name


def test_only_families_and_the_api_reach_a_family_module():
    """Nothing outside families/ asks which family a run is: it goes through the registry."""
    for name, deps in module_graph().items():
        if not name.startswith("detft.families"):
            assert not {"detft.families.rcnn", "detft.families.yolo"} & deps, name
    for path in PACKAGE.rglob("*.py"):
        if "families" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                sides = [ast.unparse(n) for n in (node.left, *node.comparators)]
                if any(s in ("'yolo'", "'rcnn'") for s in sides) and any("arch" in s or "family" in s for s in sides):
                    pytest.fail(f"{path}:{node.lineno} asks which family outside families/: {ast.unparse(node)}")


def test_every_config_field_has_a_flag_and_the_flags_parse_to_the_config():
    from detft.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions}
    assert {f.name for f in fields(TrainConfig)} <= dests
    args = parser.parse_args(["train", "--from", "coco", "--freeze", "backbone+neck", "--no-amp", "--exist-ok",
                              "--weight-decay", "0.05", "--val-split", "test", "--eval-backend", "pycocotools"])
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    assert given == {"data_format": "coco", "freeze": "backbone+neck", "amp": False, "exist_ok": True,
                     "weight_decay": 0.05, "val_split": "test", "eval_backend": "pycocotools"}


def test_a_config_file_with_a_typo_is_a_named_error(tmp_path: Path):
    from detft.config import load_config

    (tmp_path / "c.yaml").write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(DetftError, match=r"c\.yaml: unknown config field\(s\) learning_rate"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(DetftError, match="only epochs can change"):
        detft.train(resume=tmp_path, lr=0.1)


@pytest.mark.parametrize("spec,expected", [("backbone", "backbone"), ("backbone+neck", "backbone+neck"),
                                           ("backbone+fpn", "backbone+neck"), ("none", "none"), ("2", 2)])
def test_one_freeze_vocabulary(spec: str, expected):
    from detft.models.freeze import parse_freeze

    assert parse_freeze(spec) == expected


def test_freeze_means_the_same_for_yolo():
    pytest.importorskip("ultralytics")
    from detft.models.yolo import freeze_layers, load_model, prepare_offline

    prepare_offline()
    model = load_model("yolov8n.yaml")
    n_layers = len(model.model.model)
    assert freeze_layers(model, "backbone") == list(range(10))
    assert freeze_layers(model, "backbone+fpn") == freeze_layers(model, "backbone+neck") == list(range(n_layers - 1))
    assert freeze_layers(model, "3") == [0, 1, 2] and freeze_layers(model, "none") == []
    with pytest.raises(DetftError, match="only 10 layers"):
        freeze_layers(model, "11")
    with pytest.raises(DetftError, match="--freeze 'head'"):
        freeze_layers(model, "head")


def test_one_augmentation_vocabulary():
    from detft.data.transforms import build
    from detft.families.yolo import augment_args

    assert augment_args("flip,mosaic")["mosaic"] == 1.0
    assert build("flip,scale,color") is not None and build("none") is None
    with pytest.raises(DetftError, match="mosaic: not available for R-CNN"):
        build("flip,mosaic")
    with pytest.raises(DetftError, match="unknown"):
        augment_args("blur")


def test_inspect_previews_and_predictions_share_colours(tmp_path: Path):
    """The same class is drawn in the same colour by `detft inspect` and by predict/video."""
    from helpers import make_image
    from PIL import Image

    from detft.annotations.dataset import Annotation, ImageRecord
    from detft.annotations.preview import render
    from detft.inference.detections import Detections

    path = make_image(tmp_path / "a.png", 64, 48)
    record = ImageRecord("a.png", 64, 48, path=path, annotations=[Annotation(2, [10.0, 10.0, 40.0, 30.0])])
    preview = np.asarray(render(record, {2: "dog"}))
    rgb = np.asarray(Image.open(path).convert("RGB"))
    dets = Detections(np.array([[10, 10, 40, 30]], np.float32), np.array([0.9], np.float32), np.array([2]))
    drawn_rgb = dets.draw(rgb, {2: "dog"}, bgr=False)
    drawn_bgr = dets.draw(np.ascontiguousarray(rgb[..., ::-1]), {2: "dog"})
    edge = (28, 40)  # on the right edge of the box, below the label (drawn inside the box at the top)
    assert tuple(preview[edge]) == tuple(drawn_rgb[edge]) == tuple(drawn_bgr[edge][::-1])
