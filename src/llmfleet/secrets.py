"""Secrets from the control node: read once, kept in memory, never on a command line.

The Hugging Face token comes from $HF_TOKEN or a file (`--hf-token-file`, mode
0600 recommended). It reaches hosts only inside a 0600 env file written over SFTP.

Like Kamal's ``Sensitive``, a value is registered once (:func:`register`) and from
then on :func:`redact` masks it on every path where output leaves the program: the
console and stdout streams (``cli.common``), the event log and the archive writer
(``archive.Run.write``), and error messages. No call site has to remember.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Iterable, Mapping

from .errors import InputError

MASK = "********"
MIN_LENGTH = 4  # masking "a" would shred a log, and such a value cannot be a real token

_lock = threading.Lock()
_registered: tuple[str, ...] = ()  # longest first, so a secret containing another is masked whole


def register(value: str | None) -> None:
    """From now on, mask ``value`` everywhere output leaves the program."""
    global _registered
    if not value or len(value) < MIN_LENGTH:
        return
    with _lock:
        if value not in _registered:
            _registered = tuple(sorted({*_registered, value}, key=len, reverse=True))


def registered() -> tuple[str, ...]:
    return _registered


def forget_all() -> None:
    """For tests: start again with no registered secrets."""
    global _registered
    with _lock:
        _registered = ()


def mask(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` (at least MIN_LENGTH long) replaced by a fixed mask, longest first."""
    for secret in sorted({v for v in values if v and len(v) >= MIN_LENGTH}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by a fixed mask."""
    return mask(text, _registered)


def redact_bytes(data: bytes) -> bytes:
    """Bytes stay bytes: only when a secret occurs is the text decoded and re-encoded."""
    if not _registered:
        return data
    for secret in _registered:
        if secret.encode() in data:
            return redact(data.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape")
    return data


def load_hf_token(env: Mapping[str, str] | None = None, token_file: str | None = None) -> str | None:
    """The token, registered for redaction; refused (exit 2) when it cannot be a token."""
    env = os.environ if env is None else env
    if token_file:
        path = Path(token_file).expanduser()
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise InputError("the HF token file is not a regular file", path)
            raw = path.read_bytes()[:65536]
        except OSError as exc:
            raise InputError(f"cannot read the HF token file: {exc.strerror}", path) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError("the HF token file is readable by others: chmod 600 it", path)
        try:
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InputError("the HF token file is not text (a token is one line of ASCII)", path) from None
        source = f"--hf-token-file {path}"
    else:
        token = (env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
        source = "$HF_TOKEN"
    if not token:
        return None
    register(token)
    check_token(token, source)
    return token


def check_token(token: str, source: str) -> None:
    """A token is one line of printable ASCII; anything else would break the env file."""
    if any(c in token for c in "\r\n\0"):
        raise InputError(f"the HF token from {source} spans several lines; it must be one line")
    if not token.isascii() or not token.isprintable():
        raise InputError(f"the HF token from {source} has characters a token cannot have")


def env_file_text(values: Mapping[str, str]) -> str:
    """docker --env-file format: KEY=VALUE lines, no quoting (docker takes the rest of the line)."""
    for key, value in values.items():
        if "\n" in value or "\n" in key:
            raise InputError(f"secret {key} contains a newline")
    return "".join(f"{k}={v}\n" for k, v in sorted(values.items()))
