"""Label Studio: its JSON export (a list of tasks, each with ``data`` naming the image and ``annotations[].result``)
and JSON-MIN (one flat record per task), read; tasks with annotations, or with ``predictions`` a Label Studio
project shows as pre-labels to accept or correct, written with the labelling config that imports them.

Regions are in percent of the image (``original_width``/``original_height`` say which size the annotator saw):
``rectanglelabels`` (a ``rotation`` about the top-left corner becomes a polygon), ``polygonlabels``,
``ellipselabels`` (a polygon) and ``brushlabels`` (Label Studio's brush code, decoded exactly: :mod:`.brush`).
A shape tag and a ``labels`` tag sharing a region id are one region; per-region choices and text become attributes.
Relations and task-level choices describe the task, not objects: counted and said. Any other result (keypoints, a
tool detft does not know, a result that is not an object) is reported dropped with its type, task and position."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse
from xml.sax.saxutils import quoteattr

import numpy as np

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..errors import FormatError
from ..annotations.geometry import (ELLIPSE_VERTICES, decode_mask, encode_mask, ellipse_polygon, polygons_bbox, rle_bbox,
                        rotated_box_polygon)
from ..annotations.images import is_image_name, probe
from ..util.output import atomic_write_text
from ..util.progress import progress
from ..annotations.report import Report
from . import brush
from .base import CategoryIndex, canonical_split, declared_size, finite, load_json, locate_image, text_field
from .layout import ImagePlacer
from .labelstudio_serving import NOTE_FILE, Serving, serving as default_serving
from .pairing import UPLOAD, Fallback, tail_under
from .shapes import SCORE, folder_per_split, read_score, report_unkept, score_of
from .xmlsafe import parse

NAME = "labelstudio"
TASKS_FILE = "tasks.json"
CONFIG_FILE = "labeling_config.xml"
EXPORT_NAME = re.compile(r"^project-\d+-at-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2})-")  # how Label Studio names an export
MIN_FIELDS = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement", "history",
              "was_cancelled")  # what JSON-MIN adds to a task's data fields in each record
SHAPES = {"rectangle": "rectangle", "polygon": "polygon", "ellipse": "ellipse", "brush": "brush"}
LABEL_KEYS = {f"{s}labels": s for s in SHAPES}  # rectanglelabels -> rectangle ...
PER_REGION = ("choices", "textarea", "rating", "number", "taxonomy")  # attribute-like results a region may carry
TAGS = {"rectangle": ("RectangleLabels", "label"), "polygon": ("PolygonLabels", "polygon"),
        "brush": ("BrushLabels", "brush")}  # written region kind -> config tag and its name (from_name)
TAGS_BY_TYPE = {f"{k}labels": k for k in TAGS}
TASK_LEVEL = "choices/text of the task, not of a region"  # the note's words for results that describe the whole task


def is_export(data: Any) -> bool:
    """A Label Studio JSON or JSON-MIN export: a list of tasks, each with ``data`` and annotations or predictions,
    or flat records naming an image, each with Label Studio's annotation fields or a region list."""
    if not isinstance(data, list) or not data or not all(isinstance(t, dict) for t in data):
        return False
    first = data[0]
    if isinstance(first.get("data"), dict):
        return any(k in first for k in ("annotations", "predictions", "completions"))
    return _minimal_ref(first) is not None and (("annotation_id" in first and "lead_time" in first)
                                                or any(_has_regions(r) for r in data))


def _has_regions(record: dict) -> bool:
    """Whether a JSON-MIN record holds a control's region list (a task nobody annotated holds none)."""
    return any(isinstance(v, list) and v and isinstance(v[0], dict) and
               ("original_width" in v[0] or set(v[0]) & set(LABEL_KEYS)) for v in record.values())


def _minimal_ref(record: dict) -> str | None:
    """A JSON-MIN record's image: its ``image`` field, else the first task field naming an image file (the
    labelling config's ``$img``, ``$image_url``...); JSON-MIN flattens the task's data into the record."""
    if isinstance(record.get("image"), str):
        return record["image"]
    return next((v for k, v in record.items() if k not in MIN_FIELDS and isinstance(v, str)
                 and is_image_name(PurePosixPath(_path_of(v)[0]).name)), None)


