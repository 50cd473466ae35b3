"""COCO starts offline: checkpoints read without running their pickle, YOLOv5s-seg mapped completely into
ultralytics' network, and both packaged COCO models finding the bus and the people in ultralytics' bus.jpg."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detft.errors import DetftError
from detft.models import packaged
from detft.models.inert_pickle import Inert, read_checkpoint, read_pickle
from detft.models.packaged import PACKAGED, PackagedWeights


def installed(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not packaged.available(name), reason=f"{PACKAGED[name].distribution} is not installed "
                              f"({PACKAGED[name].install})")


class Payload:
    """Unpickling this runs a shell command: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Module(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        shared = torch.arange(10, dtype=torch.float16)
        self.register_buffer("window", shared[2:7])  # a view with a storage offset
        self.register_buffer("scratch", torch.ones(2), persistent=False)


def saved(tmp_path: Path, obj: object, name: str = "ckpt.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_tensors_come_out_as_saved_and_the_model_s_own_code_is_never_needed(tmp_path: Path):
    model = Module()
    nn.init.normal_(model.conv.weight)
    state, attributes = read_checkpoint(saved(tmp_path, {"model": model, "epoch": 3, "names": ["a"]}))
    expected = {k: v.float() for k, v in model.state_dict().items() if k != "bn.num_batches_tracked"}
    assert set(state) == set(model.state_dict()) and "scratch" not in state  # non-persistent buffers are not state
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key
    assert torch.equal(state["window"], torch.arange(2, 7, dtype=torch.float32))
    assert attributes["training"] is True


def test_the_ema_weights_are_read_when_the_checkpoint_has_them(tmp_path: Path):
    raw, ema = Module(), Module()
    nn.init.zeros_(raw.conv.weight)
    nn.init.ones_(ema.conv.weight)
    state, _ = read_checkpoint(saved(tmp_path, {"model": raw, "ema": ema}))
    assert torch.equal(state["conv.weight"], torch.ones_like(state["conv.weight"]))


def test_a_checkpoint_that_calls_os_system_loads_nothing_and_runs_nothing(tmp_path: Path):
    marker = tmp_path / "ran"
    with pytest.raises(DetftError, match="no 'model' entry"):
        read_checkpoint(saved(tmp_path, {"model": Payload(marker)}))
    model = Module()
    model.hook = Payload(marker)  # hidden inside an otherwise good module: its tensors still come out
    state, _ = read_checkpoint(saved(tmp_path, {"model": model, "extra": Payload(marker)}, "hidden.pt"))
    assert "conv.weight" in state
    _, stubbed = read_pickle(tmp_path / "hidden.pt")
    assert f"{os.system.__module__}.system" in stubbed
    assert not marker.exists(), "unpickling ran the file's command"


def test_no_global_outside_the_tensor_rebuilders_resolves_to_anything_callable(tmp_path: Path):
    """Every opcode route to a global (GLOBAL, STACK_GLOBAL, INST, OBJ through protocol 0 to 5) ends at a stub."""
    marker = tmp_path / "ran"
    for protocol in range(6):
        data = pickle.dumps({"model": [Payload(marker), eval, print]}, protocol=protocol)
        path = tmp_path / f"p{protocol}.pt"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", data)
        root, stubbed = read_pickle(path)
        assert {f"{os.system.__module__}.system", "builtins.eval", "builtins.print"} <= stubbed
        called, *named = root["model"]
        assert isinstance(called, Inert) and called.args == (f"touch {marker}",)
        assert all(isinstance(x, type) and issubclass(x, Inert) for x in named)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["not a zip", "storage too short", "no data.pkl"])
def test_damaged_checkpoints_are_named_errors(tmp_path: Path, damage: str):
    good = saved(tmp_path, {"model": Module()})
    path = tmp_path / "bad.pt"
    if damage == "not a zip":
        path.write_bytes(b"\x89PNG not a checkpoint")
    else:
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if damage == "storage too short" and "/data/" in info.filename:
                    data = data[:-2]
                if damage == "no data.pkl" and info.filename.endswith("data.pkl"):
                    continue
                dst.writestr(info.filename, data)
    with pytest.raises(DetftError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)


def test_a_packaged_file_that_is_not_the_published_one_is_refused(monkeypatch: pytest.MonkeyPatch):
    import importlib.metadata

    dist = next(iter(importlib.metadata.distributions()))
    file = next(f for f in dist.files or [] if Path(dist.locate_file(f)).is_file())
    monkeypatch.setitem(PACKAGED, "swapped", PackagedWeights("swapped", dist.metadata["Name"], str(file), "MIT", "test",
                                                             sha256="0" * 64))
    with pytest.raises(DetftError, match="sha256 differs"):
        packaged.locate("swapped")


# --- the packaged COCO starts themselves -------------------------------------------------------------------------

def bus() -> tuple[torch.Tensor, tuple[int, int]]:
    """ultralytics' bus.jpg (810 x 1080) as a 480 x 640 RGB batch in [0, 1], and its original size."""
    import ultralytics
    from PIL import Image

    image = Image.open(Path(ultralytics.__file__).parent / "assets" / "bus.jpg").convert("RGB")
    x = torch.from_numpy(np.array(image.resize((480, 640)))).permute(2, 0, 1)[None].float() / 255
    return x, image.size


def box_iou(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


BUS = [5, 228, 800, 735]  # the bus in bus.jpg, pixels, read off the picture (its shadow left out)


def yolov5_segments(model, source: dict[str, torch.Tensor], conf: float = 0.4):
    """YOLOv5 v7.0's own segmentation output on bus.jpg, computed with the *mapped* ultralytics network's neck
    and mask prototype and the file's anchor-based head: (class, score, box in pixels, mask IoU with the box).
    The mask is the prototype combination before YOLOv5 crops it to the box, so it only matches the box when the
    mapped backbone, neck and prototype (and its upsampling) compute what YOLOv5's did."""
    from torchvision.ops import batched_nms

    x, (width, height) = bus()
    net, feats = model.model.eval(), []
    head = net.model[-1]
    hook = head.register_forward_pre_hook(lambda module, args: feats.append(args[0]))
    try:
        with torch.no_grad():
            net(x)
            protos = head.proto(feats[0][0])[0]
            rows = []
            for i, (f, stride) in enumerate(zip(feats[0], (8, 16, 32))):
                p = F.conv2d(f, source[f"model.24.m.{i}.weight"], source[f"model.24.m.{i}.bias"])
                _, _, ny, nx = p.shape
                p = p.view(1, 3, 117, ny, nx).permute(0, 1, 3, 4, 2)
                yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float() - 0.5
                xy = (p[..., :2].sigmoid() * 2 + grid) * stride
                wh = (p[..., 2:4].sigmoid() * 2) ** 2 * (source["model.24.anchors"][i] * stride).view(1, 3, 1, 1, 2)
                scores = p[..., 4:5].sigmoid() * p[..., 5:85].sigmoid()
                rows.append(torch.cat([xy - wh / 2, xy + wh / 2, scores, p[..., 85:]], -1).view(-1, 116))
    finally:
        hook.remove()
    r = torch.cat(rows)
    score, cls = r[:, 4:84].max(1)
    keep = score > conf
    r, score, cls = r[keep], score[keep], cls[keep]
    keep = batched_nms(r[:, :4], score, cls, 0.45)
    out = []
    for row, s, c in zip(r[keep], score[keep], cls[keep]):
        mask = (row[84:] @ protos.view(32, -1)).sigmoid().view(protos.shape[1:]) > 0.5
        x0, y0, x1, y1 = (row[:4] / 4).round().int().tolist()  # the prototype is at a quarter of the input
        inside = torch.zeros_like(mask)
        inside[max(y0, 0):y1, max(x0, 0):x1] = True
        iou = float((mask & inside).sum() / (mask | inside).sum())
        out.append((int(c), float(s), (row[:4] * torch.tensor([width / 480, height / 640] * 2)).tolist(), iou))
    return out


@installed("yolov5s-seg-coco")
def test_yolov5s_seg_maps_completely_into_ultralytics_with_a_nearest_upsampling_prototype():
    from detft.models.yolo import load_model

    model = load_model("yolov5s-seg-coco")
    source, _ = read_checkpoint(packaged.locate("yolov5s-seg-coco"))
    own = model.model.state_dict()
    mapped = [k for k in source if not k.startswith(("model.24.anchors", "model.24.m."))]
    assert len(mapped) == 360 and all(torch.equal(own[k], source[k]) for k in mapped)
    fresh = [k for k in own if k not in source]
    assert fresh and all(k.startswith(("model.24.cv2.", "model.24.cv3.", "model.24.cv4.", "model.24.dfl.",
                                       "model.24.proto.upsample.")) for k in fresh)
    proto = model.model.model[-1].proto.eval()
    x = torch.randn(1, 128, 6, 5)
    with torch.no_grad():
        yolov5 = proto.cv3(proto.cv2(F.interpolate(proto.cv1(x), scale_factor=2, mode="nearest")))
        assert torch.allclose(proto(x), yolov5, atol=1e-5)
    assert model.task == "segment" and model.names[5] == "bus"


@installed("yolov5s-seg-coco")
def test_mapped_yolov5s_seg_finds_the_bus_and_the_people_with_masks_that_cover_them():
    from detft.models.yolo import load_model

    model = load_model("yolov5s-seg-coco")
    source, _ = read_checkpoint(packaged.locate("yolov5s-seg-coco"))
    found = yolov5_segments(model, source)
    buses = [f for f in found if f[0] == 5]
    people = [f for f in found if f[0] == 0]
    assert len(buses) == 1 and box_iou(buses[0][2], BUS) > 0.85 and buses[0][1] > 0.6
    assert len(people) >= 3
    # each mask lies on its object: random prototypes give IoU 0.05-0.13 with a person's box, these 0.26-0.41
    assert buses[0][3] > 0.5 and all(p[3] > 0.2 for p in people) and np.mean([p[3] for p in people]) > 0.28


@installed("yolov5s-seg-coco")
def test_the_mapping_stops_rather_than_loading_part_of_a_checkpoint(monkeypatch: pytest.MonkeyPatch):
    from detft.models import yolov5_seg
    from detft.models.yolo import prepare_offline

    prepare_offline()
    path = packaged.locate("yolov5s-seg-coco")
    state, attributes = read_checkpoint(path)
    without = {k: v for k, v in state.items() if k != "model.17.cv3.conv.weight"}
    monkeypatch.setattr(yolov5_seg, "read_checkpoint", lambda p: (without, attributes))
    with pytest.raises(DetftError, match=r"model\.17\.cv3\.conv\.weight gets no tensor"):
        yolov5_seg.load_yolov5_seg(path)
    wider = {**attributes, "yaml": {**attributes["yaml"], "width_multiple": 0.75}}
    monkeypatch.setattr(yolov5_seg, "read_checkpoint", lambda p: (state, wider))
    with pytest.raises(DetftError, match="not a YOLOv5s-seg network"):
        yolov5_seg.load_yolov5_seg(path)


@installed("yolo11n-coco")
def test_yolo11n_coco_is_the_default_detect_start_and_finds_the_bus_and_the_people():
    import ultralytics

    from detft.models.yolo import starting_point

    det, origin = starting_point(None, None, masks=False)
    assert det.task == "detect" and len(det.names) == 80 and "yolo11n-coco" in origin and "default detect start" in origin
    result = det.predict(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"), verbose=False)[0]
    found = [(det.names[int(c)], b) for c, b in zip(result.boxes.cls, result.boxes.xyxy.tolist())]
    assert [box_iou(b, BUS) > 0.85 for n, b in found if n == "bus"] == [True]
    assert sum(n == "person" for n, _ in found) >= 3


@installed("yolo11n-coco")
def test_the_default_segment_start_fills_the_segment_network_of_its_scale_from_the_coco_detector():
    from detft.models import yolo

    det, _ = yolo.starting_point(None, "yolo11n-coco", masks=False)
    seg, origin = yolo.starting_point(None, None, masks=True)
    assert seg.task == "segment" and origin.startswith("yolo11n-seg.yaml with every layer that fits taken from "
                                                       "yolo11n-coco (detect; the default segment start")
    a, b = seg.model.state_dict(), det.model.state_dict()
    neck = [k for k in b if int(k.split(".")[1]) < 23]  # every layer before the head
    assert len(neck) > 300 and all(torch.equal(a[k], b[k]) for k in neck)


@installed("yolov5s-seg-coco")
def test_the_coco_mask_start_trains_as_itself_and_a_box_dataset_gets_its_detect_network():
    from detft.models.yolo import starting_point

    seg, origin = starting_point(None, "yolov5s-seg-coco", masks=True)
    assert seg.task == "segment" and origin == "yolov5s-seg-coco (segment, 80 classes) fine-tuned"
    det, origin = starting_point(None, "yolov5s-seg-coco", masks=False)
    assert det.task == "detect" and origin.startswith("yolov5s.yaml with every layer that fits taken from yolov5s-seg-coco")
    a, b = det.model.state_dict(), seg.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if int(k.split(".")[1]) < 24)


def test_a_tensor_claiming_more_values_than_its_storage_is_refused(tmp_path: Path):
    """A stride-0 view of one value would become terabytes once copied: refused while reading."""
    big = torch.zeros(1).expand(10**6, 10**6)
    with pytest.raises(DetftError, match="values over a storage of 1"):
        read_checkpoint(saved(tmp_path, {"model": Module(), "x": big}))


@installed("yolov5s-seg-coco")
def test_a_yolov5_seg_file_of_the_user_s_own_loads_through_the_mapping_not_the_full_unpickler(tmp_path: Path):
    import shutil

    from detft.models.yolo import load_model

    own = tmp_path / "yolov5s-seg.pt"  # as downloaded from YOLOv5's releases
    shutil.copy(packaged.locate("yolov5s-seg-coco"), own)
    model = load_model(str(own))
    reference = load_model("yolov5s-seg-coco")
    assert model.task == "segment" and torch.equal(model.model.model[4].cv1.conv.weight,
                                                   reference.model.model[4].cv1.conv.weight)
