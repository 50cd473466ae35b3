"""KITTI object labels (the 2D/3D object benchmark's devkit format, read by datumaro and torchvision's ``Kitti``):
``label_2/<id>.txt`` beside ``image_2/<id>.png`` (under ``training/``, or ``<split>/``, or ``label_2/<split>/``),
one object per line::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]

with the box in 0-based pixels. ``DontCare`` regions are areas nobody labelled: kept as crowd (ignore) regions of a
class of that name, reported. Truncation and occlusion are kept as attributes, and the 3D fields too where they
are known (not KITTI's -1/-1000/-10 placeholders), so a KITTI -> KITTI conversion keeps them."""

from __future__ import annotations

from pathlib import Path

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..annotations.images import IMAGE_SUFFIXES, probe
from ..annotations.report import Report
from ..errors import FormatError
from ..util.output import atomic_write_text
from ..util.progress import progress
from .base import CategoryIndex, finite, read_text
from .layout import ImagePlacer
from .pairing import ImageIndex, complete, split_of_path
from .shapes import SCORE, folder_per_split, read_score, score_of

NAME = "kitti"
LABELS, IMAGES = "label_2", "image_2"
DONT_CARE = "DontCare"
THREE_D = ("height_3d", "width_3d", "length_3d", "x_3d", "y_3d", "z_3d", "rotation_y")
UNKNOWN = {"alpha": -10.0, "height_3d": -1.0, "width_3d": -1.0, "length_3d": -1.0, "x_3d": -1000.0, "y_3d": -1000.0,
           "z_3d": -1000.0, "rotation_y": -10.0}  # what the devkit writes where a value is not known


def label_files(src: Path) -> list[Path]:
    """Every ``.txt`` under a ``label_2`` folder of ``src`` (``label_2/``, ``training/label_2/``, ``label_2/val/``)."""
    return sorted(p for p in src.rglob("*.txt") if LABELS in p.relative_to(src).parts[:-1])


def is_kitti(src: Path) -> bool:
    return src.is_dir() and ((src / LABELS).is_dir() or any((d / LABELS).is_dir() for d in src.iterdir() if d.is_dir()))


def _image_beside(label: Path) -> Path | None:
    """``.../image_2/<same path>`` of a label file, whatever the image's suffix."""
    parts = list(label.parts)
    i = len(parts) - 1 - parts[::-1].index(LABELS)
    parts[i] = IMAGES
    stem = Path(*parts).with_suffix("")
    return next((p for s in sorted(IMAGE_SUFFIXES) if (p := stem.with_suffix(s)).is_file()), None)


def read(src: Path, report: Report, classes: list[str] | None = None) -> Dataset:
    if not src.is_dir():
        raise FormatError(src, "KITTI is a folder with label_2/ beside image_2/")
    files = label_files(src)
    if not files:
        raise FormatError(src, "no KITTI labels found (expected label_2/*.txt)")
    index = ImageIndex(src)
    cats = CategoryIndex(classes)
    images: list[ImageRecord] = []
    dont_care = 0
    for f in progress(files, "reading KITTI", unit="file"):
        path = _image_beside(f)
        if path is not None:
            index.claim(path)
        else:
            path, _ = index.find(f, None)
        info = probe(path) if path is not None else None
        image = ImageRecord(path.name if path is not None else f.with_suffix(".png").name,
                            info.width if info and info.ok else 0, info.height if info and info.ok else 0, path=path,
                            split=split_of_path(f, src), source=SourceRef(str(f)), origin=str(f))
        lines = read_text(f).splitlines()
        report.holds(f, shapes=sum(1 for ln in lines if ln.strip()))
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            ann = _object(line, SourceRef(str(f), line=lineno), cats, report)
            if ann is not None:
                dont_care += ann.iscrowd
                image.annotations.append(ann)
        images.append(image)
    if dont_care:
        report.add("converted", "dont_care_regions", str(src), f"{dont_care} {DONT_CARE} regions (areas nobody "
                   f"labelled) kept as crowd regions of class {DONT_CARE!r}: evaluation ignores detections there")
    images = complete(index, images, report)
    return Dataset(images, cats.finish(images), root=src, format=NAME)


def _object(line: str, where: SourceRef, cats: CategoryIndex, report: Report) -> Annotation | None:
    tok = line.split()
    vals = finite(tok[1:]) if len(tok) in (15, 16) else None
    if vals is None:
        report.add("dropped", "bad_line", str(where), "expected 'type truncated occluded alpha x1 y1 x2 y2 h w l x y z "
                   "rotation_y [score]' (15 or 16 fields)", 1)
        return None
    cat = cats.id_for(tok[0], report, str(where))
    if cat is None:
        return None
    truncated, occluded, alpha, x0, y0, x1, y1 = vals[:7]
    crowd = tok[0] == DONT_CARE
    attrs: dict = {} if crowd else {"truncated": truncated, "occluded": int(occluded)}
    if not crowd:
        attrs.update({k: v for k, v in zip(("alpha", *THREE_D), [alpha, *vals[7:14]]) if v != UNKNOWN[k]})
    if len(vals) == 15 and (score := read_score(vals[14])) is not None:
        attrs[SCORE] = score
    return Annotation(cat, (x0, y0, x1, y1), iscrowd=crowd, attributes=attrs, source=where)


def _line(ann: Annotation, name: str) -> str:
    a = ann.attributes
    kind = DONT_CARE if ann.iscrowd else name
    if ann.iscrowd:
        head = [-1.0, -1, -10.0]
    else:
        head = [float(a.get("truncated", 0.0)), int(a.get("occluded", 0)), float(a.get("alpha", UNKNOWN["alpha"]))]
    fields = [*head, *ann.bbox, *(float(a.get(k, UNKNOWN[k])) if not ann.iscrowd else UNKNOWN[k] for k in THREE_D)]
    text = " ".join(f"{v:d}" if isinstance(v, int) else f"{v:.2f}" for v in fields)
    score = score_of(ann)
    return f"{kind} {text}" + (f" {score:.4f}" if score is not None else "")


def write(dataset: Dataset, out: Path, report: Report, image_mode: str = "symlink") -> list[Path]:
    """``image_2/`` and ``label_2/`` (under a folder per split for several), one label file per image."""
    names = {c.id: c.name for c in dataset.categories}
    kitti_names = {}
    for cid, name in names.items():
        kitti_names[cid] = "_".join(name.split())  # the type is one word of the line
        if kitti_names[cid] != name:
            report.add("renamed", "class_name_with_spaces", name, f"KITTI's type is one word: written as "
                       f"{kitti_names[cid]!r}")
    placer = ImagePlacer(out, image_mode, report)
    written = []
    for split, sub in folder_per_split(dataset).items():
        base = f"{sub}/" if sub else ""
        for im in progress(dataset.images_in(split), f"writing KITTI {split}", unit="img"):
            rel = placer.place(im, f"{base}{IMAGES}")
            lines = []
            for ann in im.annotations:
                if ann.has_mask and not ann.iscrowd:
                    report.add("converted", "mask_to_box", ann.where(), "KITTI holds boxes: the mask is written as its box")
                lines.append(_line(ann, kitti_names[ann.category_id]) + "\n")
            label = out / base / LABELS / Path(rel).with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(label, "".join(lines))
            written.append(label)
    return written