def export_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    found = []
    for f in sorted(src.glob("*.json")):
        with open(f, "rb") as fh:
            if sniff(fh.read(65536)):
                found.append(f)
    return found


def sniff(head: bytes) -> bool:
    """Whether a JSON file's first bytes look like a Label Studio export (a list of tasks or JSON-MIN records)."""
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[") and (b'"original_width"' in head or b'"annotation_id"' in head or (
        b'"data"' in head and (b'"result"' in head or b'"predictions"' in head or b'"annotations": []' in head)))


# ------------------------------------------------------------------------------------------------ reading
class _Names:
    """Where each task's image lies: Label Studio names it by a URL of its own storage."""

    def __init__(self, root: Path, images_dir: Path | None):
        self.root, self.fallback = root, Fallback(root, images_dir)
        self.search = ([images_dir] if images_dir else []) + [root, root / "images"]
        self.rules: Counter[str] = Counter()

    def find(self, f: Path, ref: str) -> tuple[str, Path | None]:
        """The image's file name and where it is, for a ``data.image`` value."""
        path, rule = _path_of(ref)
        name = PurePosixPath(path).name
        names = [name]
        if rule == "upload" and (m := UPLOAD.match(name)):
            names.append(m.group(1))  # downloaded from Label Studio's media folder the prefix stays; uploaded, not
        found = None
        for candidate in names:
            found = (locate_image(candidate, self.search)
                     or (tail_under(self.root, path) if rule in ("local storage", "path") else None)
                     or self.fallback.find(f, candidate))
            if found is not None:
                break
        if found is not None and found.name != name:
            self.rules["upload prefix removed"] += 1
        elif found is not None:
            self.rules[rule] += 1
        return (found.name if found is not None else names[-1]), found

    def note(self, report: Report, f: Path, images: list[ImageRecord]) -> None:
        missing = sum(im.path is None for im in images)
        rules = ", ".join(f"{n} {r}" for r, n in sorted(self.rules.items()))
        report.note(f"{f}: {len(images)} tasks' images found ({rules or 'none'})"
                    + (f", {missing} not found" if missing else ""))


def _path_of(ref: str) -> tuple[str, str]:
    """The path an image reference names, and how it names it (a key of the pairing note)."""
    if "?d=" in ref:
        return unquote(ref.split("?d=", 1)[1]), "local storage"
    parsed = urlparse(ref)
    if parsed.scheme in ("http", "https", "s3", "gs", "azure-blob", "gcs"):
        return unquote(parsed.path), f"{parsed.scheme} URL by file name"
    path = unquote(ref).replace("\\", "/")
    return path, "upload" if path.startswith("/data/upload/") or UPLOAD.match(PurePosixPath(path).name) else "path"


