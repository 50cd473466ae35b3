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


@dataclass(frozen=True)
class Change:
    action: Action
    kind: str  # short machine-readable reason, e.g. "degenerate_box", "unknown_class"
    where: str  # file:line or "file object N"
    detail: str = ""
    annotations_lost: int = 0  # how many annotations this change removed (an image drop loses all its boxes)


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)

    def add(
        self, action: Action, kind: str, where: str, detail: str = "", annotations_lost: int = 0
    ) -> None:
        self.changes.append(Change(action, kind, where, detail, annotations_lost))

    def extend(self, other: Report) -> None:
        self.changes.extend(other.changes)

    def __len__(self) -> int:
        return len(self.changes)

    @property
    def annotations_lost(self) -> int:
        return sum(c.annotations_lost for c in self.changes)

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((c.action, c.kind) for c in self.changes)

    def summary(self) -> str:
        if not self.changes:
            return "report: no annotation or image was dropped or changed"
        lines = [f"report: {len(self.changes)} change(s), {self.annotations_lost} annotation(s) lost"]
        for (action, kind), n in sorted(self.counts().items()):
            example = next(c for c in self.changes if (c.action, c.kind) == (action, kind))
            lines.append(f"  {action:<9} {kind:<24} x{n:<6} e.g. {example.where}: {example.detail}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "summary": {f"{a}/{k}": n for (a, k), n in sorted(self.counts().items())},
            "annotations_lost": self.annotations_lost,
            "changes": [asdict(c) for c in self.changes],
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
