"""Errors a user can act on. The CLI prints them as one line, with no traceback."""

from __future__ import annotations

import shlex
import sys
import traceback
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path

from .version import __version__


class ExitCode(IntEnum):
    """What every ``detft`` command exits with, so a script can tell a mistake in the command line (fix the
    command), in the data (fix the input) and in detft itself (report it) apart. :data:`EXIT_CODES` says what each
    means; ``detft --help`` prints it and docs/safety.md holds the same table (tests/test_exit_codes.py checks)."""

    OK = 0
    ERROR = 1
    USAGE = 2  # argparse's own code for a command line it refuses
    BUG = 70  # EX_SOFTWARE of sysexits.h: an internal software error
    INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "a named error: the input, the data or the environment is wrong (one line, detft: error: ...)",
    ExitCode.USAGE: "the command line does not parse: an unknown command or option, a missing argument, a value "
                    "its option refuses (not a number, out of range, not a choice)",
    ExitCode.BUG: "an unexpected error: a bug in detft (one line naming the command, its input and the exception, "
                  "and how to report it)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


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
    """Run one CLI command with the exit codes of :class:`ExitCode`: a DetftError is one line; an unexpected
    exception is one line naming the command, its input and the exception, and saying it is a bug and how to report
    it (the traceback only with ``debug``), so a user never has to read a traceback to learn which file was at
    fault, and a script never mistakes a bug for bad input or a bad command line."""
    try:
        return func()
    except DetftError as e:
        print(f"detft: error: {e}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt as e:  # worded when detft knows what was running (a user's adapter)
        print(f"detft: interrupted{f': {e}' if str(e) else ''}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as e:  # noqa: BLE001  the guard's job: nothing escapes as a raw traceback
        if debug:
            traceback.print_exc()
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        how = "the traceback above" if debug else f"the traceback that detft --debug {command} ... prints"
        print(f"detft {command}: unexpected {e.__class__.__name__} on {inputs}: {detail} -- this is a bug in detft "
              f"{__version__}: please report it with the command line and {how}", file=sys.stderr)
        return ExitCode.BUG
