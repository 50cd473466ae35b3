"""Errors a user can act on. The CLI prints them as one line, with no traceback."""

from __future__ import annotations

from pathlib import Path


class DetftError(Exception):
    """Base class: anything raised as a DetftError is the user's input or environment, not a bug."""


class FormatError(DetftError):
    """An annotation file that cannot be parsed. Always names the file, and the line or object."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, obj: str | None = None):
        self.path = str(path)
        self.line = line
        self.obj = obj
        where = self.path
        if line is not None:
            where += f":{line}"
        if obj is not None:
            where += f" ({obj})"
        super().__init__(f"{where}: {message}")


class StrictError(DetftError):
    """Raised by --strict when the report says something was dropped or changed."""