def _image_ref(data: Any) -> str | None:
    """The task's image: ``data.image``, else the first value that names an image file or a URL."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("image"), str):
        return data["image"]
    return next((v for v in data.values() if isinstance(v, str) and ("/" in v or "." in v)), None)


def _annotations(task: dict) -> list:
    found = task.get("annotations", task.get("completions"))
    return found if isinstance(found, list) else []


def _choose(task: dict, where: str, report: Report, counts: Counter[str], predictions: bool) -> dict | None:
    """The annotation to read of a task several people annotated: not cancelled, ground truth first, then the one
    updated last (each of the others counted, never merged: two annotators' boxes of one object are not two).
    ``predictions``: a file of pre-labels, whose tasks hold predictions only: the last prediction."""
    if predictions:
        found = _objects(task.get("predictions") or [], "prediction", where, report)
        if not found:
            counts["tasks without predictions (left out)"] += 1
        return found[-1] if found else None
    if not _annotations(task):
        counts["tasks without annotations (not labelled: left out)"] += 1
        return None
    annotations = _objects(_annotations(task), "annotation", where, report)
    if not annotations:
        return None
    kept = [a for a in annotations if not a.get("was_cancelled")]
    if not kept:
        report.add("dropped", "skipped_task", where, f"every annotation of this task ({len(annotations)}) was "
                   "cancelled (the annotator skipped it): the image is left out")
        return None
    kept.sort(key=lambda a: (bool(a.get("ground_truth")), str(a.get("updated_at") or a.get("created_at") or ""),
                             a.get("id") if isinstance(a.get("id"), int) else -1))
    if len(annotations) > 1:
        counts["tasks annotated several times (the ground truth or latest read)"] += 1
        counts["annotations not read (earlier, cancelled or not ground truth)"] += len(annotations) - 1
    return kept[-1]


def _objects(items: list, what: str, where: str, report: Report) -> list[dict]:
    """The entries of a task's annotation or prediction list that are objects; each other one (a string, a number:
    a hand-edited or truncated export) is reported dropped, as it held at least one region."""
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            report.add("dropped", f"bad_{what}", f"{where} {what} {k}", f"a {what} must be an object, not "
                       f"{type(item).__name__} {item!r:.40}", 1)
    return [item for item in items if isinstance(item, dict)]


def _result_list(results: Any, where: str, report: Report) -> list:
    """An annotation's ``result``: a list; anything else is reported dropped (a string or an object in its place
    would otherwise make the image a negative, its regions lost unseen)."""
    if isinstance(results, list):
        return results
    report.add("dropped", "bad_result", where, f"'result' must be a list of results, not {type(results).__name__} "
               f"{results!r:.40}", 0 if results is None else 1)
    return []


def _unread(kind: str, where: str, report: Report) -> None:
    """A result of a type detft does not turn into objects (keypoints, a tool it does not know), counted by type."""
    report.add("dropped", "unread_result", where, f"a {kind or 'untyped'!r} result: detft reads rectangle, polygon, "
               "ellipse and brush regions", 1)


def _region_key(r: dict, k: int, where: str, report: Report) -> str | int | None:
    """The ``id`` that joins a region's results: a string or an integer (Label Studio writes a 10-character
    string); a missing one makes the result its own region, anything else (a list, an object, a fraction) is
    reported (an object lost, unless the result is a region's attribute) and None returned."""
    rid = r.get("id")
    if rid is None:
        return f"#{k}"
    if isinstance(rid, str) or (isinstance(rid, int) and not isinstance(rid, bool)):
        return rid
    report.add("dropped", "bad_result", where, f"result id {rid!r:.40} is not a string or an integer",
               0 if str(r.get("type")).lower() in PER_REGION else 1)
    return None


def _regions(results: list[Any], where: str, report: Report, unused: Counter[str]) -> list[dict]:
    """Results grouped into regions (a shape, its label, its per-region attributes share an ``id``), in the
    JSON-MIN shape: ``{"kind", "value", "labels", "size", "score", "attributes", "where"}``."""
    regions: dict[str | int, dict] = {}
    extras: dict[str | int, dict] = defaultdict(dict)
    for k, r in enumerate(results):
        here = f"{where} result {k}"
        if not isinstance(r, dict):
            report.add("dropped", "bad_result", here, f"a result must be an object, not {type(r).__name__}", 1)
            continue
        kind, value = str(r.get("type", "")).lower(), r.get("value") if isinstance(r.get("value"), dict) else {}
        if kind == "relation" or (kind in PER_REGION and r.get("id") is None):
            unused[TASK_LEVEL if kind in PER_REGION else kind] += 1
            continue
        key = _region_key(r, k, here, report)
        if key is None:
            continue
        shape = LABEL_KEYS.get(kind) or SHAPES.get(kind)
        if shape is not None:
            region = regions.setdefault(key, {"attributes": {}, "where": here})
            region.update(kind=shape, value=value, score=r.get("score"), where=here,
                          size=declared_size(r.get("original_width"), r.get("original_height"), report, here))
            region.setdefault("labels", value.get(kind) if kind in LABEL_KEYS else None)
        elif kind == "labels":
            regions.setdefault(key, {"attributes": {}, "where": here})["labels"] = value.get("labels")
        elif kind in PER_REGION:
            extras[key][str(r.get("from_name") or kind)] = _attribute(value.get(kind))
        else:
            _unread(kind, here, report)
    for key, attrs in extras.items():
        if key in regions:
            regions[key]["attributes"].update(attrs)
        else:
            unused[TASK_LEVEL] += len(attrs)
    out = []
    for region in regions.values():
        if "kind" not in region:
            report.add("dropped", "labels_without_shape", region["where"], f"labels {region['labels']!r:.60} with no "
                       "shape result of the same id", 1)
            continue
        out.append(region)
    return out


def _attribute(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if all(not isinstance(v, (list, dict)) for v in value) else str(value)
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _minimal_regions(record: dict, where: str, report: Report) -> list[dict]:
    """JSON-MIN: each control's results under its name, one dict per region with its label list inside (a list with
    no object in it is a task's field, not regions); a region of a tool detft does not read, or an entry that is not
    an object among regions, is reported by type."""
    out = []
    for field, value in record.items():
        if not isinstance(value, list) or not any(isinstance(v, dict) for v in value):
            continue
        for k, region in enumerate(value):
            here = f"{where} {field}[{k}]"
            if not isinstance(region, dict):
                report.add("dropped", "bad_result", here, f"a region must be an object, not {type(region).__name__}", 1)
                continue
            key = next((lk for lk in region if lk.endswith("labels") and lk != "labels"), None)
            kind = (LABEL_KEYS.get(key) if key else "brush" if "rle" in region else "polygon" if "points" in region
                    else "ellipse" if "radiusX" in region else
                    "rectangle" if "width" in region and "height" in region else None)
            if kind is None:  # keypointlabels, a bare keypoint (x, y, width), a tool of a later Label Studio
                _unread(key or f"{field} (no shape)", here, report)
                continue
            labels = region.get(key) if key else region.get("labels")
            out.append({"kind": kind, "value": region, "labels": labels, "attributes": {}, "score": region.get("score"),
                        "size": declared_size(region.get("original_width"), region.get("original_height"), report,
                                              here), "where": here})
    return out


def _region_annotation(region: dict, image: ImageRecord, cats: CategoryIndex, report: Report,
                       converted: Counter[str]) -> Annotation | None:
    where = region["where"]
    labels = region.get("labels")
    names = [text_field(v) for v in labels] if isinstance(labels, list) else []
    names = [n for n in names if n]
    if not names:
        report.add("dropped", "unlabelled_region", where, f"a {region['kind']} region with no label", 1)
        return None
    if len(names) > 1:
        report.add("converted", "several_labels", where, f"labels {names}: read as {names[0]!r}")
    cat = cats.id_for(names[0], report, where)
    if cat is None:
        return None
    width, height = image.width or region["size"][0], image.height or region["size"][1]
    if not width or not height:
        report.add("dropped", "no_image_size", where, "the image is missing and the result gives no original size", 1)
        return None
    value, kind = region["value"], region["kind"]
    attrs = dict(region["attributes"])
    if (score := read_score(region.get("score"))) is not None:
        attrs[SCORE] = score
    source = SourceRef(where)
    sx, sy = width / 100, height / 100
    if kind == "rectangle":
        vals = finite([value.get(k) for k in ("x", "y", "width", "height")])
        if vals is None:
            report.add("dropped", "bad_bbox", where, "a rectangle needs numeric x, y, width, height", 1)
            return None
        x0, y0, x1, y1 = vals[0] * sx, vals[1] * sy, (vals[0] + vals[2]) * sx, (vals[1] + vals[3]) * sy
        rotation = (finite([value.get("rotation") or 0]) or [0.0])[0] % 360
        if rotation:
            poly = rotated_box_polygon(x0, y0, x1, y1, rotation, pivot=(x0, y0))
            converted["rotated rectangles as polygons"] += 1
            return Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=source)
        return Annotation(cat, (x0, y0, x1, y1), attributes=attrs, source=source)
    if kind == "polygon":
        pts = value.get("points")
        flat = finite([v for p in pts for v in p]) if isinstance(pts, list) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in pts) else None
        if flat is None or len(flat) < 6:
            report.add("dropped", "bad_points", where, "a polygon needs 3+ numeric [x, y] points", 1)
            return None
        poly = [v * (sx if i % 2 == 0 else sy) for i, v in enumerate(flat)]
        return Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=source)
    if kind == "ellipse":
        vals = finite([value.get(k) for k in ("x", "y", "radiusX", "radiusY")])
        if vals is None:
            report.add("dropped", "bad_points", where, "an ellipse needs numeric x, y, radiusX, radiusY", 1)
            return None
        rotation = (finite([value.get("rotation") or 0]) or [0.0])[0]
        poly = ellipse_polygon(vals[0] * sx, vals[1] * sy, vals[2] * sx, vals[3] * sy, theta=np.radians(rotation))
        converted[f"ellipses as {ELLIPSE_VERTICES}-gons"] += 1
        return Annotation(cat, polygons_bbox([poly]), polygons=[poly], attributes=attrs, source=source)
    return _brush(value, region["size"], (width, height), cat, attrs, source, report)


