"""The Python API; ``detft``'s CLI is a thin layer over these functions.

    run = detft.train(data="my_export/", arch="yolo", epochs=30)
    model = detft.load(run)
    detections = model.predict(["a.jpg", "b.jpg"])
    report = model.evaluate(split="val")

Defaults are the CLI's: :class:`~detft.config.TrainConfig` holds them, one field per ``detft train`` flag."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .annotations.dataset import Dataset
from .config import EMBEDDED_DATA, TrainConfig, load_config
from .errors import DetftError
from .export import CALIBRATION_IMAGES, GRAPH_FILES, TOLERANCE
from .runs import Run

if TYPE_CHECKING:
    from PIL import Image

    from .engine.tracking import Tracker
    from .evaluation.predictor_eval import Evaluation
    from .evaluation.report import EvalSettings
    from .families import Family
    from .inference.detections import Detections
    from .inference.predictor import Predictor
    from .inference.cameras import Camera
    from .inference.video import RunStats
    from .labelling.audit import Audit
    from .labelling.prelabels import SavedLabels
    from .labelling.pseudo import PseudoLabels
    from .labelling.ranking import Ranked
    from .run_table import Comparison, RunRow
    from .operations.tiling import Tiling

ImageLike = Union[str, Path, np.ndarray, "Image.Image"]


def train(config: TrainConfig | str | Path | None = None, *, resume: str | Path | Run | None = None,
          trust_weights: bool = False, mlflow: bool | str | None = None, **fields: Any) -> Run:
    """Fine-tune a model and return its :class:`Run`.

    ``config`` is a TrainConfig, or a run.yaml / config YAML to reproduce; keyword ``fields`` (any
    TrainConfig field: ``data``, ``arch``, ``epochs``...) override it. ``resume`` continues a run with its
    own saved settings; only ``epochs`` may change there (to extend it). ``trust_weights`` lets a YOLO
    checkpoint that the restricted loader refuses run its own code: an argument, never a saved setting,
    so a run folder cannot vouch for itself.

    ``mlflow`` tracks the run in MLflow (``pip install 'detft[mlflow]'``): a tracking URI, or True for
    ``MLFLOW_TRACKING_URI`` or else a local ``./mlruns`` store; False never. None (the default) tracks when
    ``MLFLOW_TRACKING_URI`` is set, and a resumed run that was tracked continues its MLflow run. Where the run
    goes is not a training setting (run.yaml reproduces a run anywhere), so it is an argument, not a config field."""
    from . import families
    from .engine.tracking import open_tracker

    if isinstance(config, (str, Path)):
        config = load_config(Path(config))
    base = config or TrainConfig()
    if resume is not None:
        other = sorted(set(fields) - {"epochs"})
        if other:
            raise DetftError(f"resuming uses the run's own settings; only epochs can change, not {', '.join(other)}")
        run = Run.open(resume, "last")
        saved = run.info.config
        epochs = fields.get("epochs", base.epochs if config is not None else 0)
        cfg = saved.replace(epochs=max(saved.epochs, epochs), project=str(run.folder.parent), name=run.folder.name)
        return _train_tracked(families.for_run(run), cfg, run, True, trust_weights, open_tracker(mlflow, run))
    cfg = base.replace(**fields) if fields else base
    cfg.check()
    tracker = open_tracker(mlflow)  # a missing mlflow client is said before anything is read
    family = families.for_arch(cfg.arch)
    if cfg.pseudo and not cfg.pseudo_labels:
        return _train_with_pseudo_labels(cfg, family, trust_weights, tracker)
    from .data.loading import pseudo_provenance

    cfg = pseudo_provenance(cfg)  # a --pseudo-labels folder detft pseudo did not write: refused before the run folder
    run = Run.create(cfg.project, cfg.name, cfg.exist_ok)
    _check_run_folder(run, cfg, None)
    return _train_tracked(family, cfg, run, False, trust_weights, tracker)


def _train_tracked(family: Family, cfg: TrainConfig, run: Run, resume: bool, trust_weights: bool,
                   tracker: Tracker) -> Run:
    """The family's training, then the full-image score of a tiled run, reported to ``tracker``: finished with the
    final evaluation when all of it ends well, failed (killed for Ctrl-C) when it raises, the error raised on."""
    try:
        run = _score_full_images(family.train(cfg, run, resume=resume, trust_weights=trust_weights, tracker=tracker),
                                 trust_weights)
    except BaseException as e:  # Ctrl-C too: the tracked run must not stay RUNNING for ever
        tracker.fail(e)
        raise
    tracker.finish(run)
    return run


def _train_with_pseudo_labels(cfg: TrainConfig, family: Family, trust_weights: bool, tracker: Tracker) -> Run:
    """``--pseudo UNLABELLED``, the shortcut over the two steps: the teacher's pseudo-labels written into
    ``RUN/pseudo/`` (``detft pseudo``), then training on them (``--pseudo-labels``). The teacher is ``--teacher``, or
    ``--weights`` when that is a run or a checkpoint (the student then starts from the teacher's weights, as
    self-training does). Every check runs before the run folder is made."""
    from .data.loading import data_source
    from .labelling.pseudo import check_classes, pseudo_conf

    source = cfg.teacher or (cfg.weights if cfg.weights and Path(cfg.weights).exists() else None)
    if source is None:
        raise DetftError(f"--pseudo {cfg.pseudo}: pseudo-labels need a teacher, a run trained on the labelled data "
                         "(--teacher RUN, or --weights RUN to also start from it)")
    teacher, conf = Run.open(source), pseudo_conf(cfg.pseudo_conf)
    check_classes(teacher.folder, teacher.info.labels.names, data_source(cfg), cfg.data_format,
                  Path(cfg.images_dir) if cfg.images_dir else None)
    run = Run.create(cfg.project, cfg.name, cfg.exist_ok)
    _check_run_folder(run, cfg, teacher)
    model = load(teacher, device=cfg.device, conf=conf)
    pseudo = model.pseudo_label(cfg.pseudo, run.pseudo_labels_dir, overwrite=True)
    changes: dict[str, Any] = {"pseudo_labels": str(pseudo.folder)}
    if cfg.weights and Path(cfg.weights).exists() and Run.open(cfg.weights).folder == teacher.folder:
        changes["weights"] = str(teacher.weights)  # the checkpoint itself: what a family's --weights takes
    return _train_tracked(family, cfg.replace(**changes), run, False, trust_weights, tracker)


def _score_full_images(run: Run, trust_weights: bool) -> Run:
    """A run trained on tiles is used on full images, sliced as it was tiled: its eval.json (what training prints
    last, what ``--conf auto`` and the benchmark read) scores the full-size val images that way, with the tile-level
    score the family just computed beside it. Scoring the tiles counts an object cut by two tiles twice."""
    from .evaluation.report import EVAL_JSON, format_report, load_eval

    cfg = run.info.config
    if cfg.tiling is None or not (run.folder / EVAL_JSON).is_file() or os.environ.get("RANK", "0") != "0":
        return run  # (several GPUs: rank 0 alone, as for every evaluation)
    tile_doc = load_eval(run.folder)
    tile_metrics = {f"{t}_{k}": m["stats"][k] for t, m in tile_doc["metrics"].items() for k in ("AP", "AP50")}
    ds = run_dataset(run)
    slicing = tiled_slicing(cfg.tiling, ds)
    model = load(run, device=cfg.device, trust_weights=trust_weights, **slicing)
    print(f"\nscoring the full-size val images, predicted in {cfg.tile} px windows as the run was tiled"
          + (" and whole (objects longer than a tile)" if slicing["slice_full"] else "") + ":")
    result = model.evaluate(ds, cfg.val_split if run.info.split is None else "val", out=run.folder, conf=cfg.conf,
                            max_dets=cfg.max_dets, backend=cfg.eval_backend, tiles=cfg.tiling,
                            tile_metrics=tile_metrics)
    print(format_report(result.doc))
    return run


def run_dataset(run: Run, data: str | Path | None = None, data_format: str | None = None) -> Dataset:
    """``data`` read and checked (default: the data ``run`` was trained on, split as training split it), with the
    report printed."""
    from .annotations.report import Report
    from .data.loading import reuse_split
    from .operations.convert import load as load_dataset
    from .runs import FOREIGN

    images_dir = None
    if data is None and run.info.detft_version == FOREIGN:
        raise DetftError(f"{run.weights} was trained outside detft, which knows no dataset for it: "
                         "name one with --data (Python: data=...)")
    if data is None:
        trained = run.info.config
        data, data_format = Path(trained.data) if trained.data else EMBEDDED_DATA, data_format or trained.data_format
        images_dir = Path(trained.images_dir) if trained.images_dir else None
    report = Report()
    ds = load_dataset(Path(data), data_format, report, images_dir=images_dir)
    if len(report):
        print(report.summary())
    reuse_split(ds, run.info.split, data)
    return ds


def tiled_slicing(tiles: Tiling, ds: Dataset) -> dict[str, Any]:
    """How a run trained on ``tiles`` predicts a full image: windows of its tile size and overlap, and the whole
    image too when ``ds`` holds objects longer than a tile, which no window sees whole (bench/small_objects.py
    --mix: bus AP 0.62 in windows alone, 0.96 with the whole image; small objects alike either way)."""
    larger = any(max(a.bbox[2] - a.bbox[0], a.bbox[3] - a.bbox[1]) > tiles.size for im in ds.images for a in im.annotations)
    return {"slice": tiles.size, "slice_overlap": tiles.overlap, "slice_full": larger}


def _check_run_folder(run: Run, cfg: TrainConfig, teacher: Run | None) -> None:
    """The run folder stays out of everything training reads: the data, its images, the pseudo-labelled images and
    the runs it starts from (``--exist-ok`` into the run of ``--weights`` would write over the start it loads)."""
    from .util.output import check_output

    starts = [teacher] if teacher is not None else []
    if cfg.weights and Path(cfg.weights).exists():
        starts.append(Run.open(cfg.weights))
    check_output(run.folder, [Path(cfg.data) if cfg.data else EMBEDDED_DATA, cfg.images_dir, cfg.pseudo,
                              *(p for start in starts for p in start.inputs)], "the run folder")


def _run_slicing(run: Run) -> tuple[int, float, bool] | None:
    """The windows a run trained on tiles predicts full images in: those its last evaluation used (eval.json's
    ``slicing``), else its tile size and overlap; None for a run trained on whole images or an ONNX file."""
    from .evaluation.report import EVAL_JSON, load_eval

    tiling = run.info.config.tiling if run.weights.suffix not in GRAPH_FILES and run.info.config is not None else None
    if tiling is None:
        return None
    if (run.folder / EVAL_JSON).is_file() and (done := load_eval(run.folder).get("slicing")):
        return int(done["size"]), float(done["overlap"]), bool(done.get("full"))
    return tiling.size, tiling.overlap, False


def load(weights: str | Path | Run, *, device: str = "auto", conf: float | str = 0.25, max_dets: int = 100,
         imgsz: int | None = None, trust_weights: bool = False, slice: int | str | None = "auto",
         slice_overlap: float = 0.2, slice_full: bool = False, threads: int | None = None) -> Model:
    """A trained model from a run folder, a checkpoint inside one, a :class:`Run`, or a ``.onnx`` file written
    by ``detft export`` (run by ONNX Runtime; the file carries its classes and input size), whatever its family.

    ``conf="auto"`` holds each class to its own threshold, the best-F1 one of the run's last evaluation.
    ``imgsz`` overrides the size it was trained at; YOLO checkpoints load through the restricted loader
    unless ``trust_weights`` (an ONNX graph runs no Python code, so it needs no trust). ``slice`` (pixels)
    predicts every image window by window with ``slice_overlap``, and with ``slice_full`` also whole, merging
    what the windows found (:mod:`detft.inference.sliced`): for small objects in large images. ``"auto"`` (the
    default): a run trained on tiles predicts in its tile-size windows, as its evaluation did (``model.slicing``
    says so); None: whole images always. ``threads``: CPU threads for this process's inference (PyTorch, ONNX
    Runtime and OpenVINO alike; default torch's, one per core): fewer when other work shares the machine."""
    from . import families

    if threads is not None:
        import torch

        if threads < 1:
            raise DetftError(f"threads={threads}: at least 1")
        torch.set_num_threads(threads)  # ONNX Runtime and OpenVINO sessions take torch's count when they open
    run = Run.open(weights)
    if slice == "auto":
        slice, slice_overlap, slice_full = _run_slicing(run) or (None, slice_overlap, slice_full)
    per_class: dict[str, float] | None = None
    if run.weights.suffix in GRAPH_FILES:
        from .inference.onnx_predictor import OnnxPredictor

        onnx = OnnxPredictor(run.weights, device=device, max_dets=max_dets, imgsz=imgsz)
        run = Run(run.folder, run.weights, onnx.info)
        if conf == "auto":  # the graph's own thresholds; else those of the run folder it sits in
            per_class = onnx.class_thresholds or run.thresholds()
        predictor: Predictor = onnx
    else:
        per_class = run.thresholds() if conf == "auto" else None
        predictor = families.for_run(run).predictor(run, device=device, max_dets=max_dets, imgsz=imgsz,
                                                    trust_weights=trust_weights)
    if slice is not None:
        from .inference.sliced import SlicedPredictor, Slicing

        predictor = SlicedPredictor(predictor, Slicing(slice, slice_overlap, slice_full))
    floor = min(per_class.values()) if per_class else float(conf)
    predictor.set_thresholds(floor, max_dets)
    if per_class:
        from .inference.predictor import ClassThresholds

        by_name = {name: i for i, name in predictor.labels.names_by_category().items()}
        predictor = ClassThresholds(predictor, {by_name[n]: t for n, t in per_class.items() if n in by_name}, max_dets)
    return Model(run, predictor, floor, max_dets)


