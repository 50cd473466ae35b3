"""A record of every annotation or image that a reader, the checker or a writer dropped or changed.

Nothing is lost silently: any code path that alters data appends a :class:`Change` here, naming
the file and line/object, and ``convert --strict`` fails when the report is not empty.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Action = Literal["dropped", "clipped", "fixed", "renamed", "converted", "warning"]


def printable(text: str) -> str:
    """``text`` with the bytes of a file name that were not UTF-8 (os.fsdecode's surrogate escapes) shown as
    ``\\xe9``: a report line names such files, and printing a surrogate to a UTF-8 terminal raises."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Change:
    action: Action
    kind: str  # short machine-readable reason, e.g. "degenerate_box", "unknown_class"
    where: str  # file:line or "file object N"
    detail: str = ""
    annotations_lost: int = 0  # how many annotations this change removed (an image drop loses all its boxes)


@dataclass
class Held:
    """What one annotation file holds as written, before anything is dropped: the denominator of every loss."""

    images: int = 0
    shapes: int = 0


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)
    held: dict[str, Held] = field(default_factory=dict)  # annotation file -> what it holds
    notes: list[str] = field(default_factory=list)  # what a reader decided for the user (a class name, a skipped file)

    def holds(self, file: str | Path, images: int = 1, shapes: int = 0) -> None:
        """Count what ``file`` holds (readers call this once per image record, before dropping anything)."""
        h = self.held.setdefault(str(file), Held())
        h.images += images
        h.shapes += shapes

    def note(self, text: str) -> None:
        text = printable(text)
        if text not in self.notes:
            self.notes.append(text)

    @property
    def shapes_held(self) -> int:
        return sum(h.shapes for h in self.held.values())

    def add(
        self, action: Action, kind: str, where: str, detail: str = "", annotations_lost: int = 0
    ) -> None:
        self.changes.append(Change(action, kind, printable(where), printable(detail), annotations_lost))

    def extend(self, other: Report) -> None:
        self.changes.extend(other.changes)
        for f, h in other.held.items():
            self.holds(f, h.images, h.shapes)
        for n in other.notes:
            self.note(n)

    def __len__(self) -> int:
        return len(self.changes)

    @property
    def annotations_lost(self) -> int:
        return sum(c.annotations_lost for c in self.changes)

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((c.action, c.kind) for c in self.changes)

    def lost_line(self) -> str:
        """``N of M annotation(s) lost (x%)``: the fraction, so a partial loss is never read as a detail."""
        held, lost = self.shapes_held, self.annotations_lost
        if not held:
            return f"{lost} annotation(s) lost"
        pct = 100 * lost / held
        return f"{lost} of {held} annotation(s) lost ({pct:.1f}%)" if pct >= 0.1 or not lost else \
            f"{lost} of {held} annotation(s) lost ({pct:.2f}%)"

    def summary(self) -> str:
        notes = [f"note: {n}" for n in self.notes]
        if not self.changes:
            return "\n".join(notes + ["report: no annotation or image was dropped or changed"])
        lines = notes + [f"report: {len(self.changes)} change(s), {self.lost_line()}"]
        for (action, kind), n in sorted(self.counts().items()):
            example = next(c for c in self.changes if (c.action, c.kind) == (action, kind))
            lines.append(f"  {action:<9} {kind:<24} x{n:<6} e.g. {example.where}: {example.detail}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "summary": {f"{a}/{k}": n for (a, k), n in sorted(self.counts().items())},
            "annotations_held": self.shapes_held,
            "annotations_lost": self.annotations_lost,
            "notes": self.notes,
            "sources": {f: {"images_held": h.images, "annotations_held": h.shapes} for f, h in self.held.items()},
            "changes": [asdict(c) for c in self.changes],
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
