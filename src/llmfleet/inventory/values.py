"""Small helpers both inventory readers and the builder use: line numbers, value kinds, var names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import yamlsrc
from ..errors import InputError
from .model import Origin


def line_of(container: Any, key: Any, default: int | None = None) -> int | None:
    """The line a key was read from, when the container remembers it (yamlsrc.LineDict)."""
    getter = getattr(container, "line_of", None)
    line = getter(key) if getter else None
    return line if line is not None else default


def kind(value: Any) -> str:
    """A value's type in the words an inventory author uses."""
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def var_name(key: Any, where: Origin) -> str:
    """A variable name must be a non-empty string (YAML allows numbers and null as keys)."""
    if not isinstance(key, str) or not key:
        raise InputError(f"variable name {key!r} must be a non-empty string", where.path, where.line)
    return key


def plain(value: Any) -> Any:
    """Plain dicts and lists (no line bookkeeping) for values that outlive loading."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def load_yaml(text: str, path: Path) -> Any:
    """Bounded YAML with a clearer word for Ansible Vault values, which are not supported."""
    try:
        return yamlsrc.loads(text, path)
    except InputError as exc:
        if "!vault" in exc.message:
            raise InputError("Ansible Vault values (!vault) are not supported", exc.path, exc.line) from None
        raise


def short(value: Any) -> str:
    """repr() of a value for a one-line error message, cut so a huge value cannot flood the terminal."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