class Model:
    """A trained model behind one interface for every family."""

    def __init__(self, run: Run, predictor: Predictor, conf: float = 0.25, max_dets: int = 100):
        from .inference.predictor import ClassThresholds

        self.run, self.predictor = run, predictor
        self.conf, self.max_dets = conf, max_dets
        # evaluation scores every detection, whatever per-class thresholds prediction applies
        self.scorer = predictor.inner if isinstance(predictor, ClassThresholds) else predictor

    def __repr__(self) -> str:
        return f"Model({self.run.info.family}: {self.run.info.model}, classes={self.classes}, weights={str(self.run.weights)!r})"

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.labels.names)

    @property
    def masks(self) -> bool:
        return self.predictor.masks

    @property
    def slicing(self) -> Any:
        """The windows each image is predicted in (:class:`~detft.inference.sliced.Slicing`), None for whole images."""
        return getattr(self.scorer, "slicing", None)

    def predict(self, images: ImageLike | Sequence[ImageLike]) -> list[Detections]:
        """Detections for an image file, an RGB uint8 array (H, W, 3), a PIL image, or a list of them;
        labels are the training data's category ids (``names`` maps them)."""
        items = [images] if isinstance(images, (str, Path, np.ndarray)) or hasattr(images, "convert") else list(images)
        return [self.predictor.predict([_rgb(im)])[0] for im in items]

    @property
    def names(self) -> dict[int, str]:
        """Category id -> class name, for the labels :meth:`predict` returns."""
        return self.predictor.labels.names_by_category()

    def evaluate(self, data: str | Path | Dataset | None = None, split: str = "val", *, data_format: str | None = None,
                 out: str | Path | None = None, conf: float = 0.001, max_dets: int = 100,
                 backend: str = "faster", target_precision: float | None = None, tiles: Tiling | None = None,
                 tile_metrics: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Evaluation:
        """COCO mAP (bbox, and segm for masks) on a split of ``data`` (default: the data it was trained on; a
        loaded :class:`Dataset` is used as it is) with detft's evaluator; ``out`` also writes eval.json,
        detections.json, PR curves, the confusion matrix and the F1 curves there, and the per-class score
        thresholds that ``conf="auto"`` uses (best F1, or the lowest reaching ``target_precision``). Scored at
        ``conf`` 0.001 by default (COCO practice), whatever :func:`load` was given.

        ``tiles``: the model (loaded with ``slice=``) was trained on these tiles; the split is also scored as its
        tiles, unsliced (or ``tile_metrics``, when that was just done), and recorded beside the full-image score
        as eval.json's ``tiles``: the number training tracked, which counts an object once per tile holding it.
        ``extra``: more keys for eval.json. An eval.json already in ``out`` (the run folder's, written by training)
        is replaced, except for the sections only training writes (its overfitting watch, its warnings about the data
        split, ultralytics' own numbers), kept as they were."""
        from .evaluation.predictor_eval import evaluate_predictor
        from .evaluation.report import EvalSettings, training_sections

        settings = EvalSettings(backend=backend, max_dets=max_dets, score_threshold=conf,
                                target_precision=target_precision)
        ds = data if isinstance(data, Dataset) else self.dataset(data, data_format)
        kept = training_sections(Path(out)) if out is not None else {}
        extra = {"weights": str(self.run.weights), "data": str(ds.root), **kept, **(extra or {})}
        self.scorer.set_thresholds(conf, max_dets)
        try:
            if tiles is not None:
                extra["tiles"] = self._tile_scores(ds, split, tiles, settings, tile_metrics)
            return evaluate_predictor(self.scorer, ds, split, settings, Path(out) if out is not None else None, extra)
        finally:
            self.scorer.set_thresholds(self.conf, self.max_dets)

    def _tile_scores(self, ds: Dataset, split: str, tiles: Tiling, settings: EvalSettings,
                     metrics: dict[str, Any] | None) -> dict[str, Any]:
        """The split cut into the tiles the model trained on, scored by the unsliced model: eval.json's ``tiles``."""
        from .annotations.report import Report
        from .evaluation.predictor_eval import evaluate_predictor
        from .inference.sliced import SlicedPredictor
        from .operations.tiling import tile_dataset

        tiled = tile_dataset(ds, tiles, Report()).images_in(split)  # all of it, as training did: the same tiles
        if metrics is None:
            plain = self.scorer.inner if isinstance(self.scorer, SlicedPredictor) else self.scorer
            metrics = evaluate_predictor(plain, ds, tiled, settings).metrics
        return {"size": tiles.size, "overlap": tiles.overlap, "images": len(tiled), "metrics": metrics}

    def dataset(self, data: str | Path | None = None, data_format: str | None = None) -> Dataset:
        """``data`` read and checked (default: the data the model was trained on), with the report printed."""
        return run_dataset(self.run, data, data_format)

    def export(self, out: str | Path | None = None, *, format: str = "onnx", imgsz: int | None = None,
               dynamic: bool | None = None, half: bool = False, int8: bool = False,
               calibration_images: int = CALIBRATION_IMAGES, opset: int | None = None, max_dets: int = 100,
               data: str | Path | None = None, data_format: str | None = None, split: str = "val",
               device: str = "auto", tolerance: float | None = None, accept_drop: bool = False,
               trust_weights: bool = False) -> Exported:
        """``detft export``: the model as an ONNX graph (default: beside its checkpoint, ``best.onnx``) or, with
        ``format="openvino"``, an OpenVINO IR (``best.xml`` + ``best.bin``), in FP32 or, with ``int8``, quantized
        on ``calibration_images`` of the run's training images (YOLO). Then both evaluated on ``split`` of ``data``
        (default: the data it was trained on) with detft's evaluator. AP differing by more than ``tolerance``
        (0.005; 0.01 for INT8) raises and keeps no file: what is deployed must be what was scored, unless
        ``accept_drop`` keeps it with a warning; the numbers go to export.json beside the file. R-CNN graphs take
        one image of any size; YOLO graphs too (letterboxed to the stride-aligned rectangle the checkpoint predicts
        on), or ``imgsz`` squares with ``dynamic=False`` for runtimes that need one shape."""
        import time

        from . import families
        from .export import (EXPORT_JSON, FORMATS, GRAPH_FILES, INT8_TOLERANCE, SUFFIXES, finish_graph, staged,
                             write_fp32)
        from .export.parity import ap_gaps, format_parity, match_detections
        from .export.quantize import FLOAT_RULES, calibration_images as spread, check_int8
        from .runs import FOREIGN
        from .util.output import atomic_write_text, check_output

        if format not in FORMATS:
            raise DetftError(f"--format {format!r}: detft exports {', '.join(FORMATS)}")
        if self.run.weights.suffix in GRAPH_FILES:
            raise DetftError(f"{self.run.weights} is already an export; export the run or checkpoint it came from")
        family = families.for_run(self.run)
        if int8:
            check_int8(family.int8, half)
        tolerance = (INT8_TOLERANCE if int8 else TOLERANCE) if tolerance is None else tolerance
        target = Path(out) if out is not None else self.run.weights.with_suffix(SUFFIXES[format])
        trained = self.run.info.config.data if self.run.info.detft_version != FOREIGN else None
        check_output(target, [Path(d) for d in (data, trained) if d], "--out", held=[self.run.weights])
        dataset = self.dataset(data, data_format)
        calibration = spread(dataset.images_in(self.run.info.config.train_split), calibration_images) if int8 else None
        started = time.perf_counter()
        with staged(target, format) as tmp:
            info, graph, fp32 = write_fp32(family, self.run, tmp, imgsz=imgsz, dynamic=dynamic, half=half,
                                           opset=opset, max_dets=max_dets, trust_weights=trust_weights)
            # the source at the export's input size, so the two see the same pixels
            source = load(self.run.weights, device=device, imgsz=info.imgsz if info.imgsz != self.run.info.imgsz else None,
                          trust_weights=trust_weights, slice=None)  # the network itself, as the graph holds it
            ours = None
            tries: list[dict[str, Any]] = []
            class_thresholds = self._stored_thresholds()
            # INT8: the fewest float layers first; the next rule only where the parity check refuses the last
            for rule in FLOAT_RULES if int8 else FLOAT_RULES[-1:]:
                finish_graph(fp32, tmp, info, graph, format=format, calibration=calibration, float_rule=rule,
                             class_thresholds=class_thresholds)
                exported_s = time.perf_counter() - started
                print(f"exported {target.name}: {info.family} {info.task}, input {graph.describe_input()}, opset "
                      f"{graph.opset}{', fp16' if graph.half else ''}; checking it against {self.run.weights.name}")
                exported = load(tmp, device=device)
                theirs = exported.evaluate(dataset, split, max_dets=max_dets)
                if ours is None:
                    ours = source.evaluate(dataset, split, max_dets=max_dets)
                gaps = ap_gaps(ours.metrics, theirs.metrics)
                worst = max(gaps.values(), default=0.0)
                if int8:
                    tries.append({"float": graph.int8["float"], "rule": rule, "max_ap_diff": worst})
                if worst <= tolerance or rule == FLOAT_RULES[-1]:
                    break
                print(f"INT8 with {graph.int8['float']} float: AP differs by {worst:.4f}, over the tolerance "
                      f"{tolerance}; quantizing again with more of the head float")
            doc = {"file": target.name, "source": str(self.run.weights), "format": format, "family": info.family,
                   "model": info.model, "task": info.task, "graph": graph.__dict__, "input": graph.describe_input(),
                   "providers": exported.predictor.providers, "split": split, "images": ours.images,
                   "conf": 0.001, "data": str(dataset.root),
                   "source_metrics": ours.metrics, "export_metrics": theirs.metrics, "ap_diff": gaps,
                   "max_ap_diff": worst, "tolerance": tolerance, "within_tolerance": worst <= tolerance,
                   "detections": match_detections(ours.results, theirs.results),
                   "bytes": sum(f.stat().st_size for f in tmp.parent.glob(f"{tmp.stem}.*") if f != fp32),
                   "seconds": {"export": round(exported_s, 2), "total": round(time.perf_counter() - started, 2)},
                   **({"int8_tries": tries} if int8 else {})}
            print(format_parity(doc))
            if worst > tolerance:
                message = (f"the export's AP differs from {self.run.weights.name}'s by {worst:.4f} (tolerance "
                           f"{tolerance}); see the table above")
                if not accept_drop:
                    raise DetftError(f"{message}; nothing written (--accept-drop keeps such a file)")
                print(f"\nWARNING: {message}; kept, as --accept-drop asks.", file=sys.stderr)
        atomic_write_text(target.parent / EXPORT_JSON, json.dumps(doc, indent=2))
        return Exported(target, doc)

    def _stored_thresholds(self) -> dict[str, float] | None:
        """The run's ``--conf auto`` thresholds for an export to carry, or None when it was never evaluated."""
        try:
            return self.run.thresholds()
        except DetftError:
            return None

    def annotate(self, source: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
        """``detft predict``: annotated copies of an image or a folder of images, and predictions.jsonl, in ``out``
        (written whole or not at all; an existing ``out`` is replaced only with ``overwrite``, if detft wrote it)."""
        from .inference.video import predict_images
        from .labelling.prelabels import source_images
        from .util.output import atomic_directory, check_output, check_replaceable

        out = Path(out)
        check_output(out, [Path(source), *self.run.inputs], "--out")
        check_replaceable(out, overwrite)
        source_images(Path(source))  # every image readable, before the model runs on any
        with atomic_directory(out, overwrite=overwrite) as tmp:
            predict_images(self.predictor, Path(source), tmp)
        return out

    def save_labels(self, source: str | Path, format: str, out: str | Path, *, images: str = "symlink",
                    overwrite: bool = False, task: str | None = None, ls_root: str | Path | None = None,
                    ls_url: str | None = None) -> SavedLabels:
        """``detft predict --save-labels``: this model's detections on ``source`` (an image or a folder) written
        to ``out`` as a dataset in ``format`` (coco, yolo, voc, labelme, cvat, via, labelstudio, kitti, createml),
        scores kept where the format holds them: pre-labels to correct in an annotation tool (Label Studio's tasks
        carry them as predictions of model version = the run's name). Thresholds are the ``conf`` :func:`load` had.
        ``ls_root``: the Label Studio server's document root ``out`` lies under (image URLs relative to it, so many
        outputs share one server); ``ls_url``: the address the images are served at instead."""
        from .labelling.prelabels import save_labels

        return save_labels(self.predictor, Path(source), format, Path(out), image_mode=images, overwrite=overwrite,
                           task=task, inputs=self.run.inputs, model_version=self.run.folder.name, ls_root=ls_root,
                           ls_url=ls_url)

    def pseudo_label(self, source: str | Path, out: str | Path, *, overwrite: bool = False) -> PseudoLabels:
        """``detft pseudo``: this model, the teacher, labels the unlabelled images of ``source``; its detections at
        the thresholds :func:`load` gave it (``conf="auto"``: its per-class best-F1 ones) are written to ``out`` as
        a COCO dataset with ``pseudo.json`` (teacher, source, thresholds, counts). Train on them beside labelled data
        with ``train(data=..., pseudo_labels=out)``: they join the training split only."""
        from .inference.predictor import ClassThresholds
        from .labelling.pseudo import write_pseudo_labels

        if isinstance(self.predictor, ClassThresholds):
            conf: float | str = "auto"
            thresholds = {self.names[c]: t for c, t in self.predictor.thresholds.items()}
        else:
            conf, thresholds = self.conf, {name: self.conf for name in self.classes}
        return write_pseudo_labels(self.predictor, self.run.weights, Path(source), Path(out), conf=conf,
                                   thresholds=thresholds, inputs=self.run.inputs, overwrite=overwrite)

    def rank(self, source: str | Path, out: str | Path | None = None, *, top: int | None = None,
             sheet: int = 25, order: str = "spread", overwrite: bool = False) -> list[Ranked]:
        """``detft rank``: the images of ``source`` (unlabelled) in the order to label them, most informative
        first (:mod:`detft.labelling.ranking`): ``order`` "spread" joins uncertainty and how unlike each other the
        images are, "uncertainty" ranks by uncertainty alone; with ``out``, ``rank.csv``, ``rank.json`` and
        ``contact_sheet.png`` of the first ``sheet`` there, all three or none. Uses the run's ``--conf auto``
        thresholds and per-class AP when it was evaluated."""
        from .labelling.prelabels import source_images
        from .labelling.ranking import ORDERS, contact_sheet, rank, write
        from .util.bounds import COUNT, NONNEGATIVE_INT
        from .util.output import atomic_directory, check_output, check_replaceable

        COUNT.check("--top", top)
        NONNEGATIVE_INT.check("--sheet", sheet)
        if order not in ORDERS:
            raise DetftError(f"--order {order!r}: one of {', '.join(ORDERS)}")
        root, files = source_images(Path(source))
        if out is not None:
            check_output(Path(out), [Path(source), *self.run.inputs], "--out")
            check_replaceable(Path(out), overwrite)
        by_name = {name: c for c, name in self.names.items()}
        try:
            thresholds = {by_name[n]: t for n, t in self.run.thresholds().items() if n in by_name}
        except DetftError:
            thresholds = {}
            print(f"{self.run.folder} has no evaluation: every class is held to one threshold, 0.5, and weighed alike "
                  f"(run detft eval --weights {self.run.folder} for per-class thresholds and AP)")
        class_ap = {by_name[n]: ap for n, ap in self.run.class_ap().items() if n in by_name}
        try:  # rank() reads every detection from its floor up; the sheet draws what it saw
            rows = rank(self.scorer, files, root, thresholds, class_ap, self.names, diverse=order == "spread")[:top]
            if out is not None:
                with atomic_directory(Path(out), overwrite=overwrite) as tmp:
                    if escaped := write(rows, tmp):
                        print(f"{escaped} file name(s) are not valid UTF-8: rank.csv and rank.json show their odd "
                              "bytes as \\xNN")
                    if rows and sheet > 0:
                        contact_sheet(self.scorer, rows[:sheet], root, self.names, tmp / "contact_sheet.png")
        finally:
            self.scorer.set_thresholds(self.conf, self.max_dets)
        return rows

    def audit(self, data: str | Path | Dataset | None, out: str | Path, *, folds: int | None = 3,
              fold_epochs: int | None = None, fold_budget: float | None = None, seed: int = 0, group: bool = True,
              save_labels: str | None = None, images: str = "symlink", min_score: float = 0.2,
              fix_score: float = 0.5, sheet: int = 25, data_format: str | None = None, device: str | None = None,
              trust_weights: bool = False, overwrite: bool = False) -> Audit:
        """``detft audit``: likely label errors in ``data`` (default: the data the run trained on), ranked, typed
        (missing, spurious, wrong_class, loose, duplicate) and written to ``out`` (:mod:`detft.labelling.audit`):
        issues.csv/.json, images.csv, audit.json, contact_sheet.jpg, changes.json and ``fixes/``, the data with
        every fix scoring ``fix_score`` or more applied, in ``save_labels`` (default: the data's own format where
        detft writes it, else coco). Each image is scored by one of ``folds`` models trained with the run's settings
        on the other folds (``fold_epochs`` or ``fold_budget`` minutes make them cheaper; ``seed`` and ``group``,
        near-identical images in one fold, cut them); ``folds=None`` scores with this model, in-sample."""
        from .formats import WRITERS
        from .labelling.audit import audit
        from .runs import FOREIGN, training_seconds

        ds = data if isinstance(data, Dataset) else self.dataset(data, data_format)
        retrainable = self.run.info.detft_version != FOREIGN and self.run.weights.suffix not in GRAPH_FILES
        cfg = self.run.info.config if retrainable else None  # an export or a foreign checkpoint: no settings to repeat
        if cfg is not None and device is not None:
            cfg = cfg.replace(device=device)

        def fold_model(fold_cfg: TrainConfig) -> Predictor:
            run = train(fold_cfg, trust_weights=trust_weights, mlflow=False)
            return load(Run.open(run.folder, "last"), device=fold_cfg.device, trust_weights=trust_weights).scorer

        try:
            return audit(ds, Path(out), weights=self.run.weights, inputs=[ds.root, *self.run.inputs], folds=folds,
                         cfg=cfg, fold_model=fold_model,
                         predictor=self.scorer, seed=seed, group=group, fold_epochs=fold_epochs,
                         fold_budget=fold_budget, images=images, min_score=min_score, fix_score=fix_score,
                         sheet=sheet, overwrite=overwrite, trained_seconds=training_seconds(self.run.epoch_rows()),
                         save_labels=save_labels or (ds.format if ds.format in WRITERS else "coco"))
        finally:
            self.scorer.set_thresholds(self.conf, self.max_dets)

    def video(self, source: str | Path | list[str | Camera], **options: Any) -> RunStats | dict[str, RunStats]:
        """``detft video``: a video file, image folder, webcam index or stream URL, with ``options`` those of
        :func:`detft.inference.video.infer_video` (out, jsonl, track, show, max_frames...). Several cameras in one
        process: a list of sources (``"name=URL"`` names one) or :class:`~detft.inference.cameras.Camera`, or a
        cameras YAML file, with ``options`` those of :func:`detft.inference.streams.run_streams` (out is then a
        folder; events, batch, metrics_port); it returns each camera's counters by name."""
        from .inference.cameras import Camera, cameras_from_sources, read_cameras
        from .inference.streams import run_streams
        from .inference.video import infer_video

        if isinstance(source, (list, tuple)):
            cameras = [s for s in source if isinstance(s, Camera)]
            if cameras and len(cameras) < len(source):
                raise DetftError("give the cameras as sources or as Camera objects, not a mix")
            return run_streams(self.predictor, cameras or cameras_from_sources([str(s) for s in source]), **options)
        if Path(source).suffix.lower() in (".yaml", ".yml"):
            return run_streams(self.predictor, read_cameras(Path(source)), **options)
        return infer_video(self.predictor, str(source), **options)

    def serve(self, *, host: str = "127.0.0.1", port: int = 9090, ls_root: str | Path | None = None,
              ls_host: str | None = None, ls_token: str | None = None) -> None:
        """``detft serve``: this model as a Label Studio ML backend on ``host:port`` until interrupted
        (:mod:`detft.labelling.ml_backend`): predictions for the tasks annotators open, in the project's own tags,
        at the thresholds :func:`load` gave it. Task images come from disk under ``ls_root`` (the server's
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT), from the server at ``ls_host`` with ``ls_token`` (uploads), or from
        their http(s) URL; unset, those three are read from LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, LABEL_STUDIO_URL
        and LABEL_STUDIO_API_KEY, then from what the server says when a project connects."""
        from .labelling.ml_backend import Backend
        from .labelling.ml_server import serve
        from .labelling.task_images import TaskImages

        serve(Backend(self.predictor, self.run.folder.name, TaskImages.from_env(ls_root, ls_host, ls_token)),
              host, port)


def list_runs(folder: str | Path | None = None, *, sort: str = "newest") -> list[RunRow]:
    """The runs under ``folder`` (default: ``runs``, where ``detft train`` puts them), found at any depth, one
    :class:`~detft.run_table.RunRow` each (``detft runs``): family, start, data, epochs, training time, the last
    evaluation's box and mask AP, best epoch and status. A folder that cannot be read is a row whose status says
    why. ``sort``: newest first, or a column (numbers from the highest, text from A, blanks last)."""
    from .run_table import read_rows, sort_rows

    return sort_rows(read_rows(Path(folder or TrainConfig().project)), sort)


def compare_runs(*runs: str | Path | Run, folder: str | Path | None = None, all_keys: bool = False) -> Comparison:
    """Two or more runs side by side (``detft runs compare``): the config keys whose values differ (every key with
    ``all_keys``), then the COCO stats, per-class AP, best epoch and training time of each. A run is a folder or
    its name under ``folder`` (default ``runs``)."""
    from .run_table import compare

    return compare([r.folder if isinstance(r, Run) else r for r in runs], Path(folder or TrainConfig().project),
                   all_keys)


def _rgb(image: ImageLike) -> np.ndarray:
    if isinstance(image, (str, Path)):
        from .annotations.images import read_bgr

        return np.ascontiguousarray(read_bgr(Path(image))[..., ::-1])
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DetftError(f"an image array must be RGB uint8 of shape (H, W, 3), not {image.dtype} {image.shape}")
        return image
    if hasattr(image, "convert"):  # a PIL image
        return np.array(image.convert("RGB"))  # a writable copy: torch refuses read-only memory
    raise DetftError(f"cannot predict on a {type(image).__name__}: give a path, an RGB array or a PIL image")


@dataclass
class Exported:
    """What :meth:`Model.export` wrote: the graph's path and export.json's content (the parity report)."""

    path: Path
    report: dict[str, Any]
