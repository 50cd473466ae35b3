"""ONNX Runtime behind the Predictor interface: a file written by ``detft export`` predicts with the
same Detections as the model it came from, and needs nothing but itself (classes, task and input size
are in its metadata: export/metadata.py). An OpenVINO IR (``.xml``) runs through the same predictor in OpenVINO
(:mod:`.openvino_runtime`).

The execution provider follows ``--device``: ``auto`` takes CUDA when onnxruntime-gpu and a GPU are
there, else the CPU; ``cuda[:N]`` insists on it. ONNX Runtime falls back to the CPU by itself when the CUDA
provider is listed but cannot load (a missing CUDA or cuDNN library): the provider a session really got is
printed, and one that asked for CUDA and got the CPU is an error, not a silent slowdown. ONNX Runtime runs as many threads as torch does, so
the two compare at the same thread count (and one test worker's single thread stays one)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DetftError
from ..export.metadata import parse, require, thresholds
from ..util.threads import one_torch_thread
from .detections import Detections
from .yolo_graph import Letterbox, masks_in_image, select


def open_session(path: Path, device: str = "auto") -> Any:
    """An InferenceSession on the provider ``device`` names, or a named error for unreadable files."""
    if not path.is_file():
        raise DetftError(f"no ONNX model at {path}")
    ort = require("onnxruntime")
    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device.startswith("cuda") and not cuda:
        raise DetftError(f"--device {device} runs ONNX models through onnxruntime-gpu's CUDA provider, which this "
                         f"onnxruntime lacks (providers: {', '.join(available)}); pip install onnxruntime-gpu")
    if device.startswith("cuda") or (device == "auto" and cuda and torch.cuda.is_available()):
        index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    elif device in ("cpu", "auto"):
        providers = ["CPUExecutionProvider"]
    else:
        raise DetftError(f"--device {device!r}: an ONNX model runs on 'cpu', 'cuda', 'cuda:N' or 'auto'")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # idle workers sleep instead of spinning: the NMS, mask assembly and frame reading that follow each run
    # share the same cores (measured: YOLOv8s at 320 px, 2 cores, 28.4 -> 23.1 ms per frame end to end)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings about unused initialisers are noise here
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own InvalidProtobuf/Fail/InvalidGraph types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DetftError(f"{path} is not a loadable ONNX model (truncated, damaged or not ONNX): {first}") from None
    used = session.get_providers()
    if providers[0] != "CPUExecutionProvider" and "CUDAExecutionProvider" not in used:
        if device.startswith("cuda"):
            raise DetftError(f"--device {device}: onnxruntime could not start its CUDA provider and fell back to "
                             f"{', '.join(used)} (its CUDA/cuDNN libraries missing or of another version; "
                             "onnxruntime's log says which); use --device cpu to run there on purpose")
        print(f"{path.name}: onnxruntime's CUDA provider did not start; running on {', '.join(used)}")
    else:
        print(f"{path.name}: onnxruntime on {used[0]}")
    return session


class OnnxPredictor:
    """A detft ONNX export behind the Predictor interface; ``info`` is the run it was exported from."""

    def __init__(self, path: Path, device: str = "auto", score_threshold: float = 0.25, max_dets: int = 100,
                 imgsz: int | None = None, iou: float = 0.7, mask_threshold: float = 0.5):
        self.path = Path(path)
        if self.path.suffix == ".xml":
            from .openvino_runtime import OpenVinoSession

            self.session: Any = OpenVinoSession(self.path, device)
        else:
            self.session = open_session(self.path, device)
        props = self.session.get_modelmeta().custom_metadata_map
        self.info, self.graph = parse(props, self.path)
        if self.graph.saturates_here():
            print(f"WARNING: {self.path.name} was quantized with int8 weights on a CPU with VNNI, which this CPU lacks: "
                  "ONNX Runtime's int8 products saturate here and it predicts worse than its parity check measured "
                  "(YOLO11n on BCCD: 0.07 box AP lower). Export it again on this machine (detft export --int8), "
                  "which quantizes it right for this CPU.", file=sys.stderr)
        self.class_thresholds = thresholds(props, self.path)  # --conf auto's, when exported with them
        self.labels = self.info.labels
        self.masks = self.info.task == "segment"
        self.lut = np.array(self.labels.model_to_category(), np.int64)
        self.input = self.session.get_inputs()[0]
        self.dtype = {"tensor(float16)": np.float16, "tensor(uint8)": np.uint8}.get(self.input.type, np.float32)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.iou, self.mask_threshold = iou, mask_threshold
        self.imgsz = self._imgsz(imgsz)
        self.set_thresholds(score_threshold, max_dets)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def _imgsz(self, imgsz: int | None) -> int:
        g = self.graph
        if imgsz is None or imgsz == g.imgsz:
            return g.imgsz
        if g.kind == "rcnn":
            raise DetftError(f"{self.path}: an R-CNN graph resizes inside itself to the size it was exported at "
                             f"({g.imgsz}); export again with --imgsz {imgsz} to predict at that size")
        if not g.dynamic:
            raise DetftError(f"{self.path} was exported for {g.imgsz}x{g.imgsz} inputs only (--static); export "
                             f"again without --static (any size) or with --imgsz {imgsz}")
        return -(-imgsz // g.stride) * g.stride  # the next multiple of the stride, as ultralytics rounds

    def set_thresholds(self, conf: float, max_dets: int) -> None:
        g = self.graph
        if g.kind == "rcnn" and max_dets > g.max_dets:
            raise DetftError(f"{self.path} keeps at most {g.max_dets} detections per image (fixed at export); "
                             f"export again with --max-dets {max_dets}")
        # below the graph's floor nothing more exists; the floor is 0.001, COCO's evaluation threshold
        self.conf, self.max_dets = max(conf, g.score_floor), max_dets

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        """Detections per image. A YOLO graph exported dynamic takes the images that letterbox to one shape (frames
        of cameras of one resolution) in one run; a static or R-CNN graph takes one image per run."""
        images = [np.ascontiguousarray(im) for im in images]
        if self.graph.kind == "rcnn":
            return [self._rcnn(im) for im in images]
        g = self.graph
        boxes = [Letterbox.fit(*im.shape[:2], self.imgsz, g.stride, tight=g.dynamic) for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, box in enumerate(boxes):
            groups.setdefault(box.shape if g.dynamic else (i, i), []).append(i)
        out: list[Detections] = [Detections.empty()] * len(images)
        for members in groups.values():
            inputs = [boxes[i].apply(images[i], self.dtype) for i in members]
            x = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
            raw = self.session.run(self.outputs, {self.input.name: x})
            with one_torch_thread():
                for j, i in enumerate(members):
                    out[i] = self._yolo([r[j:j + 1] for r in raw], boxes[i], *images[i].shape[:2])
        return out

    # ------------------------------------------------------------------ torchvision graph
    def _rcnn(self, image: np.ndarray) -> Detections:
        x = image.transpose(2, 0, 1).astype(np.float32) / np.float32(255)  # as RCNNPredictor: float32 [0, 1]
        out = dict(zip(self.outputs, self.session.run(self.outputs, {self.input.name: x})))
        keep = np.flatnonzero(out["scores"] > self.conf)[: self.max_dets]  # sorted by score in the graph
        masks = None
        if self.masks:
            masks = out["masks"][keep, 0] > self.mask_threshold
        return Detections(out["boxes"][keep].astype(np.float32), out["scores"][keep].astype(np.float32),
                          self.lut[out["labels"][keep].astype(np.int64)], masks)

    # ------------------------------------------------------------------ YOLO graph
    def _yolo(self, raw: list[np.ndarray], box: Letterbox, height: int, width: int) -> Detections:
        """One image's detections from its graph outputs: NMS and the mapping back to the image (yolo_graph.py; no
        ultralytics)."""
        g = self.graph
        classes = len(self.labels.names) if self.masks else raw[0].shape[1] - 4  # after them: mask coefficients
        det = select(raw[0], self.conf, self.iou, self.max_dets, classes, g.end2end)
        box.boxes_to_image(det[:, :4], height, width)
        masks = None
        if self.masks:
            masks, keep = masks_in_image(raw[1], det[:, 6:], det[:, :4], box, height, width)
            if not keep.all():  # a detection whose mask is empty is dropped, as the PyTorch predictor does
                det, masks = det[torch.from_numpy(keep)], masks[keep]
        det = det.numpy()
        return Detections(det[:, :4].astype(np.float32), det[:, 4].astype(np.float32),
                          self.lut[det[:, 5].astype(np.int64)], masks)
