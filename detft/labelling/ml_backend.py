"""``detft serve``: a trained model as a Label Studio ML backend, speaking label-studio-ml-backend's protocol as
Label Studio's server (1.23: ``label_studio/ml/api_connector.py``, ``ml/models.py``) calls it. The HTTP layer is
:mod:`.ml_server`; this module answers the requests.

==================  ==========================================================  ===========================================
route               request                                                     answer
==================  ==========================================================  ===========================================
``GET /health``     (also ``GET /``)                                            ``{"status": "UP", "model_class": ...}``
``POST /setup``     ``project`` ("<id>.<created>"), ``schema`` (the labelling   ``{"model_version": ...}``; a config detft
                    config), ``hostname``, ``access_token``                     cannot label for is a 400
``POST /predict``   ``tasks``, ``project``, ``label_config``, ``params``        ``{"results": [one per task, in order]}``
``POST /webhook``   ``action``, ``project``...: every project event (the        200, ignored; ``START_TRAINING``: 501
                    server registers the backend's /webhook for all of them)
``POST /train``     an older server's training request                          501
``GET /versions``                                                               ``{"versions": [model_version]}``
``GET /metrics``                                                                ``{}``
==================  ==========================================================  ===========================================

The server matches results to tasks by position and keeps ``result``, ``score`` and ``model_version`` of each; it
asks again only for tasks without a prediction of the current model version. So a task whose image cannot be read
is answered ``{"task": id, "error": ...}`` with no ``result``: the server logs it and skips it, and asks again later.

Regions are written by the Label Studio writer's own region code (:func:`..formats.labelstudio.annotation_results`),
named with the project's tags: the first RectangleLabels, PolygonLabels or BrushLabels on its Image, the model's
masks as polygons (else brush, else boxes), boxes as rectangles (else 4-corner polygons, else filled brush masks).
Model classes match the config's labels by value, a label's ``predicted_values`` (comma-separated model classes, as
label-studio-ml-backend's examples use), or case aside; detections of classes the project lacks are left out, named
once in the log and in every /predict answer (``unknown_classes``). detft does not train from Label Studio: export
the project and run ``detft train``."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..annotations.dataset import Annotation
from ..annotations.geometry import encode_mask
from ..annotations.report import Report
from ..errors import DetftError
from ..formats.labelstudio import annotation_results
from ..formats.shapes import SCORE, score_of
from ..formats.xmlsafe import parse_text
from ..inference.detections import Detections
from ..inference.predictor import Predictor
from .prelabels import annotations
from .task_images import Server, TaskImageError, TaskImages

CONTROLS = {"RectangleLabels": "rectangle", "PolygonLabels": "polygon", "BrushLabels": "brush"}
PREFERENCE = {True: ("polygon", "brush", "rectangle"), False: ("rectangle", "polygon", "brush")}  # by: model masks
NO_TRAINING = ("detft serve does not train from Label Studio: export the project (JSON) and run detft train --data "
               "EXPORT --weights RUN, then serve the new run")


class RequestError(DetftError):
    """A request answered with a 4xx/5xx status and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Control:
    """A labelling tag the regions are written for: its kind, its name (``from_name``), the Image it labels
    (``to_name``) and its labels."""

    kind: str
    name: str
    to_name: str
    labels: tuple[str, ...]
    predicted: tuple[tuple[str, str], ...]  # (model class, label) pairs from the labels' predicted_values

    def label_for(self, name: str) -> str | None:
        """The label of model class ``name``: the same value, a label listing it in predicted_values, or the same
        value case aside."""
        if name in self.labels:
            return name
        for model_class, label in self.predicted:
            if model_class == name:
                return label
        folded = [label for label in self.labels if label.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None


@dataclass(frozen=True)
class Plan:
    """How one project's tasks are labelled: the Image's data key, the control, model category id -> label."""

    key: str
    control: Control
    labels: dict[int, str]
    unknown: tuple[str, ...]  # model classes the control has no label for

    @classmethod
    def of(cls, xml: Any, names: dict[int, str], masks: bool) -> Plan:
        """The plan for labelling config ``xml``, or a 400 naming what detft cannot use in it."""
        if not isinstance(xml, str) or not xml.strip():
            raise RequestError(400, "no labelling config (schema / label_config) in the request")
        try:
            root = parse_text(xml, "the project's labelling config")
        except DetftError as e:
            raise RequestError(400, str(e)) from None
        images = {tag.get("name"): tag.get("value", "") for tag in root.iter("Image")}
        controls = [Control(CONTROLS[tag.tag], str(tag.get("name")), str(tag.get("toName")),
                            tuple(str(label.get("value")) for label in tag.iter("Label") if label.get("value")),
                            tuple((v.strip(), str(label.get("value"))) for label in tag.iter("Label")
                                  for v in (label.get("predicted_values") or "").split(",") if v.strip()))
                    for tag in root.iter() if tag.tag in CONTROLS and tag.get("toName") in images and tag.get("name")]
        if not controls:
            raise RequestError(400, "the labelling config has no RectangleLabels, PolygonLabels or BrushLabels on an "
                               "Image: detft serve labels objects in images")
        kinds = {c.kind: c for c in reversed(controls)}  # the first of each kind
        control = kinds[next(k for k in PREFERENCE[masks] if k in kinds)]
        value = images[control.to_name]
        if not value.startswith("$"):
            raise RequestError(400, f"the Image {control.to_name!r} shows {value!r}, not a task field ($name)")
        labels = {c: label for c, name in names.items() if (label := control.label_for(name)) is not None}
        if not labels:
            raise RequestError(400, f"none of the model's classes ({', '.join(names.values())}) is a label of "
                               f"{control.name!r} ({', '.join(control.labels) or 'none'}): name the labels as the "
                               "classes, or list them in a label's predicted_values")
        unknown = tuple(n for c, n in names.items() if c not in labels)
        return cls(value[1:], control, labels, unknown)

    def regions(self, dets: Detections, width: int, height: int, where: str) -> list[dict]:
        """``dets`` as the control's regions, each with its score and an id unique in the task."""
        report = Report()
        out = []
        for ann in self._annotations(dets, width, height, report, where):
            for r in annotation_results(ann, self.labels[ann.category_id], width, height, report):
                r.update(id=f"detft{len(out)}", from_name=self.control.name, to_name=self.control.to_name,
                         score=score_of(ann))
                out.append(r)
        return out

    def _annotations(self, dets: Detections, width: int, height: int, report: Report, where: str) -> list[Annotation]:
        """The detections of classes the project has as annotations of the control's kind."""
        dets = dets.filter(np.isin(dets.labels, list(self.labels)))
        kind = self.control.kind
        if kind != "brush":
            found = annotations(dets, report, where, outlines=kind == "polygon")
            if kind == "polygon":  # a box (no mask, or one too small to outline) as its 4 corners
                for a in found:
                    x0, y0, x1, y1 = a.bbox
                    a.polygons = a.polygons or [[x0, y0, x1, y0, x1, y1, x0, y1]]
            return found
        out = []
        for k in range(len(dets)):
            x0, y0, x1, y1 = (float(v) for v in dets.boxes[k])
            if dets.masks is not None:
                mask = dets.masks[k]
            else:  # a box model's box, filled
                mask = np.zeros((height, width), bool)
                mask[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
            out.append(Annotation(int(dets.labels[k]), (x0, y0, x1, y1), rle=encode_mask(mask.astype(np.uint8)),
                                  attributes={SCORE: round(float(dets.scores[k]), 4)}))
        return out


class Backend:
    """The answers to Label Studio's requests, for one loaded model. Requests may come concurrently: images are
    read in parallel, the model runs one image at a time (a predictor keeps state between calls)."""

    def __init__(self, predictor: Predictor, model_version: str, images: TaskImages, log: Any = None):
        self.predictor, self.model_version, self.images = predictor, model_version, images
        self.names = predictor.labels.names_by_category()
        self.log = log or (lambda message: print(f"detft serve: {message}", file=sys.stderr, flush=True))
        self._model_lock, self._lock = threading.Lock(), threading.Lock()
        self._plans: dict[str, Plan] = {}
        self._servers: dict[str, Server] = {}

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": "detft", "model_version": self.model_version,
                "classes": list(self.names.values())}

    def setup(self, body: dict[str, Any]) -> dict[str, Any]:
        """The project connects: its config checked now (a 400 the server shows as the backend's error), its
        server's address and token kept for its uploads."""
        self._plan(body.get("schema"))
        hostname, token = body.get("hostname"), body.get("access_token")
        if isinstance(hostname, str) and hostname.startswith(("http://", "https://")):
            with self._lock:
                self._servers[_project(body)] = Server(hostname.rstrip("/"), token if isinstance(token, str) else None)
        return {"model_version": self.model_version}

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            raise RequestError(400, "'tasks' must be a list of tasks (objects with 'data')")
        plan = self._plan(body.get("label_config"))
        server = self._servers.get(_project(body))
        answer: dict[str, Any] = {"results": [self._predict_task(task, plan, server) for task in tasks]}
        if plan.unknown:
            answer["unknown_classes"] = list(plan.unknown)
        return answer

    def webhook(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Every project event comes here; only a training request gets an answer that says something."""
        if body.get("action") == "START_TRAINING":
            self.log(NO_TRAINING)
            return 501, {"status": "error", "error": NO_TRAINING}
        return 200, {"status": "ignored", "action": body.get("action")}

    def _predict_task(self, task: dict[str, Any], plan: Plan, server: Server | None) -> dict[str, Any]:
        task_id = task.get("id")
        where = f"task {task_id}"
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        try:
            image = self.images.read(data.get(plan.key), task_id if isinstance(task_id, int) else None, server)
        except TaskImageError as e:
            self.log(f"{where}: {e}")
            return {"task": task_id, "error": str(e)}
        with self._model_lock:
            dets = self.predictor.predict([image])[0]
        height, width = image.shape[:2]
        regions = plan.regions(dets, width, height, where)
        scores = [r["score"] for r in regions]
        return {"result": regions, "score": float(np.mean(scores)) if scores else 0.0,
                "model_version": self.model_version}

    def _plan(self, xml: Any) -> Plan:
        """The plan of a config, made once per config text; its unknown classes said once."""
        with self._lock:
            plan = self._plans.get(xml) if isinstance(xml, str) else None
        if plan is None:
            plan = Plan.of(xml, self.names, self.predictor.masks)
            with self._lock:
                self._plans[xml] = plan
            if plan.unknown:
                self.log(f"the model's classes {', '.join(plan.unknown)} are not labels of {plan.control.name!r}: "
                         "their detections are left out (name a label as the class, or list it in predicted_values)")
        return plan


def _project(body: dict[str, Any]) -> str:
    """The project id of a request's ``project`` ("<id>.<created timestamp>")."""
    return str(body.get("project", "")).split(".", 1)[0]
