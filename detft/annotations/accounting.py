"""Losses per annotation file: the check that a read which kept nothing, or an annotation file that
contributed nothing although it holds shapes, is an error naming the file, the reason and the fix,
never an exit 0 that says "wrote ... dataset"."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import DataLossError
from .dataset import Dataset
from .report import Change, Report

# the option that fixes the usual cause of each kind of loss
HINTS = {
    "missing_image": "name the image folder with --images-dir",
    "unknown_class": "give the class list with --classes, or check the class names",
    "unlabelled_region": "name the class with --via-default-class NAME (or --via-class-attr ATTR)",
    "unsupported_shape": "these shapes are not object outlines (points, lines, skeletons): nothing to train on",
    "bad_line": "if this is not a YOLO label file, name the format with --from",
    "bad_bbox": "if the file is another format, name it with --from",
    "degenerate_box": "lower --min-size if these tiny boxes are real",
    "orphan_label": "label files need an image of the same name under images/",
    "orphan_mask": "mask files need an image of the same name under images/",
    "color_mask": "save instance masks as single-channel or palette PNGs (one value per instance)",
    "unreadable_image": "the images cannot be decoded: check the files",
    "no_image_path": "the LabelMe files lack 'imagePath'; re-save them from labelme",
}


def _sum_by_origin(dataset: Dataset) -> Counter[str]:
    out: Counter[str] = Counter()
    for im in dataset.images:
        if im.origin:
            out[im.origin] += len(im.annotations)
    return out


def main_cause(changes: list[Change]) -> str:
    """The reason that lost the most annotations, with an example and the option that would fix it."""
    lost: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for c in changes:
        lost[c.kind] += c.annotations_lost
        dropped[c.kind] += c.action == "dropped"
    if not +lost and not +dropped:
        return "no change was reported for it"
    kind = max(lost.keys() | dropped.keys(), key=lambda k: (lost[k], dropped[k]))
    example = next(c for c in changes if c.kind == kind)
    hint = HINTS.get(kind)
    n = sum(c.kind == kind for c in changes)  # the count the report's table gives, with the objects beside it
    return (f"most were lost to {kind} ({lost[kind]} annotation(s) in {n} change(s), e.g. {example.where}: "
            f"{example.detail})" + (f"; {hint}" if hint else ""))


def refuse_empty(source: Path, report: Report, kept: int) -> None:
    """Raise when the source held annotations and ``kept`` (after reading, or after writing) is none."""
    held = report.shapes_held
    if held and kept == 0:
        raise DataLossError(f"{source}: the source holds {held} annotation(s) and none could be kept; "
                            f"{main_cause(report.changes)}. Nothing was written.\n{report.summary()}")


def refuse_total_loss(source: Path, dataset: Dataset, report: Report) -> None:
    """Raise when the source held annotations, or images, and none were kept, or when an annotation file that lists
    several images kept none of its shapes. A per-image file (VOC, LabelMe, YOLO labels) losing its few
    objects is one image's partial loss and stays a report line; a collection file keeping nothing has one
    cause (images elsewhere, a class attribute missing) that a whole split silently lost."""
    refuse_empty(source, report, dataset.num_annotations)
    held_images = sum(h.images for h in report.held.values())
    if held_images and not dataset.images:  # a set of negatives, every image of it missing: nothing left either
        raise DataLossError(f"{source}: the source lists {held_images} image(s) and none could be kept; "
                            f"{main_cause(report.changes)}. Nothing was written.\n{report.summary()}")
    by_file = _sum_by_origin(dataset)
    for file, h in report.held.items():
        if h.images > 1 and h.shapes and by_file[file] == 0:
            raise DataLossError(f"{file}: holds {h.shapes} annotation(s) on {h.images} images and none could be "
                                f"kept; {main_cause([c for c in report.changes if c.where.startswith(file)])}. "
                                "Nothing was written.")


def sources_table(dataset: Dataset, report: Report, limit: int = 12) -> str:
    """Images and annotations read vs kept per annotation file; files holding one image each (VOC XMLs,
    YOLO labels, LabelMe JSONs) are summed per folder, so the table stays a few lines."""
    kept_by_file = _sum_by_origin(dataset)
    kept_images = Counter(im.origin for im in dataset.images if im.origin)
    rows: dict[str, list[int]] = {}  # source -> [images read, images kept, annotations read, annotations kept]

    def group(file: str) -> str:
        return str(Path(file).parent / f"*{Path(file).suffix}")

    per_image = Counter(group(f) for f, h in report.held.items() if h.images <= 1)
    for file, h in report.held.items():
        key = group(file) if h.images <= 1 and per_image[group(file)] > 1 else file
        row = rows.setdefault(key, [0, 0, 0, 0])
        for k, v in enumerate((h.images, kept_images[file], h.shapes, kept_by_file[file])):
            row[k] += v
    lines = [f"  {'source':<48} {'images read/kept':>17} {'annotations read/kept':>22}"]
    ordered = sorted(rows.items(), key=lambda kv: (-kv[1][0], kv[0]))
    for key, (ir, ik, ar, ak) in ordered[:limit]:
        shown = key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # a name that is not UTF-8
        name = shown if len(shown) <= 48 else "..." + shown[-45:]
        lines.append(f"  {name:<48} {f'{ir}/{ik}':>17} {f'{ar}/{ak}':>22}")
    if len(ordered) > limit:
        rest = [r for _, r in ordered[limit:]]
        totals = [sum(r[k] for r in rest) for k in range(4)]
        lines.append(f"  {f'... {len(rest)} more source(s)':<48} {f'{totals[0]}/{totals[1]}':>17} "
                     f"{f'{totals[2]}/{totals[3]}':>22}")
    return "\n".join(lines)
