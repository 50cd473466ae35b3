"""Class remapping (``--map`` on convert and merge): rename a class, join several into one, drop some.

``--map car=vehicle,truck=vehicle,drop=bicycle`` renames ``car`` and ``truck`` to ``vehicle`` (one class) and
drops every ``bicycle`` annotation (each reported as lost, like any other dropped annotation). A name the data
does not have is an error: a typo in a map would otherwise change nothing, silently."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..annotations.dataset import Category, Dataset, name_key
from ..annotations.report import Report
from ..errors import DetftError

DROP = "drop"


@dataclass(frozen=True)
class ClassMap:
    renames: dict[str, str] = field(default_factory=dict)
    drops: frozenset[str] = frozenset()


def _name(part: str) -> str:
    """A class name as written in ``--map``: stripped, unless quoted ('square ' keeps its space)."""
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "'\"":
        return part[1:-1]
    return part


def parse_map(text: str) -> ClassMap:
    renames: dict[str, str] = {}
    drops: set[str] = set()
    for item in (p.strip() for p in text.split(",")):
        old, eq, new = (_name(part) for part in item.partition("="))
        if not eq or not old or not new:
            raise DetftError(f"--map {text!r}: {item!r} is not old=new or drop=name")
        if old == DROP:
            drops.add(new)
            continue
        if old in renames and renames[old] != new:
            raise DetftError(f"--map {text!r}: {old!r} is mapped to both {renames[old]!r} and {new!r}")
        renames[old] = new
    both = sorted(drops & set(renames))
    if both:
        raise DetftError(f"--map {text!r}: {', '.join(both)} both renamed and dropped")
    return ClassMap(renames, frozenset(drops))


def _resolve(cmap: ClassMap, names: set[str]) -> ClassMap:
    """Each name of the map as the data spells it: the exact name, else the one name equal to it after Unicode
    normalisation and stripping (a map typed on another keyboard, or without a stray trailing space)."""
    def exact(name: str) -> str:
        if name in names:
            return name
        near = [n for n in names if name_key(n) == name_key(name)]
        return near[0] if len(near) == 1 else name

    return ClassMap({exact(k): v for k, v in cmap.renames.items()}, frozenset(exact(d) for d in cmap.drops))


def apply_map(dataset: Dataset, cmap: ClassMap, report: Report) -> Dataset:
    """``dataset`` with ``cmap`` applied: each class keeps the id of the first class that takes its name."""
    names = {c.id: c.name for c in dataset.categories}
    cmap = _resolve(cmap, set(names.values()))
    unknown = sorted((set(cmap.renames) | cmap.drops) - set(names.values()))
    if unknown:
        raise DetftError(f"--map: no class named {', '.join(map(repr, unknown))} in {dataset.root or 'the data'}; "
                         f"its classes are {', '.join(sorted(names.values()))}")
    target: dict[str, int] = {}
    categories = []
    for c in dataset.sorted_categories():
        if c.name in cmap.drops:
            continue
        new = cmap.renames.get(c.name, c.name)
        if new not in target:
            target[new] = c.id
            categories.append(Category(c.id, new, c.supercategory))
    renamed: Counter[tuple[str, str]] = Counter()
    for im in dataset.images:
        kept = []
        for a in im.annotations:
            name = names[a.category_id]
            if name in cmap.drops:
                report.add("dropped", "class_dropped", a.where(), f"class {name!r} dropped by --map", 1)
                continue
            new = cmap.renames.get(name, name)
            if new != name:
                renamed[(name, new)] += 1
            a.category_id = target[new]
            kept.append(a)
        im.annotations = kept
    for (old, new), n in sorted(renamed.items()):
        report.note(f"--map: {old} -> {new} ({n} annotation(s))")
    return Dataset(dataset.images, categories, root=dataset.root, format=dataset.format)
