"""A user's own reader: ``--from my_adapter.py`` (a file defining ``read(root)``), or a format a package adds by
installing an entry point in the ``detft.formats`` group (``name = "package.module:read"``).

``read(root)`` returns a :class:`~detft.annotations.dataset.Dataset`, or an iterable of plain records, one per image::

    {"image": "photos/a.jpg",            # a path (relative to root or absolute), or a file name found under root
     "split": "train",                   # optional
     "objects": [{"class": "crack", "box": [x1, y1, x2, y2]},              # pixel corners
                 {"class": "dent", "polygon": [x1, y1, x2, y2, x3, y3]}]}   # or a polygon (its box derived)

Records are made into a Dataset here, with the images found by the image index and sized by their headers, so
an adapter holds only what is particular to its data; its objects then go through the same checks, report and
writers as every format. Running an adapter runs its code: only files the user names or installs.

However the adapter's code ends, detft says so and names it: an exception, ``sys.exit()`` and a record of the wrong
shape (named by its index and field) are errors, Ctrl-C an interrupt (exit 130); records whose images are all
missing, or no records at all, are errors too, never an empty dataset written with exit 0. Records are counted as
they come, a line every few seconds in a log, so an adapter that stalls is seen to."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..annotations.dataset import Annotation, Dataset, ImageRecord, SourceRef
from ..annotations.geometry import polygons_bbox
from ..annotations.images import probe
from ..annotations.report import Report
from ..errors import DataLossError, DetftError, FormatError
from ..util.progress import Count, counting
from .base import CategoryIndex, finite
from .pairing import ImageIndex

GROUP = "detft.formats"


def installed() -> dict[str, Any]:
    """The formats installed packages add (entry points of :data:`GROUP`), by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@contextmanager
def _users_code(name: str, doing: str, count: Count | None = None) -> Iterator[None]:
    """Run an adapter's code so that however it ends, detft says so, naming the adapter (and with ``count``, the
    records it had given): an exception is a DetftError, and so is ``sys.exit()``, which would otherwise end detft
    with the adapter's exit code, often 0, with nothing written and nothing said. Ctrl-C stays an interrupt (exit
    130, as for every command), worded: made a DetftError, it would be caught by code that tries one reader after
    another, and the command would go on."""
    try:
        yield
    except BaseException as e:  # noqa: BLE001  the user's code: named with the adapter, however it ended
        doing += f" after {count.n} record(s)" if count is not None else ""
        if isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt(f"adapter {name} stopped {doing}") from None
        if isinstance(e, SystemExit):
            raise DetftError(f"adapter {name} called sys.exit({e.code!r}) {doing}: an adapter returns its records "
                             "or raises an error, and exiting would end detft with nothing said") from None
        raise DetftError(f"adapter {name} failed {doing}: {e.__class__.__name__}: {e}") from None


def adapter(fmt: str) -> Callable[..., Any] | None:
    """The ``read`` of ``fmt`` when it is a Python file or an installed format; None otherwise."""
    if fmt.endswith(".py"):
        path = Path(fmt)
        if not path.is_file():
            raise DetftError(f"--from {fmt}: no such adapter file")
        spec = importlib.util.spec_from_file_location(f"detft_adapter_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        with _users_code(fmt, "to load"):
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        if not callable(getattr(module, "read", None)):
            raise DetftError(f"--from {fmt}: an adapter defines read(root), returning a Dataset or image records")
        return module.read
    found = installed().get(fmt)
    if found is None:
        return None
    with _users_code(fmt, f"to load ({found.value})"):
        return found.load()


def read_with(read: Callable[..., Any], name: str, src: Path, report: Report) -> Dataset:
    """Run an adapter's ``read`` on ``src`` and make a Dataset of what it returns, counting the records as they come
    (a line every few seconds in a log), so an adapter that stalls is seen to."""
    with counting(f"adapter {name}", "records") as count:
        with _users_code(name, f"on {src}", count):
            result = read(src)
        if isinstance(result, Dataset):
            dataset = result
        elif isinstance(result, (str, bytes, dict)) or not isinstance(result, Iterable):
            raise DetftError(f"adapter {name} returned {type(result).__name__}: a Dataset or an iterable of image "
                             "records")
        else:
            records = []
            with _users_code(name, f"on {src}", count):  # a generator runs here: its errors are the adapter's too
                for rec in result:
                    records.append(rec)
                    count.tick()
            dataset = _from_records(records, name, src, report)
    if not dataset.images:
        raise DetftError(f"adapter {name} gave no image records for {src}: nothing to read")
    return dataset


def _from_records(records: list[Any], name: str, src: Path, report: Report) -> Dataset:
    """The records as a Dataset. A record of the wrong shape is the adapter's bug, an error naming it; a record whose
    image is not found is a reported loss, and losing every image is an error (as for every reader: never an empty
    dataset written with exit 0)."""
    root = src if src.is_dir() else src.parent
    index: ImageIndex | None = None
    cats = CategoryIndex()
    images = []
    for i, rec in enumerate(records):
        where = f"{name} record {i}"
        objects = _checked(rec, name, i)
        report.holds(src, images=1, shapes=len(objects))  # what losing everything is judged against
        path = Path(rec["image"]) if Path(rec["image"]).is_absolute() else root / rec["image"]
        if not path.is_file():
            index = index or ImageIndex(root)
            path, _ = index.find(root / "_", str(rec["image"]), own_stem=False)
        if path is None:
            report.add("dropped", "missing_image", where, f"no image {rec['image']!r} under {root}", len(objects))
            continue
        info = probe(path)
        image = ImageRecord(path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name,
                            info.width, info.height, path=path, split=rec.get("split"), source=SourceRef(where),
                            origin=str(src))
        for j, obj in enumerate(objects):
            _object(obj, image, cats, f"{where} object {j}", report)
        images.append(image)
    if records and not images:
        raise DataLossError(f"adapter {name}: none of its {len(records)} record(s) names an image found under {root} "
                            f"(record 0: {records[0]['image']!r}); 'image' is a path relative to {root}, an absolute "
                            "path, or a file name found under it. Nothing was written.")
    return Dataset(images, cats.finish(images), root=root, format=name)


def _checked(rec: Any, name: str, i: int) -> list[Any]:
    """The objects of record ``i``, once the record has the documented shape; an error naming the field otherwise."""
    if not isinstance(rec, dict):
        raise FormatError(name, f"a record is a dict with 'image' (a path or file name), not {type(rec).__name__} "
                                f"{rec!r:.60}", obj=f"record {i}")
    if not isinstance(rec.get("image"), (str, Path)):
        raise FormatError(name, f"'image' is a path or file name, not {rec.get('image')!r:.60}", obj=f"record {i}")
    if not isinstance(rec.get("split"), (str, type(None))):
        raise FormatError(name, f"'split' is a split name (train, val, test...), not {rec['split']!r:.60}",
                          obj=f"record {i}")
    objects = [] if rec.get("objects") is None else rec["objects"]
    if not isinstance(objects, (list, tuple)):
        raise FormatError(name, f"'objects' is a list of objects, not {objects!r:.60}", obj=f"record {i}")
    return list(objects)


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