def _brush(value: dict, size: tuple[int, int], image_size: tuple[int, int], cat: int, attrs: dict, source: SourceRef,
           report: Report) -> Annotation | None:
    where = str(source)
    w, h = size[0] or image_size[0], size[1] or image_size[1]
    if (w, h) != image_size:
        report.add("dropped", "brush_size_mismatch", where, f"the brush mask was drawn on a {w}x{h} image, the image "
                   f"is {image_size[0]}x{image_size[1]}", 1)
        return None
    try:
        mask = brush.decode(value.get("rle") or [], h, w)
    except brush.BrushError as e:
        report.add("dropped", "bad_brush", where, f"the brush code cannot be read: {e}", 1)
        return None
    if not mask.any():
        report.add("dropped", "empty_mask", where, "the brush mask has no pixels", 1)
        return None
    rle = encode_mask(mask.astype(np.uint8))
    return Annotation(cat, rle_bbox(rle), rle=rle, attributes=attrs, source=source)


def config_classes(folder: Path) -> list[str]:
    """The classes a Label Studio labelling config beside the export declares (``<Label value=...>`` of its
    ``*Labels`` tags), in its order; [] when there is none."""
    for f in sorted(folder.glob("*.xml")):
        with open(f, "rb") as fh:
            if b"<View" not in fh.read(4096):
                continue
        root = parse(f)
        return list(dict.fromkeys(v for tag in root.iter() if tag.tag.endswith("Labels")
                                  for label in tag.iter("Label") if (v := text_field(label.get("value")))))
    return []


