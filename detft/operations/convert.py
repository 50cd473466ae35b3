"""read -> check -> split -> write, all or nothing, with the report saved beside the data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..annotations.accounting import refuse_empty, refuse_total_loss
from ..annotations.check import check
from ..annotations.dataset import Dataset
from ..annotations.report import Report
from ..errors import DetftError, StrictError
from ..formats import WRITERS, read_dataset, write_dataset
from ..formats.labelstudio_serving import serving_for
from ..util.output import atomic_directory, check_output, input_folders
from .classmap import ClassMap, apply_map
from .merging import merge
from .split import Splitting, split_dataset
from .tiling import Tiling, tile_dataset

REPORT_NAME = "convert_report.json"


@dataclass
class ConvertResult:
    dataset: Dataset
    report: Report
    out: Path
    files: list[Path]
    written: int  # annotations in the written files (the writer may drop some: crowd regions in YOLO)


def load(src: Path, fmt: str | None, report: Report, *, min_size: float = 2.0,
         verify_images: bool = True, **reader_options: Any) -> Dataset:
    """Read any supported format and check it: the Dataset every detft command starts from."""
    this_read = Report()  # the caller's report may hold earlier reads: losses are judged on this one alone
    dataset = read_dataset(Path(src), fmt, this_read, **reader_options)
    dataset = check(dataset, this_read, min_size=min_size, verify_images=verify_images)
    report.extend(this_read)
    refuse_total_loss(Path(src), dataset, this_read)
    return dataset


def convert(src: Path | Sequence[Path], out: Path, *, to: str = "coco", fmt: str | None = None,
            split: tuple[float, ...] | None = None, seed: int = 0, strict: bool = False,
            overwrite: bool = False, image_mode: str = "symlink", task: str | None = None,
            min_size: float = 2.0, tiling: Tiling | None = None, class_map: ClassMap | None = None,
            stratify: bool = False, group: bool = False, ls_root: Path | str | None = None, ls_url: str | None = None,
            **reader_options: Any) -> ConvertResult:
    """Convert ``src`` to ``to`` in folder ``out``; several sources are merged (``detft merge``: classes joined by
    name, an image found twice kept once); ``class_map`` renames, joins and drops classes (``--map``); ``split``
    re-splits (``stratify`` by class, ``group`` near-identical images into one split); with ``tiling``, as tiles
    (after the split, so one image's tiles share its split). With ``strict`` any reported change is an error and
    nothing is written. ``ls_root`` / ``ls_url`` (Label Studio tasks): the server's document root the output lies
    under, or the address its images are served at (:mod:`detft.formats.labelstudio_serving`)."""
    if to not in WRITERS:
        raise DetftError(f"cannot write {to!r}; writable formats: {', '.join(WRITERS)}")
    sources = [Path(src)] if isinstance(src, (str, Path)) else [Path(s) for s in src]
    out = Path(out)
    serving = serving_for(to, out, ls_root, ls_url)
    annotation_files = [s for s in sources if s.is_file()]
    check_output(out, [s for s in sources if s not in annotation_files],
                 held=[*annotation_files, *input_folders(annotation_files)])  # before reading
    report = Report()
    datasets = [load(s, fmt, report, min_size=min_size, **reader_options) for s in sources]
    dataset = datasets[0] if len(datasets) == 1 else merge(datasets, report, [str(s) for s in sources])
    if class_map is not None:
        dataset = apply_map(dataset, class_map, report)
    if split is not None:
        split_dataset(dataset, Splitting(split, seed, stratify, group), report)
    if tiling is not None:
        dataset = tile_dataset(dataset, tiling, report)
    check_output(out, [reader_options.get("images_dir")],
                 held=input_folders({*(im.path for im in dataset.images), *(im.origin for im in dataset.images)}))
    with atomic_directory(out, overwrite=overwrite) as tmp:
        lost_before = report.annotations_lost
        files = write_dataset(to, dataset, tmp, report, image_mode, task, serving=serving)
        written = dataset.num_annotations - (report.annotations_lost - lost_before)
        refuse_empty(sources[0], report, written)
        if strict and len(report):
            raise StrictError(f"--strict: {len(report)} change(s) would be made, nothing written\n{report.summary()}")
        report.write(tmp / REPORT_NAME)
    return ConvertResult(dataset, report, out, [out / f.relative_to(tmp) for f in files], written)
