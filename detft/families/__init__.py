"""The family registry: ``--arch`` and a run's ``run.yaml`` resolve here. A new family is one module
beside these, added to ``FAMILIES`` (or registered at run time with :func:`register`)."""

from __future__ import annotations

from ..errors import DetftError
from ..runs import Run
from . import rcnn, yolo
from .base import Family

FAMILIES: dict[str, Family] = {f.name: f for f in (yolo.FAMILY, rcnn.FAMILY)}  # asked in this order

__all__ = ["FAMILIES", "Family", "for_arch", "for_run", "register"]


def register(family: Family) -> None:
    FAMILIES[family.name] = family


def for_arch(arch: str) -> Family:
    for family in FAMILIES.values():
        if family.handles(arch):
            return family
    raise DetftError(f"unknown --arch {arch!r}: " + "; ".join(f"{f.name}: {f.summary}" for f in FAMILIES.values()))


def for_run(run: Run) -> Family:
    name = run.info.family
    if name not in FAMILIES:
        raise DetftError(f"{run.folder} was trained by the model family {name!r}, which this detft does not have "
                         f"(families: {', '.join(FAMILIES)})")
    return FAMILIES[name]
