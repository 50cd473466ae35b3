"""Losses per annotation file: the check that a read which kept nothing, or an annotation file that
contributed nothing although it holds shapes, is an error naming the file, the reason and the fix,
never an exit 0 that says "wrote ... dataset"."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .dataset import Dataset
from .errors import DataLossError
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
    for c in changes:
        lost[c.kind] += c.annotations_lost or (1 if c.action == "dropped" else 0)
    if not lost:
        return "no change was reported for it"
    kind, n = lost.most_common(1)[0]
    example = next(c for c in changes if c.kind == kind)
    hint = HINTS.get(kind)
    return (f"most were lost to {kind} (x{n}, e.g. {example.where}: {example.detail})"
            + (f"; {hint}" if hint else ""))


def _changes_of(file: str, report: Report) -> list[Change]:
    name = Path(file).name
    return [c for c in report.changes if c.where.startswith(file) or c.where.startswith(name)]


def refuse_total_loss(source: Path, dataset: Dataset, report: Report, kept: int | None = None) -> None:
    """Raise when the source held annotations and none were kept, or when an annotation file that lists
    several images kept none of its shapes. A per-image file (VOC, LabelMe, YOLO labels) losing its few
    objects is one image's partial loss and stays a report line; a collection file keeping nothing has one
    cause (images elsewhere, a class attribute missing) that a whole split silently lost."""
    held = report.shapes_held
    kept = dataset.num_annotations if kept is None else kept
    if held and kept == 0:
        raise DataLossError(f"{source}: the source holds {held} annotation(s) and none could be kept; "
                            f"{main_cause(report.changes)}. Nothing was written.\n{report.summary()}")
    by_file = _sum_by_origin(dataset)
    for file, h in report.held.items():
        if h.images > 1 and h.shapes and by_file[file] == 0:
            raise DataLossError(f"{file}: holds {h.shapes} annotation(s) on {h.images} images and none could be "
                                f"kept; {main_cause(_changes_of(file, report))}. Nothing was written.")


def sources_table(dataset: Dataset, report: Report, limit: int = 12) -> str:
    """Images and annotations read vs kept, per annotation file (the collection files first)."""
    by_file = _sum_by_origin(dataset)
    images = Counter(im.origin for im in dataset.images if im.origin)
    rows = sorted(report.held.items(), key=lambda kv: (-kv[1].images, kv[0]))
    lines = [f"  {'source':<48} {'images read/kept':>17} {'annotations read/kept':>22}"]
    for file, h in rows[:limit]:
        shown = file.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # a name that is not UTF-8
        name = shown if len(shown) <= 48 else "..." + shown[-45:]
        lines.append(f"  {name:<48} {f'{h.images}/{images[file]}':>17} {f'{h.shapes}/{by_file[file]}':>22}")
    if len(rows) > limit:
        rest = rows[limit:]
        lines.append(f"  {f'... {len(rest)} more file(s)':<48} "
                     f"{f'{sum(h.images for _, h in rest)}/{sum(images[f] for f, _ in rest)}':>17} "
                     f"{f'{sum(h.shapes for _, h in rest)}/{sum(by_file[f] for f, _ in rest)}':>22}")
    return "\n".join(lines)
