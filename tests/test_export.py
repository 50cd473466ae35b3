"""detft export: both families, det and seg, to ONNX; the graph predicts what its source predicts, the
file alone is enough, and bad files and impossible options get named errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

import detft  # noqa: E402
from conftest import assert_same_detections  # noqa: E402
from detft.annotations.images import read_bgr  # noqa: E402
from detft.cli import main  # noqa: E402
from detft.errors import DetftError  # noqa: E402
from detft.export import metadata, quantize  # noqa: E402
from detft.export.metadata import WEIGHTS_ANY_CPU, WEIGHTS_VNNI  # noqa: E402
from detft.export.quantize import FLOAT_RULES, float_nodes, head_scope  # noqa: E402
from helpers import config, make_data, make_image, yolo_config  # noqa: E402

import tiny_models  # noqa: E402,F401  registers tiny_fasterrcnn / tiny_maskrcnn

KINDS = {"rcnn-det": ("fasterrcnn", "tiny_fasterrcnn"), "rcnn-seg": ("maskrcnn", "tiny_maskrcnn"),
         "yolo-det": ("yolo", "yolov8n.yaml"), "yolo-seg": ("yolo", "yolov8n-seg.yaml")}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("export") / "data", n=8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data: Path) -> dict[str, detft.Run]:
    """One tiny trained run per family and task, trained once for the module (each test exports its own copy)."""
    out = {}
    for kind, (arch, model) in KINDS.items():
        tmp = tmp_path_factory.mktemp(kind)
        cfg = (yolo_config(tmp, model, epochs=1, augment="none", data=str(data)) if arch == "yolo"
               else config(data, tmp, arch=arch, model=model, epochs=2))
        out[kind] = detft.train(cfg)
    return out


def copy_run(run: detft.Run, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(run.folder, dst)
    return dst


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_onnx_graph_predicts_what_its_source_predicts(kind: str, runs, data: Path, tmp_path: Path):
    run = copy_run(runs[kind], tmp_path)
    source = detft.load(run, device="cpu", conf=0.001)
    result = source.export()
    assert result.path == run / "weights" / "best.onnx" and result.path.is_file()
    report = json.loads((run / "weights" / "export.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    metrics = {"bbox_AP", "bbox_AP50"} | ({"segm_AP", "segm_AP50"} if kind.endswith("seg") else set())
    assert set(report["source_metrics"]) == set(report["export_metrics"]) == metrics
    assert report["within_tolerance"] and report["max_ap_diff"] <= 0.005
    assert report["images"] == 8 and report["detections"]["matched"] > 0
    assert report["providers"] == ["CPUExecutionProvider"]

    # the file alone: no run folder, no checkpoint, no run.yaml beside it
    alone = tmp_path / "elsewhere" / "model.onnx"
    alone.parent.mkdir()
    shutil.copy(result.path, alone)
    exported = detft.load(alone, conf=0.001)
    assert exported.classes == source.classes and exported.masks == source.masks
    assert exported.run.info.family == source.run.info.family and exported.run.info.task == source.run.info.task
    for image in sorted((data / "images" / "val").iterdir())[:4]:
        ours, theirs = source.predict(image)[0], exported.predict(image)[0]
        assert_same_detections(ours, theirs, floor=0.001)
    # and the run's --conf auto thresholds travel inside it
    stored = detft.Run.open(run).thresholds()
    auto = detft.load(alone, conf="auto")
    assert {auto.names[c]: t for c, t in auto.predictor.thresholds.items()} == stored


def test_rcnn_graphs_take_any_image_size_and_keep_their_resize(runs, tmp_path: Path):
    run = copy_run(runs["rcnn-seg"], tmp_path)
    path = detft.load(run, device="cpu").export(dynamic=True).path  # accepted: R-CNN graphs are always size-free
    source, exported = detft.load(run, device="cpu", conf=0.001), detft.load(path, conf=0.001)
    for w, h in ((160, 90), (70, 130)):
        image = make_image(tmp_path / f"{w}x{h}.png", w, h, seed=w)
        ours, theirs = source.predict(image)[0], exported.predict(image)[0]
        assert theirs.masks.shape[1:] == (h, w)
        assert_same_detections(ours, theirs, floor=0.001)
    with pytest.raises(DetftError, match=r"resizes inside itself.*export again with --imgsz 128"):
        detft.load(path, imgsz=128)
    with pytest.raises(DetftError, match=r"at most 100 detections.*--max-dets 300"):
        detft.load(path, max_dets=300)
    with pytest.raises(DetftError, match=r"--half: R-CNN graphs export in fp32"):
        detft.load(run, device="cpu").export(tmp_path / "half.onnx", half=True)
    assert not (tmp_path / "half.onnx").exists()


def test_yolo_export_takes_any_size_by_default_and_a_static_one_says_why_not(runs, tmp_path: Path):
    run = copy_run(runs["yolo-det"], tmp_path)
    source = detft.load(run, device="cpu", conf=0.001)
    static = source.export(tmp_path / "static.onnx", dynamic=False, accept_drop=True).path
    dynamic = source.export(tmp_path / "dynamic.onnx").path
    assert json.loads((tmp_path / "export.json").read_text())["graph"]["dynamic"] is True
    with pytest.raises(DetftError, match=r"exported for 64x64 inputs only \(--static\).*without --static"):
        detft.load(static, imgsz=96)
    wide = make_image(tmp_path / "camera.png", 160, 90, seed=4)  # 16:9, at the size it was trained at
    assert_same_detections(source.predict(wide)[0], detft.load(dynamic, conf=0.001).predict(wide)[0], 0.001)
    image = make_image(tmp_path / "wide.png", 150, 90, seed=3)
    at96 = detft.load(run, device="cpu", conf=0.001, imgsz=96)
    assert_same_detections(at96.predict(image)[0], detft.load(dynamic, conf=0.001, imgsz=96).predict(image)[0], 0.001)


def test_an_export_outside_the_tolerance_is_refused_unless_the_drop_is_accepted(runs, tmp_path: Path, monkeypatch,
                                                                                  capsys):
    from detft.export import parity

    run = copy_run(runs["rcnn-det"], tmp_path)
    monkeypatch.setattr(parity, "ap_gaps", lambda a, b: {"bbox_AP": 0.02, "bbox_AP50": 0.0})
    with pytest.raises(DetftError, match=r"the export's AP differs .* by 0\.0200 \(tolerance 0\.005\).*"
                                         r"nothing written \(--accept-drop keeps such a file\)"):
        detft.load(run, device="cpu").export()
    weights = sorted(p.name for p in (run / "weights").iterdir())
    assert weights == ["best.pt", "last.pt"]  # no .onnx, no export.json, no temporary folder
    result = detft.load(run, device="cpu").export(accept_drop=True)  # kept, and a loud warning
    assert not result.report["within_tolerance"] and result.path.is_file()
    assert "WARNING: the export's AP differs" in capsys.readouterr().err


def test_damaged_and_foreign_onnx_files_are_named(tmp_path: Path, runs):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(DetftError, match=r"no checkpoint at .*missing\.onnx"):
        detft.load(tmp_path / "missing.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(DetftError, match=r"notes\.onnx is not a loadable ONNX model"):
        detft.load(text)
    good = detft.load(copy_run(runs["rcnn-det"], tmp_path), device="cpu").export().path
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DetftError, match=r"truncated\.onnx is not a loadable ONNX model"):
        detft.load(truncated)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    with pytest.raises(DetftError, match=r"foreign\.onnx was not written by 'detft export'"):
        detft.load(foreign)
    with pytest.raises(DetftError, match=r"--device cuda runs ONNX models through onnxruntime-gpu"):
        detft.load(good, device="cuda")


def test_cli_export_then_predict_eval_and_video_take_the_onnx_file(runs, data: Path, tmp_path: Path, capsys):
    run = copy_run(runs["rcnn-det"], tmp_path)
    out = tmp_path / "deploy" / "cells.onnx"
    assert main(["export", "--weights", str(run), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "parity on 8 val images" in printed and "bbox_AP" in printed and "within the tolerance" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["cells.onnx", "export.json"]
    assert main(["eval", "--weights", str(out), "--out", str(tmp_path / "ev")]) == 0
    onnx_ap = json.loads((tmp_path / "ev" / "eval.json").read_text())["metrics"]["bbox"]["stats"]["AP"]
    assert onnx_ap == pytest.approx(json.loads((out.parent / "export.json").read_text())["export_metrics"]["bbox_AP"])
    assert main(["predict", "--weights", str(out), "--source", str(data / "images" / "val"), "--conf", "0.001",
                 "--out", str(tmp_path / "pred")]) == 0
    lines = (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(line)["detections"] for line in lines)
    assert main(["video", "--weights", str(out), "--source", str(data / "images" / "val"), "--conf", "0.001",
                 "--jsonl", str(tmp_path / "v.jsonl")]) == 0
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 8
    assert main(["export", "--weights", str(run), "--out", str(tmp_path / "m.txt")]) == 1
    assert "an ONNX export is a .onnx file" in capsys.readouterr().err


def test_the_ort_predictor_uses_torchs_thread_count(runs, tmp_path: Path, monkeypatch):
    import torch

    path = detft.load(copy_run(runs["rcnn-det"], tmp_path), device="cpu").export().path
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    session = detft.load(path).predictor.session
    assert session.get_session_options().intra_op_num_threads == 3


def test_parity_pairs_each_detection_with_its_twin_not_a_neighbour():
    from detft.export.parity import match_detections

    def det(image: int, x: float, score: float) -> dict:
        return {"image_id": image, "category_id": 1, "bbox": [x, 0.0, 10.0, 10.0], "score": score}

    # scored in the other order on each side: matching by score would pair 0.9 with 0.95 (IoU 0.7)
    source = [det(1, 0.0, 0.9), det(1, 3.0, 0.8)]
    exported = [det(1, 3.0, 0.95), det(1, 0.5, 0.7), det(2, 0.0, 0.3)]
    assert match_detections(source, exported) == {
        "source": 2, "exported": 3, "matched": 2, "source_only": 0, "export_only": 1, "max_unmatched_score": 0.3,
        "min_iou": 0.904762, "max_score_diff": 0.2, "max_box_diff_px": 0.5}


def test_fpn_levels_merge_by_gather_in_the_graph_as_torchvision_merges_them(tmp_path: Path):
    """The tiny test models pool from one level; this checks the multi-level merge the export replaces."""
    from collections import OrderedDict

    import onnxruntime as ort
    import torch
    from torchvision.ops import MultiScaleRoIAlign

    from detft.export.rcnn import gather_merge

    class Pool(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = MultiScaleRoIAlign(["0", "1", "2"], 7, 2)

        def forward(self, f0, f1, f2, boxes):
            return self.pool(OrderedDict([("0", f0), ("1", f1), ("2", f2)]), [boxes], [(512, 512)])

    g = torch.Generator().manual_seed(0)
    feats = [torch.rand(1, 8, 512 // s, 512 // s, generator=g) for s in (4, 8, 16)]
    xy = torch.rand(60, 2, generator=g) * 20
    boxes = torch.cat([xy, xy + torch.rand(60, 2, generator=g) * 480 + 4], 1)
    pool = Pool()
    expected = pool(*feats, boxes)
    assert set(pool.pool.map_levels([boxes]).tolist()) == {0, 1, 2}  # every level pools some boxes
    path = tmp_path / "pool.onnx"
    with gather_merge(), torch.no_grad():
        torch.onnx.export(pool, (*feats, boxes), str(path), dynamo=False, opset_version=17,
                          input_names=["f0", "f1", "f2", "boxes"], dynamic_axes={"boxes": {0: "n"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert "ScatterElements" not in {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    for n in (60, 7):
        got = session.run(None, {"f0": feats[0].numpy(), "f1": feats[1].numpy(), "f2": feats[2].numpy(),
                                 "boxes": boxes[:n].numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), expected[:n], atol=1e-5, rtol=1e-5)


def test_yolo_half_export_stores_fp16_weights_and_keeps_float_inputs(runs, tmp_path: Path):
    run = copy_run(runs["yolo-seg"], tmp_path)
    source = detft.load(run, device="cpu", conf=0.001)
    full = source.export(tmp_path / "fp32.onnx").path
    half = source.export(tmp_path / "fp16.onnx", half=True)
    assert half.report["graph"]["half"] and half.path.stat().st_size < 0.6 * full.stat().st_size
    exported = detft.load(half.path, conf=0.001)
    assert exported.predictor.session.get_inputs()[0].type == "tensor(float)"  # fp16 inside, float32 in and out
    image = sorted((Path(source.run.info.config.data) / "images" / "val").iterdir())[0]
    assert_same_detections(source.predict(image)[0], exported.predict(image)[0], floor=0.001, box_px=2.0, score_tol=5e-3)


def test_a_yolo_export_leaves_the_process_thread_count_alone(runs, tmp_path: Path):
    """ultralytics' exporter sets torch to cpu_count - 1 threads for the whole process; detft undoes it, so a
    model run after an export (and the ONNX Runtime session sized from torch's count) keeps its threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        detft.load(copy_run(runs["yolo-det"], tmp_path), device="cpu").export(tmp_path / "m.onnx")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_cuda_session_that_falls_back_to_the_cpu_is_named(tmp_path: Path, monkeypatch, capsys):
    """onnxruntime-gpu lists its CUDA provider even where the CUDA libraries do not load, then quietly runs on
    the CPU: --device cuda must not go on as if it had the GPU, and the provider in use is said."""
    import onnxruntime as ort

    from detft.inference.onnx_predictor import open_session

    class Session:  # what onnxruntime hands back when the CUDA provider failed to load
        def __init__(self, path, options, providers):
            self.asked = providers

        def get_providers(self):
            return ["CPUExecutionProvider"]

    model = tmp_path / "m.onnx"
    model.write_bytes(b"stand-in")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    with pytest.raises(DetftError, match="could not start its CUDA provider and fell back to CPUExecutionProvider"):
        open_session(model, "cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert open_session(model, "auto").asked[0] == ("CUDAExecutionProvider", {"device_id": 0})
    assert "CUDA provider did not start; running on CPUExecutionProvider" in capsys.readouterr().out
    open_session(model, "cpu")
    assert "m.onnx: onnxruntime on CPUExecutionProvider" in capsys.readouterr().out


def test_a_sliced_onnx_graph_predicts_what_its_sliced_source_predicts(runs, tmp_path: Path):
    """Slicing sits in front of any Predictor: a static 64 px YOLO-seg graph takes 64 px windows of a larger image
    (edge windows smaller) and, merged, gives the sliced PyTorch model's detections and masks."""
    run = copy_run(runs["yolo-seg"], tmp_path)
    graph = detft.load(run, device="cpu").export(tmp_path / "seg.onnx").path
    image = make_image(tmp_path / "large.png", 200, 150, seed=5)
    source = detft.load(run, device="cpu", conf=0.001, slice=64, slice_overlap=0.25)
    exported = detft.load(graph, conf=0.001, slice=64, slice_overlap=0.25)
    ours, theirs = source.predict(image)[0], exported.predict(image)[0]
    assert ours.masks.shape[1:] == (150, 200) and theirs.masks.shape == ours.masks.shape
    assert_same_detections(ours, theirs, floor=0.001)


def test_a_yolo_graph_predicts_without_ultralytics(runs, data: Path, tmp_path: Path):
    """Letterbox, NMS and masks around the graph are detft's own (inference/yolo_graph.py): the core predicts with a
    YOLO .onnx file where ultralytics is not installed, the same detections as with it."""
    from helpers import run_without_ultralytics

    graph = detft.load(copy_run(runs["yolo-seg"], tmp_path), device="cpu").export(tmp_path / "m.onnx").path
    image = sorted((data / "images" / "val").iterdir())[0]
    expected = detft.load(graph, device="cpu", conf=0.001).predict(image)[0]
    out = run_without_ultralytics(f"""
        import detft
        det = detft.load({str(graph)!r}, device="cpu", conf=0.001).predict({str(image)!r})[0]
        print(json.dumps({{"asked": ASKED, "boxes": det.boxes.tolist(), "pixels": int(det.masks.sum())}}))
    """, tmp_path)
    assert out["asked"] == [] and len(out["boxes"]) == len(expected) > 0
    assert out["boxes"] == expected.boxes.tolist() and out["pixels"] == int(expected.masks.sum())


# ------------------------------------------------------------------------------------------ INT8 and OpenVINO (#48)
def _weight_sources(model) -> dict[str, str]:
    """Each Conv node's name -> the op that feeds its weights ('initializer' for a float weight in the file)."""
    producer = {out: n.op_type for n in model.graph.node for out in n.output}
    return {n.name: producer.get(n.input[1], "initializer") for n in model.graph.node if n.op_type == "Conv"}


def _weight_types(model) -> set[str]:
    """The element types of the quantized Conv weights in the file (int8 or uint8)."""
    import onnx

    inits = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name for i in model.graph.initializer}
    dequant = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {inits[dequant[n.input[1]]] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in dequant}


def test_yolo_int8_quantizes_the_body_keeps_the_head_float_and_records_its_calibration(runs, tmp_path: Path,
                                                                                        monkeypatch, capsys):
    import onnx

    monkeypatch.setattr(quantize, "has_vnni", lambda: False)  # a CPU without VNNI (AVX2): uint8 weights
    run = copy_run(runs["yolo-det"], tmp_path)
    source = detft.load(run, device="cpu", conf=0.001)
    # tolerance -1: no graph passes, so both float rules are tried in turn and the last one's file is kept
    result = source.export(tmp_path / "int8.onnx", int8=True, accept_drop=True, tolerance=-1)
    int8 = result.report["graph"]["int8"]
    train = source.dataset().images_in("train")
    assert int8["images"] == len(train) and "QDQ" in int8["tool"] and int8["float"].startswith("the detection head")
    assert [t["rule"] for t in result.report["int8_tries"]] == ["outputs", "head"] == [*FLOAT_RULES]
    assert int8["rule"] == "head" and "INT8" in result.report["input"]
    assert int8["weights"] == WEIGHTS_ANY_CPU and _weight_types(onnx.load(str(result.path))) == {"uint8"}
    sources = _weight_sources(onnx.load(str(result.path)))
    head = int8["float"].split()[3]  # /model.<N>/
    assert all(src == "initializer" for name, src in sources.items() if name.startswith(head))
    assert all(src == "DequantizeLinear" for name, src in sources.items() if not name.startswith(head))
    graph = detft.load(result.path, conf=0.001)
    image = make_image(tmp_path / "camera.png", 160, 90, seed=4)
    assert graph.predictor.graph.int8 == int8 and len(graph.predict(image)) == 1
    assert "saturate" not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["camera.png", "export.json", "int8.onnx"]


def test_int8_keeps_the_heads_last_convolutions_float_when_that_passes_the_parity_check(runs, tmp_path: Path,
                                                                                          monkeypatch, capsys):
    import onnx

    monkeypatch.setattr(quantize, "has_vnni", lambda: True)  # exported on a CPU with VNNI: int8 weights, its fast path
    run = copy_run(runs["yolo-det"], tmp_path)
    result = detft.load(run, device="cpu").export(tmp_path / "int8.onnx", int8=True, tolerance=1.0)
    int8 = result.report["graph"]["int8"]
    assert int8["rule"] == "outputs" and [t["rule"] for t in result.report["int8_tries"]] == ["outputs"]
    assert result.report["tolerance"] == 1.0
    assert int8["weights"] == WEIGHTS_VNNI and _weight_types(onnx.load(str(result.path))) == {"int8"}
    monkeypatch.setattr(metadata, "has_vnni", lambda: False)  # the file deployed on a CPU without VNNI
    capsys.readouterr()
    detft.load(result.path)
    assert "int8 weights on a CPU with VNNI, which this CPU lacks" in capsys.readouterr().err
    sources = _weight_sources(onnx.load(str(result.path)))
    head = head_scope(list(sources))
    inner = {name: src for name, src in sources.items() if name.startswith(head) and re.search(r"/cv\d\.\d/cv\d\.\d\.[01]/", name)}
    last = {name: src for name, src in sources.items() if name.startswith(head) and re.search(r"/cv\d\.\d/cv\d\.\d\.2/", name)}
    assert len(inner) == 2 * len(last) and set(inner.values()) == {"DequantizeLinear"}  # two per branch
    assert len(last) == 6 and set(last.values()) == {"initializer"}  # box and class branch, three scales


def test_float_rules_name_the_heads_inner_convolutions_of_yolov8_and_yolo11_heads():
    head = ["/model.23/cv2.0/cv2.0.0/conv/Conv", "/model.23/cv2.0/cv2.0.1/act/Mul", "/model.23/cv2.0/cv2.0.2/Conv",
            "/model.23/cv3.1/cv3.1.0/cv3.1.0.0/conv/Conv", "/model.23/cv3.1/cv3.1.1/cv3.1.1.1/conv/Conv",
            "/model.23/cv3.1/cv3.1.2/Conv", "/model.23/cv4.2/cv4.2.1/conv/Conv", "/model.23/cv4.2/cv4.2.2/Conv",
            "/model.23/proto/cv1/conv/Conv", "/model.23/dfl/conv/Conv", "/model.23/Sigmoid", "/model.23/Concat_3"]
    body = ["/model.0/conv/Conv", "/model.22/cv2/conv/Conv"]
    kept, said = float_nodes(body + head, "outputs")
    assert kept == ["/model.23/cv2.0/cv2.0.2/Conv", "/model.23/cv3.1/cv3.1.2/Conv", "/model.23/cv4.2/cv4.2.2/Conv",
                    "/model.23/proto/cv1/conv/Conv", "/model.23/dfl/conv/Conv", "/model.23/Sigmoid",
                    "/model.23/Concat_3"]
    assert "7 of the 12 nodes of /model.23/" in said
    assert float_nodes(body + head, "head") == (head, "the detection head /model.23/ (12 nodes)")
    with pytest.raises(DetftError, match="not named as ultralytics names them"):
        float_nodes(["conv1", "relu"], "outputs")


def test_int8_is_refused_for_rcnn_and_beside_half_before_anything_is_written(runs, tmp_path: Path):
    run = copy_run(runs["rcnn-det"], tmp_path)
    with pytest.raises(DetftError, match=r"--int8 is offered for YOLO graphs"):
        detft.load(run, device="cpu").export(int8=True)
    with pytest.raises(DetftError, match=r"--int8 and --half: choose one"):
        detft.load(copy_run(runs["yolo-det"], tmp_path / "y"), device="cpu").export(int8=True, half=True)
    assert sorted(p.name for p in (run / "weights").iterdir()) == ["best.pt", "last.pt"]


def test_a_dynamic_yolo_graph_predicts_frames_of_one_shape_in_one_run_as_it_predicts_each(runs, tmp_path: Path):
    run = copy_run(runs["yolo-det"], tmp_path)
    graph = detft.load(detft.load(run, device="cpu").export().path, conf=0.001).predictor
    wide = read_bgr(make_image(tmp_path / "a.png", 160, 90, seed=4))
    frames = [wide, np.ascontiguousarray(wide[:, ::-1]), read_bgr(make_image(tmp_path / "b.png", 160, 40, seed=5))]
    alone = [graph.predict([im])[0] for im in frames]
    calls = []
    inner = graph.session.run
    graph.session.run = lambda names, feed: calls.append(next(iter(feed.values())).shape[0]) or inner(names, feed)
    for got, want in zip(graph.predict(frames), alone):
        assert_same_detections(want, got, 0.001)
    assert sorted(calls) == [1, 2], "the two 16:9 frames share one run, the 4:1 one has its own"


def test_openvino_ir_in_fp32_and_int8_predicts_like_its_source_and_carries_its_metadata(runs, tmp_path: Path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    run = copy_run(runs["yolo-seg"], tmp_path)
    source = detft.load(run, device="cpu", conf=0.001)
    fp32 = source.export(format="openvino")
    assert fp32.path == run / "weights" / "best.xml" and (run / "weights" / "best.bin").is_file()
    assert fp32.report["within_tolerance"] and fp32.report["providers"][0].startswith("OpenVINO CPU")
    ir = detft.load(fp32.path, conf=0.001)
    assert ir.run.info.labels.names == source.run.info.labels.names and ir.run.info.task == "segment"
    assert ir.predictor.dtype == np.uint8, "OpenVINO takes the letterboxed uint8 frame and scales it in its graph"
    image = make_image(tmp_path / "camera.png", 160, 90, seed=4)
    (got,) = ir.predict(image)
    assert got.masks is not None and got.masks.shape[1:] == (90, 160)
    pair = ir.predictor.predict([read_bgr(image)[..., ::-1]] * 2)  # one run of a batch of two: the IR keeps the batch dynamic
    assert_same_detections(got, pair[1], 0.001)
    int8 = source.export(tmp_path / "deploy" / "int8.xml", format="openvino", int8=True, accept_drop=True)
    assert "NNCF" in int8.report["graph"]["int8"]["tool"]
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == ["export.json", "int8.bin", "int8.xml"]
    with pytest.raises(DetftError, match=r"runs on the CPU here"):
        detft.load(int8.path, device="cuda")
    with pytest.raises(DetftError, match=r"an OpenVINO export is a \.xml file"):
        source.export(tmp_path / "x.onnx", format="openvino")
