"""YAML loading that remembers line numbers, so input errors can name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError


class LineDict(dict):
    """A dict from YAML that knows where it and each of its keys came from."""

    path: str | None = None
    line: int | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.path = getattr(loader, "_llmfleet_path", None)
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise InputError("a mapping key must be a plain value", out.path, key_node.start_mark.line + 1)
        if key in out:
            raise InputError(f"duplicate key {key!r}", out.path, key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def loads(text: str, path: str | Path | None = None) -> Any:
    loader = _Loader(text)
    loader._llmfleet_path = str(path) if path else None  # type: ignore[attr-defined]
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InputError(f"invalid YAML: {exc.problem or exc}", path, line) from None
    finally:
        loader.dispose()


def load(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    return loads(text, path)


def check_keys(mapping: LineDict, allowed: set[str], what: str) -> None:
    """Refuse unknown keys (a typo'd key must not be silently ignored)."""
    for key in mapping:
        if key not in allowed:
            hint = _closest(str(key), allowed)
            msg = f"unknown key {key!r} in {what}" + (f" (did you mean {hint!r}?)" if hint else "")
            raise InputError(msg, mapping.path, mapping.line_of(key))


def _closest(word: str, choices: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None
