"""The one place where argv lists become shell text.

Every remote command is built as a list of strings by the builders in
``llmfleet.commands`` and joined here, so quoting is decided once and tested once.
"""

from __future__ import annotations

import shlex
from typing import Iterable, Sequence


def join(argv: Sequence[str]) -> str:
    """Quote an argv list for a POSIX shell (the remote side of SSH is always one)."""
    if isinstance(argv, str):  # a str is a sequence too: refuse it loudly
        raise TypeError("join() takes an argv list, not a string")
    words = [str(a) for a in argv]
    for word in words:  # no shell can carry NUL (sshd would refuse or cut the command short), SSH sends UTF-8
        if "\x00" in word or not word.isprintable() and _not_utf8(word):
            raise ValueError(f"a command argument is not text a remote shell can receive: {word!r}")
    return shlex.join(words)


def _not_utf8(word: str) -> bool:
    """Lone surrogates (e.g. from undecodable bytes in sys.argv) cannot be sent; they would crash the send."""
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def pipeline(*commands: Sequence[str]) -> str:
    """Join several argv lists with ``|``; each one is quoted on its own."""
    return " | ".join(join(c) for c in commands)


def and_then(*commands: Sequence[str]) -> str:
    """Join several argv lists with ``&&``."""
    return " && ".join(join(c) for c in commands)


def sections(parts: Iterable[tuple[str, Sequence[str]]]) -> str:
    """A script that prints ``@@name`` then the output (stdout and stderr) of each argv.

    Used to gather all of a host's facts in one remote exec: one round trip, one
    parse. Each command's failure is visible in its own section and does not stop
    the others.
    """
    lines = []
    for name, argv in parts:
        lines.append(join(["printf", "@@%s\\n", name]))
        lines.append(join(argv) + " 2>&1")
    return "; ".join(lines)


def split_sections(output: str) -> dict[str, str]:
    """Inverse of :func:`sections`: section name -> its output, trailing newline stripped."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("@@") and len(line) > 2 and " " not in line:
            current = found.setdefault(line[2:], [])
            continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(body) for name, body in found.items()}
