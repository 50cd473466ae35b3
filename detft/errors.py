"""Errors a user can act on. The CLI prints them as one line, with no traceback."""

from __future__ import annotations

import shlex
import sys
import traceback
from collections.abc import Callable
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


class DataLossError(DetftError):
    """Raised when a read kept none of the annotations its source holds: a loss is never a success."""


class OfflineStart(DetftError):
    """Pretrained weights that need a download this machine could not make. ``instead`` holds, for each offline
    start installed here, the options that select it (``{"model": "fasterrcnn_mobilenet_v2_fpn", "weights": None}``;
    None drops an option); the CLI turns them into the exact command to run, the Python API names the keywords."""

    def __init__(self, message: str, instead: list[dict[str, str | None]]) -> None:
        self.message, self.instead = message, instead
        keywords = [", ".join(f"{k}={v!r}" for k, v in change.items() if v is not None) for change in instead]
        super().__init__(message + "".join(f"\n  offline start installed here: {k}" for k in keywords))

    def with_commands(self, argv: list[str]) -> str:
        """The message with each offline start as the command line ``argv`` becomes when it is selected."""
        lines = [self.message]
        for change in self.instead:
            flags = {f"--{k.replace('_', '-')}" for k in change}
            kept, skip = [], False
            for arg in argv:
                if skip:
                    skip = False
                elif arg in flags:
                    skip = True  # the option's value follows
                elif arg.split("=", 1)[0] not in flags:
                    kept.append(arg)
            added = [x for k, v in change.items() if v is not None for x in (f"--{k.replace('_', '-')}", v)]
            lines.append(f"  offline start installed here: {shlex.join(['detft', *kept, *added])}")
        return "\n".join(lines)


def run_command(command: str, func: Callable[[], int], inputs: str, debug: bool = False) -> int:
    """Run one CLI command: a DetftError is one line and exit 1; an unexpected exception is one line
    naming the command, its input and the exception, exit 2 (the traceback only with ``debug``),
    so a user never has to read a traceback to learn which file was at fault."""
    try:
        return func()
    except DetftError as e:
        print(f"detft: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("detft: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  the guard's job: nothing escapes as a raw traceback
        if debug:
            traceback.print_exc()
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"detft {command}: unexpected {e.__class__.__name__} on {inputs}: {detail}"
              f"{'' if debug else ' (run again with --debug for the traceback)'}", file=sys.stderr)
        return 2
