"""KITTI object labels (the 2D/3D object benchmark's devkit format, read by datumaro and torchvision's ``Kitti``):
``label_2/<id>.txt`` beside ``image_2/<id>.png`` (under ``training/``, or ``<split>/``, or ``label_2/<split>/``),
one object per line::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]

with the box in 0-based pixels. ``DontCare`` regions are areas nobody labelled: kept as crowd (ignore) regions of a
class of that name, reported. Truncation and occlusion are kept as attributes, and the 3D fields too where they
are known (not KITTI's -1/-1000/-10 placeholders), so a KITTI -> KITTI conversion keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    """``.../image_2/<same path>`` of a label file, whatever the image's suffix and its case (``x.JPG``, as cameras
    name files); a stem with dots of its own (``frame.0001.txt``) is kept whole."""
    parts = list(label.parts)
    i = len(parts) - 1 - parts[::-1].index(LABELS)
    parts[i] = IMAGES
    folder, stem = Path(*parts[:-1]), label.name[: -len(label.suffix)]
    tries = (folder / f"{stem}{s}" for suffix in sorted(IMAGE_SUFFIXES) for s in (suffix, suffix.upper()))
    return next((p for p in tries if p.is_file()), None)


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


OCCLUSION = (0, 3)  # the devkit's occlusion states: 0 fully visible, 1 partly, 2 largely occluded, 3 unknown
NOT_GIVEN = -1  # truncated and occluded of a DontCare line, and of files that do not know them


def _number(v: float) -> str:
    """A field as the devkit writes it, two decimals, where that is the value (to float noise: 0.30000000000000004 is
    0.30); else up to six (0.125 stays 0.125, not 0.12); past 1e9 in exponent form (1e+300, not 301 digits)."""
    if not abs(v) < 1e9:
        return repr(v)
    text = f"{v:.2f}"
    return text if abs(float(text) - v) < 1e-9 else f"{v:.6f}".rstrip("0").rstrip(".")


def _field(value: Any, key: str, unknown: float, report: Report, where: str) -> float:
    """A float attribute as written, or the devkit's unknown value (reported) where it is not a finite number."""
    number = finite([value])
    if number is None:
        report.add("fixed", f"kitti_{key}", where, f"{key} {value!r:.40} is not a number: written as {unknown} (unknown)")
        return unknown
    return number[0]


def _truncated(value: Any, report: Report, where: str) -> float:
    """The devkit's truncation, a fraction 0..1 (or -1, not given); outside that range it is clamped, reported."""
    t = _field(value, "truncated", float(NOT_GIVEN), report, where)
    if t != NOT_GIVEN and not 0 <= t <= 1:
        report.add("fixed", "kitti_truncated", where, f"truncated {t!r} is not a fraction 0..1: written as "
                   f"{min(max(t, 0.0), 1.0)}")
        return min(max(t, 0.0), 1.0)
    return t


def _occluded(value: Any, report: Report, where: str) -> int:
    """The devkit's occlusion state, an integer 0..3 (or -1, not given): a fraction is rounded, a value outside the
    states clamped, anything not a number written as 3 (unknown), each reported."""
    number = _field(value, "occluded", OCCLUSION[1], report, where)
    if number == NOT_GIVEN:
        return NOT_GIVEN
    state = min(max(round(number), OCCLUSION[0]), OCCLUSION[1])
    if state != number:
        action = "converted" if OCCLUSION[0] <= number <= OCCLUSION[1] else "fixed"
        report.add(action, "kitti_occluded", where, f"occluded {number!r} is not one of KITTI's states 0, 1, 2, 3: "
                   f"written as {state}")
    return state


def _line(ann: Annotation, name: str, report: Report) -> str:
    """One object's line; attributes from other formats (VOC's 0/1 flags, a tool's text) are written where they are
    KITTI values and reported where they had to change."""
    a, where = ann.attributes, ann.where()
    kind = DONT_CARE if ann.iscrowd else name
    if ann.iscrowd:
        head = [-1.0, NOT_GIVEN, UNKNOWN["alpha"]]
        three_d = [UNKNOWN[k] for k in THREE_D]
    else:
        head = [_truncated(a.get("truncated", 0.0), report, where), _occluded(a.get("occluded", 0), report, where),
                _field(a.get("alpha", UNKNOWN["alpha"]), "alpha", UNKNOWN["alpha"], report, where)]
        three_d = [_field(a.get(k, UNKNOWN[k]), k, UNKNOWN[k], report, where) for k in THREE_D]
    text = " ".join(f"{v:d}" if isinstance(v, int) else _number(v) for v in [*head, *ann.bbox, *three_d])
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
    placer = ImagePlacer(out, image_mode, report, per_image_files=True)
    written = []
    for split, sub in folder_per_split(dataset).items():
        base = f"{sub}/" if sub else ""
        for im in progress(dataset.images_in(split), f"writing KITTI {split}", unit="img"):
            rel = placer.place(im, f"{base}{IMAGES}")
            lines = []
            for ann in im.annotations:
                if ann.has_mask and not ann.iscrowd:
                    report.add("converted", "mask_to_box", ann.where(), "KITTI holds boxes: the mask is written as its box")
                lines.append(_line(ann, kitti_names[ann.category_id], report) + "\n")
            label = out / base / LABELS / Path(rel).with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(label, "".join(lines))
            written.append(label)
    return written
