"""A model's predictions written as a dataset in the user's own annotation format: pre-labels a person corrects
in their tool (CVAT, LabelMe, VIA...) instead of drawing every object (``detft predict --save-labels``).

Every detection becomes an annotation with its score as the ``score`` attribute (kept by COCO, CVAT, LabelMe and
VIA, said to be dropped by YOLO and VOC); a mask becomes the polygons of its outer contours, the shape those tools
edit. The folder is written as ``detft convert`` writes: all or nothing, with the report beside it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..annotations.dataset import Annotation, Category, Dataset, ImageRecord
from ..annotations.geometry import mask_to_polygons
from ..annotations.images import find_images, probe, read_rgb
from ..annotations.report import Report
from ..errors import DetftError
from ..formats import WRITERS, write_dataset
from ..formats.labelstudio_serving import serving_for
from ..formats.shapes import SCORE
from ..inference.detections import Detections
from ..inference.predictor import Predictor
from ..util.output import atomic_directory, check_output, check_replaceable
from ..util.progress import progress

REPORT_NAME = "labels_report.json"
NO_SCORES = ("yolo", "voc", "createml")  # formats with no place for a confidence
BOXES_ONLY = ("voc", "kitti", "createml")  # formats with no place for a mask


@dataclass
class SavedLabels:
    dataset: Dataset
    report: Report
    out: Path
    files: list[Path]


def source_images(source: Path) -> tuple[Path, list[Path]]:
    """The folder names are relative to, and the images: one image file, or every image below a folder. Every
    image's header is read first, so a broken file is a named error before the model runs on any image."""
    if source.is_file():
        if not (info := probe(source)).ok:
            raise DetftError(f"{source}: this command takes images, and this file is not one ({info.error}); videos "
                             "and streams go to detft video")
        root, files = source.parent, [source]
    elif source.is_dir():
        root, files = source, find_images(source)
        if not files:
            raise DetftError(f"no images in {source}")
    else:
        raise DetftError(f"{source}: no such image or folder (images only here, not videos or streams)")
    bad = [(f, info.error) for f in files if not (info := probe(f)).ok]
    if bad:
        raise DetftError(f"{len(bad)} of {len(files)} image file(s) cannot be used: "
                         + "; ".join(f"{f}: {error}" for f, error in bad[:5]) + (" ..." if len(bad) > 5 else "")
                         + ". Move or repair them, and run again")
    return root, files


def annotations(dets: Detections, report: Report, where: str, outlines: bool = True) -> list[Annotation]:
    """``dets`` as annotations; with ``outlines`` each mask as its polygons (a box-only format needs none)."""
    out = []
    for k in range(len(dets)):
        x0, y0, x1, y1 = (float(v) for v in dets.boxes[k])
        polygons = None
        if dets.masks is not None and outlines:
            polygons = mask_to_polygons(dets.masks[k]) or None
            if polygons is None:
                report.add("converted", "mask_to_box", where, "a predicted mask too small to outline: its box is written")
        out.append(Annotation(int(dets.labels[k]), (x0, y0, x1, y1), polygons=polygons,
                              attributes={SCORE: round(float(dets.scores[k]), 4)}))
    return out


def predictions_dataset(predictor: Predictor, root: Path, files: list[Path], report: Report,
                        outlines: bool = True) -> Dataset:
    """Every image of ``files`` (named relative to ``root``) with ``predictor``'s detections as its annotations
    (one split, ``train``)."""
    images = []
    for path in progress(files, "pre-labelling", unit="img"):
        info = probe(path)
        if not info.ok:
            raise DetftError(f"{path}: {info.error}")
        record = ImageRecord(path.relative_to(root).as_posix(), info.width, info.height, path=path)
        record.annotations = annotations(predictor.predict([read_rgb(record)])[0], report, str(path), outlines)
        images.append(record)
    names = predictor.labels.names_by_category()
    return Dataset(images, [Category(i, n) for i, n in sorted(names.items())], root=root, format="predictions")


def save_labels(predictor: Predictor, source: Path, fmt: str, out: Path, *, image_mode: str = "symlink",
                overwrite: bool = False, task: str | None = None, inputs: Sequence[Path] = (),
                model_version: str = "detft", ls_root: Path | str | None = None,
                ls_url: str | None = None) -> SavedLabels:
    """Pre-labels for ``source`` in format ``fmt`` in folder ``out`` (the images linked or copied beside them).
    ``out`` stays out of the source and of ``inputs`` (the model's run); ``model_version`` names the model to the
    annotation tool where it has a place for it (Label Studio's predictions); ``ls_root`` / ``ls_url`` say where a
    Label Studio server finds the images (:mod:`detft.formats.labelstudio_serving`)."""
    if fmt not in WRITERS:
        raise DetftError(f"--save-labels {fmt}: writable formats are {', '.join(sorted(WRITERS))}")
    out = Path(out)
    serving = serving_for(fmt, out, ls_root, ls_url)
    root, files = source_images(Path(source))
    check_output(out, [Path(source), *inputs], "--save-labels OUT")
    check_replaceable(out, overwrite)
    report = Report()
    dataset = predictions_dataset(predictor, root, files, report, outlines=fmt not in BOXES_ONLY)
    if fmt in NO_SCORES:
        report.note(f"{fmt} labels hold no scores: the detections' confidences are not written "
                    "(coco, cvat, labelme, via, labelstudio and kitti keep them)")
    if fmt in BOXES_ONLY and predictor.masks:
        report.note(f"{fmt} holds boxes only: the model's masks are written as their boxes (coco, yolo, cvat, "
                    "labelme, via and labelstudio keep them)")
    with atomic_directory(out, overwrite=overwrite) as tmp:
        files = write_dataset(fmt, dataset, tmp, report, image_mode, task, model_version=model_version,
                              serving=serving)
        report.write(tmp / REPORT_NAME)
    return SavedLabels(dataset, report, out, [out / f.relative_to(tmp) for f in files])


def count_by_class(dataset: Dataset) -> dict[str, int]:
    """Annotations per class name, every class listed (a class the model never found: 0)."""
    found = Counter(a.category_id for im in dataset.images for a in im.annotations)
    return {c.name: found[c.id] for c in dataset.sorted_categories()}
