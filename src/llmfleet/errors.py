"""Errors the command line turns into one-line messages and exit codes."""

from __future__ import annotations

from pathlib import Path

EXIT_FAILED = 1  # a host failed, a regression was found
EXIT_INPUT = 2  # bad inventory, playbook, flag: nothing ran


class InputError(Exception):
    """Bad user input: an inventory, a playbook, a catalog file or a flag.

    Carries the file and line so the message points at what to fix.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "") + ": "
        return where + self.message
