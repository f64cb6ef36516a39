"""The one place where argv lists become shell text, and where secrets are masked.

Every remote command is built as a list of strings by the builders in
``llmfleet.commands`` and joined here, so quoting is decided once and tested once.
"""

from __future__ import annotations

import shlex
from typing import Iterable, Sequence

MASK = "********"


def join(argv: Sequence[str]) -> str:
    """Quote an argv list for a POSIX shell (the remote side of SSH is always one)."""
    if isinstance(argv, str):  # a str is a sequence too: refuse it loudly
        raise TypeError("join() takes an argv list, not a string")
    return shlex.join(str(a) for a in argv)


def pipeline(*commands: Sequence[str]) -> str:
    """Join several argv lists with ``|``; each one is quoted on its own."""
    return " | ".join(join(c) for c in commands)


def and_then(*commands: Sequence[str]) -> str:
    """Join several argv lists with ``&&``."""
    return " && ".join(join(c) for c in commands)


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret with a fixed mask.

    Secrets shorter than 4 characters are ignored: masking "a" would shred a log
    and such a value cannot be a real token.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
