"""A user's own reader: ``--from my_adapter.py`` (a file defining ``read(root)``), or a format a package adds by
installing an entry point in the ``detft.formats`` group (``name = "package.module:read"``).

``read(root)`` returns a :class:`~detft.annotations.dataset.Dataset`, or an iterable of plain records, one per image::

    {"image": "photos/a.jpg",            # a path (relative to root or absolute), or a file name found under root
     "split": "train",                   # optional
     "objects": [{"class": "crack", "box": [x1, y1, x2, y2]},              # pixel corners
                 {"class": "dent", "polygon": [x1, y1, x2, y2, x3, y3]}]}   # or a polygon (its box derived)

Records are made into a Dataset here, with the images found by the image index and sized by their headers, so
an adapter holds only what is particular to its data; its objects then go through the same checks, report and
writers as every format. Running an adapter runs its code: only files the user names or installs."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..annotations.geometry import polygons_bbox
from ..annotations.images import probe
from ..annotations.report import Report
from ..errors import DetftError
from .base import CategoryIndex, finite
from .pairing import ImageIndex

GROUP = "detft.formats"


def installed() -> dict[str, Any]:
    """The formats installed packages add (entry points of :data:`GROUP`), by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def adapter(fmt: str) -> Callable[..., Any] | None:
    """The ``read`` of ``fmt`` when it is a Python file or an installed format; None otherwise."""
    if fmt.endswith(".py"):
        path = Path(fmt)
        if not path.is_file():
            raise DetftError(f"--from {fmt}: no such adapter file")
        spec = importlib.util.spec_from_file_location(f"detft_adapter_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as e:  # noqa: BLE001  the user's code: its failure named, with the file
            raise DetftError(f"--from {fmt}: the adapter failed to load ({e.__class__.__name__}: {e})") from None
        if not callable(getattr(module, "read", None)):
            raise DetftError(f"--from {fmt}: an adapter defines read(root), returning a Dataset or image records")
        return module.read
    found = installed().get(fmt)
    return found.load() if found is not None else None


def read_with(read: Callable[..., Any], name: str, src: Path, report: Report) -> Dataset:
    """Run an adapter's ``read`` on ``src`` and make a Dataset of what it returns."""
    try:
        result = read(src)
        if isinstance(result, Dataset):
            return result
        if isinstance(result, (str, bytes, dict)) or not isinstance(result, Iterable):
            raise DetftError(f"adapter {name} returned {type(result).__name__}: a Dataset or an iterable of image "
                             "records")
        records = list(result)  # a generator runs here: its errors are the adapter's too
    except DetftError:
        raise
    except Exception as e:  # noqa: BLE001  the user's code: named with the adapter, whatever it raised
        raise DetftError(f"adapter {name} failed on {src}: {e.__class__.__name__}: {e}") from None
    return _from_records(records, name, src, report)


def _from_records(records: list[Any], name: str, src: Path, report: Report) -> Dataset:
    root = src if src.is_dir() else src.parent
    index: ImageIndex | None = None
    cats = CategoryIndex()
    images = []
    for i, rec in enumerate(records):
        where = f"{name} record {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), (str, Path)):
            raise DetftError(f"{where}: a record is a dict with 'image' (a path or file name), not {rec!r:.60}")
        path = Path(rec["image"]) if Path(rec["image"]).is_absolute() else root / rec["image"]
        if not path.is_file():
            index = index or ImageIndex(root)
            path, _ = index.find(root / "_", str(rec["image"]), own_stem=False)
        if path is None:
            report.add("dropped", "missing_image", where, f"no image {rec['image']!r} under {root}",
                       len(rec.get("objects") or []))
            continue
        info = probe(path)
        image = ImageRecord(path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name,
                            info.width, info.height, path=path, split=rec.get("split"), source=SourceRef(where))
        for j, obj in enumerate(rec.get("objects") or []):
            _object(obj, image, cats, f"{where} object {j}", report)
        images.append(image)
    return Dataset(images, cats.finish(images), root=root, format=name)


def _object(obj: Any, image: ImageRecord, cats: CategoryIndex, where: str, report: Report) -> None:
    if not isinstance(obj, dict) or "class" not in obj:
        report.add("dropped", "bad_object", where, "an object is a dict with 'class' and 'box' or 'polygon'", 1)
        return
    polygon = finite(list(obj["polygon"])) if isinstance(obj.get("polygon"), (list, tuple)) else None
    box = finite(list(obj["box"])) if isinstance(obj.get("box"), (list, tuple)) else None
    if polygon is not None and len(polygon) >= 6 and len(polygon) % 2 == 0:
        box = list(polygons_bbox([polygon]))
    elif box is None or len(box) != 4:
        report.add("dropped", "bad_object", where, "needs 'box' [x1, y1, x2, y2] or 'polygon' [x1, y1, ...] of finite "
                   "numbers", 1)
        return
    cat = cats.id_for(str(obj["class"]), report, where)
    if cat is not None:
        image.annotations.append(Annotation(cat, tuple(box), polygons=[polygon] if polygon else None,  # type: ignore[arg-type]
                                            source=SourceRef(where)))