@dataclass
class _Export:
    """One Label Studio file of a folder, with what decides whether it is the one to read."""

    file: Path
    tasks: Any
    minimal: bool  # JSON-MIN: one flat record per annotation
    server: bool  # written by Label Studio (its tasks carry ids): the project's work, not tasks written to import
    labelled: int  # tasks with an annotation (or, in a file of pre-labels, with predictions as regions)
    latest: str  # the time of its latest annotation ('' when none), ISO 8601 as Label Studio writes it
    written: datetime  # when it was exported: the stamp in Label Studio's file name, else the file's time

    @classmethod
    def of(cls, f: Path) -> _Export:
        tasks = load_json(f)
        records = [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []
        minimal = bool(records) and not isinstance(records[0].get("data"), dict)
        if minimal:
            labelled = sum(r.get("annotation_id") is not None or _has_regions(r) for r in records)
            times = [r.get("updated_at") or r.get("created_at") for r in records]
        else:
            annotations = [a for t in records for a in _annotations(t) if isinstance(a, dict)]
            labelled = sum(any(isinstance(a, dict) and not a.get("was_cancelled") for a in _annotations(t))
                           or any(isinstance(p, dict) for p in t.get("predictions") or []) for t in records)
            times = [a.get("updated_at") or a.get("created_at") for a in annotations]
        stamp = EXPORT_NAME.match(f.name)
        written = (datetime.strptime(stamp.group(1), "%Y-%m-%d-%H-%M").replace(tzinfo=timezone.utc) if stamp else
                   datetime.fromtimestamp(f.stat().st_mtime, timezone.utc))
        return cls(f, tasks, minimal, any(isinstance(r.get("id"), int) for r in records), labelled,
                   max((t for t in times if isinstance(t, str)), default=""), written)

    def describe(self) -> str:
        kind = (("a project export, JSON-MIN" if self.minimal else "a project export") if self.server
                else "tasks to import (no task ids)")
        return (f"{self.file.name}: {kind}, {self.labelled} labelled, latest annotation {self.latest or 'none'}, "
                f"written {self.written:%Y-%m-%d %H:%M}")


def _pick_export(files: list[Path], report: Report) -> _Export:
    """The export to read among several in one folder: detft's ``tasks.json`` (what was imported into the project)
    and the project's exports saved beside it (the corrected tasks, in JSON or JSON-MIN). An export of the project
    wins over tasks written to import it, then the one holding the latest annotation (a later export holds every
    edit an earlier one does), then the newest; a file with nothing labelled only when none has any. Said."""
    exports = [_Export.of(f) for f in files]
    if len(exports) == 1:
        return exports[0]
    best = max([e for e in exports if e.labelled] or exports, key=lambda e: (e.server, e.latest, e.written))
    report.note(f"{best.file.parent}: {len(exports)} Label Studio files; read {best.describe()} (a project export "
                "before tasks to import, then the latest annotation, then the newest file); not read: "
                + "; ".join(e.describe() for e in exports if e is not best) + ". Pass a file to read another")
    return best


def _latest_records(records: list[dict], counts: Counter[str]) -> list[tuple[int, dict]]:
    """JSON-MIN's records to read, with their positions: one record per annotation, so a task annotated twice is
    two records (Label Studio writes the newest first; cancelled annotations are left out of JSON-MIN already).
    Each task keeps its latest by time, the rest counted; a record of a task nobody annotated is counted and left
    out. Records without task ids are read as they are."""
    tasks: dict[Any, list[tuple[int, dict]]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.get("annotation_id", 0) is None and not _has_regions(record):
            counts["tasks without annotations (not labelled: left out)"] += 1
            continue
        tasks[record.get("id") if isinstance(record.get("id"), (int, str)) else ("#", i)].append((i, record))
    for group in tasks.values():
        if len(group) > 1:
            counts["tasks annotated several times (the latest read)"] += 1
            counts["annotations not read (earlier ones)"] += len(group) - 1
    return sorted((max(group, key=lambda ir: _min_time(ir[1])) for group in tasks.values()), key=lambda ir: ir[0])


def _min_time(record: dict) -> tuple[str, int]:
    stamp = record.get("updated_at") or record.get("created_at")
    aid = record.get("annotation_id")
    return (stamp if isinstance(stamp, str) else "", aid if isinstance(aid, int) and not isinstance(aid, bool) else -1)


def _prediction_ids_only(f: Path, tasks: list[dict]) -> FormatError:
    """An export of a pre-label project nobody reviewed: Label Studio exports a task's predictions as their ids,
    so the regions are not in the file."""
    n = sum(len(t.get("predictions") or []) for t in tasks)
    return FormatError(f, f"no task of this export is annotated, and its {n} predictions are ids, not regions "
                       "(Label Studio's export leaves prediction regions out): nothing to read. The pre-labels are "
                       "in the tasks.json detft wrote for the import; accept or correct them in Label Studio (each "
                       "becomes an annotation), then export again")


def read(src: Path, report: Report, classes: list[str] | None = None, images_dir: Path | None = None) -> Dataset:
    files = export_files(src)
    if not files:
        raise FormatError(src, "no Label Studio JSON export found (a list of tasks with 'data' and 'annotations')")
    export = _pick_export(files, report)
    f, tasks = export.file, export.tasks
    if not is_export(tasks):
        raise FormatError(f, "not a Label Studio export: expected a list of tasks with 'data' and 'annotations', "
                          "or JSON-MIN records naming an image")
    root = f.parent
    declared = config_classes(root)
    if declared:
        report.note(f"classes from the labelling config beside {f.name}: {', '.join(declared)}")
    cats = CategoryIndex(classes, declared=declared)
    counts: Counter[str] = Counter()
    predictions = not export.minimal and not any(_annotations(t) for t in tasks) and any(
        t.get("predictions") for t in tasks)
    if predictions:
        if not any(isinstance(p, dict) for t in tasks for p in t.get("predictions") or []):
            raise _prediction_ids_only(f, tasks)
        versions = sorted({str(p.get("model_version")) for t in tasks for p in t.get("predictions") or []
                           if isinstance(p, dict)})
        report.note(f"{f}: no task has an annotation, only predictions: the predictions ({', '.join(versions)}) are "
                    "read, as pre-labels (once corrected in Label Studio, export the tasks again)")
    names = _Names(root, images_dir)
    unused: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    images: list[ImageRecord] = []
    units = _latest_records(tasks, counts) if export.minimal else list(enumerate(tasks))
    for i, task in progress(units, "reading Label Studio", unit="task"):
        where = f"{f} task {i}"
        ref = _minimal_ref(task) if export.minimal else _image_ref(task.get("data"))
        if not isinstance(ref, str) or not ref:
            report.add("dropped", "no_image", where, "the task names no image (data.image)")
            continue
        first = len(report.changes)
        if export.minimal:
            regions = _minimal_regions(task, where, report)
        else:
            chosen = _choose(task, where, report, counts, predictions)
            if chosen is None:
                continue
            regions = _regions(_result_list(chosen.get("result"), where, report), where, report, unused)
        dropped = sum(c.annotations_lost for c in report.changes[first:])  # results dropped unread were objects too
        name, path = names.find(f, ref)
        info = probe(path) if path is not None else None
        split = task.get("split") if export.minimal else (task.get("data") or {}).get("split")
        image = ImageRecord(name, info.width if info and info.ok else 0, info.height if info and info.ok else 0,
                            path=path, split=canonical_split(split) if isinstance(split, str) else None,
                            source=SourceRef(where), origin=str(f))
        if not image.width:  # the annotator's size stands in for a missing image's, so its objects are counted
            image.width, image.height = next((r["size"] for r in regions if all(r["size"])), (0, 0))
        report.holds(f, shapes=len(regions) + dropped)
        for region in regions:
            ann = _region_annotation(region, image, cats, report, converted)
            if ann is not None:
                image.annotations.append(ann)
        images.append(image)
    if not images:
        raise FormatError(f, "no task with an image and an annotation")
    names.note(report, f, images)
    for what, n in {**counts, **converted}.items():
        report.note(f"{f}: {n} {what}")
    if unused:
        report.note(f"{f}: results that are not objects, not read: "
                    + ", ".join(f"{n} {kind}" for kind, n in sorted(unused.items())))
    return Dataset(images, cats.finish(images), root=root, format=NAME)


# ------------------------------------------------------------------------------------------------ writing
def annotation_results(ann: Annotation, name: str, width: int, height: int, report: Report) -> list[dict]:
    """The regions of one annotation: a box, its polygon parts (one region each: Label Studio has no groups), or
    its mask as a brush region (exact); ``from_name``/``to_name`` are those of :func:`labeling_config`'s tags (the
    ML backend renames them to a project's own)."""
    common = {"to_name": "image", "original_width": width, "original_height": height, "image_rotation": 0}
    if ann.iscrowd:
        report.add("converted", "crowd_to_object", ann.where(), "Label Studio has no crowd regions: written as an object")
    sx, sy = 100 / width, 100 / height
    if ann.polygons:
        if len(ann.polygons) > 1:
            report.add("converted", "instance_split", ann.where(), f"Label Studio has no groups: the "
                       f"{len(ann.polygons)} parts of this instance are written as regions")
        return [{**common, "type": "polygonlabels", "from_name": TAGS["polygon"][1],
                 "value": {"points": [[p[i] * sx, p[i + 1] * sy] for i in range(0, len(p) - 1, 2)], "closed": True,
                           "polygonlabels": [name]}} for p in ann.polygons]
    if ann.rle is not None:
        mask = decode_mask(ann.rle)
        if mask.shape != (height, width):
            report.add("dropped", "mask_size_mismatch", ann.where(), f"mask {mask.shape[1]}x{mask.shape[0]} on a "
                       f"{width}x{height} image", 1)
            return []
        return [{**common, "type": "brushlabels", "from_name": TAGS["brush"][1],
                 "value": {"format": "rle", "rle": brush.encode(mask), "brushlabels": [name]}}]
    x0, y0, x1, y1 = ann.bbox
    return [{**common, "type": "rectanglelabels", "from_name": TAGS["rectangle"][1],
             "value": {"x": x0 * sx, "y": y0 * sy, "width": (x1 - x0) * sx, "height": (y1 - y0) * sy, "rotation": 0,
                       "rectanglelabels": [name]}}]


def labeling_config(names: list[str], kinds: set[str]) -> str:
    """The labelling interface that shows these regions: an Image and one ``*Labels`` tag per region kind written,
    each listing every class (the shape label-studio-converter's importers generate)."""
    labels = "".join(f"    <Label value={quoteattr(n)}/>\n" for n in names)
    tags = "".join(f'  <{TAGS[k][0]} name="{TAGS[k][1]}" toName="image">\n{labels}  </{TAGS[k][0]}>\n'
                   for k in TAGS if k in kinds or k == "rectangle")
    return f'<View>\n  <Image name="image" value="$image"/>\n{tags}</View>\n'


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink",
          model_version: str | None = None, serving: Serving | None = None) -> list[Path]:
    """``tasks.json`` (images under ``images/``, named by the URL ``serving`` gives them: by default Label Studio's
    local-storage URL relative to OUT), ``labeling_config.xml`` and ``LABEL_STUDIO.md``, how to serve them. With
    ``model_version`` (``detft predict --save-labels``) the regions are the tasks' ``predictions``, each with its
    score and the task with their mean: Label Studio shows them as pre-labels to accept or correct; otherwise they
    are ``annotations``. Several splits are kept in ``data.split``."""
    names = {c.id: c.name for c in dataset.categories}
    serving = serving or default_serving(out)
    placer = ImagePlacer(out, image_mode, report)
    folders = folder_per_split(dataset)
    tasks, kinds = [], set()
    for split, sub in folders.items():
        for im in progress(dataset.images_in(split), f"writing Label Studio {split}", unit="img"):
            folder = f"images/{sub}" if sub else "images"
            rel = f"{folder}/{placer.place(im, folder)}"
            data: dict[str, Any] = {"image": serving.image_url(rel)}
            if len(folders) > 1 or sub:
                data["split"] = split
            results, scores = [], []
            for ann in im.annotations:
                report_unkept(ann, set(), report, "Label Studio")
                for r in annotation_results(ann, names[ann.category_id], im.width, im.height, report):
                    r["id"] = f"r{len(results)}"
                    if model_version is not None and (score := score_of(ann)) is not None:
                        r["score"] = score
                        scores.append(score)
                    kinds.add(TAGS_BY_TYPE[r["type"]])
                    results.append(r)
            if model_version is not None:
                prediction = {"model_version": model_version, "result": results}
                if scores:
                    prediction["score"] = float(np.mean(scores))
                tasks.append({"data": data, "predictions": [prediction]})
            else:
                tasks.append({"data": data, "annotations": [{"result": results, "ground_truth": False}]})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / TASKS_FILE, json.dumps(tasks, ensure_ascii=False))
    atomic_write_text(out / CONFIG_FILE, labeling_config([names[c.id] for c in dataset.sorted_categories()], kinds))
    atomic_write_text(out / NOTE_FILE, serving.note(TASKS_FILE, CONFIG_FILE))
    return [out / TASKS_FILE, out / CONFIG_FILE, out / NOTE_FILE]
