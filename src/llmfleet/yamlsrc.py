"""Bounded YAML (and JSON) loading that remembers line numbers, so input errors can name file:line.

Every file users or hosts hand us goes through here, so the limits live here once:
regular files only (a FIFO or device would hang the read), at most
``MAX_FILE_BYTES``, nesting at most ``MAX_DEPTH`` deep (checked while composing,
so a 100k-deep ``[[[[`` is refused before any recursion can overflow), and at most
``MAX_NODES`` nodes once aliases are expanded (a "billion laughs" alias bomb is
refused; ordinary ``<<: *defaults`` reuse stays well below). A refusal is an
InputError whose message starts with ``LIMIT_PREFIX``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100  # nested mappings/sequences
MAX_NODES = 1_000_000  # nodes after alias expansion
LIMIT_PREFIX = "refused:"


class LineDict(dict):
    """A dict from YAML that knows where it and each of its keys came from."""

    path: str | None = None
    line: int | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.key_lines.get(key, self.line)


class _DepthLimited:
    """Refuses nesting deeper than MAX_DEPTH while the nodes are composed (before anything can recurse)."""

    _llmfleet_path: str | None = None
    _llmfleet_depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._llmfleet_depth += 1
        try:
            if self._llmfleet_depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise InputError(f"{LIMIT_PREFIX} nested too deeply (more than {MAX_DEPTH} levels)", self._llmfleet_path, mark.line + 1)
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._llmfleet_depth -= 1


class _Loader(_DepthLimited, yaml.SafeLoader):
    """PyYAML's SafeLoader, all in Python."""


_PARSER: type[Any] = _Loader
if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(_DepthLimited, yaml.composer.Composer, yaml._yaml.CParser, yaml.constructor.SafeConstructor,
                   yaml.resolver.Resolver):  # fmt: skip
        """The same loader with libyaml's scanner and parser (5x faster: every command reads the roles' defaults,
        the catalog and the inventory). Composer comes before CParser, so the nodes are still composed here, event
        by event: the depth limit holds before anything recurses and every node keeps its line."""

        def __init__(self, stream: str):
            yaml._yaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _PARSER = _CLoader


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    """A LineDict; a key written twice is an error, a key written over one from ``<<: *merge`` is not."""
    own_keys = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)  # merged pairs first, then the mapping's own
    out = LineDict()
    out.path = getattr(loader, "_llmfleet_path", None)
    out.line = node.start_mark.line + 1
    written: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise InputError("a mapping key must be a plain value", out.path, key_node.start_mark.line + 1) from None
        if id(key_node) in own_keys:
            if key in written:
                raise InputError(f"duplicate key {key!r}", out.path, key_node.start_mark.line + 1)
            written.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
if _PARSER is not _Loader:
    _PARSER.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def expanded_size(root: yaml.Node, path: str | None = None) -> int:
    """Number of nodes the document has once every alias is expanded; refuses more than MAX_NODES.

    Iterative and memoized per node, so it costs one visit per distinct node even
    for an alias bomb; an alias that contains itself is refused too.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        kids = _children(node)
        if children_done:
            total = 1 + sum(sizes[id(k)] for k in kids)
            visiting.discard(key)
            if total > MAX_NODES:
                raise InputError(
                    f"{LIMIT_PREFIX} more than {MAX_NODES} values once aliases are expanded (an alias bomb?)",
                    path,
                    node.start_mark.line + 1,
                )
            sizes[key] = total
            continue
        if key in visiting:
            raise InputError(f"{LIMIT_PREFIX} an alias refers to the node that contains it", path, node.start_mark.line + 1)
        visiting.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in visiting:
                raise InputError(f"{LIMIT_PREFIX} an alias refers to the node that contains it", path, kid.start_mark.line + 1)
            if id(kid) not in sizes:
                stack.append((kid, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def loads(text: str, path: str | Path | None = None) -> Any:
    """Parse one YAML document (bounded: size, depth, expanded aliases); errors are InputError with file:line."""
    where = str(path) if path else None
    if len(text) > MAX_FILE_BYTES:
        raise InputError(f"{LIMIT_PREFIX} YAML text larger than {MAX_FILE_BYTES} bytes", where)
    try:
        loader = _PARSER(text)
    except yaml.reader.ReaderError as exc:  # a control character: before any parsing (Python's reader)
        raise _not_allowed(exc, text, path) from None
    loader._llmfleet_path = where
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, where)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:  # libyaml's reader finds it while it parses
        raise _not_allowed(exc, text, path) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own limit (PyYAML >= 6.0.4), met scanning ahead
            raise InputError(f"{LIMIT_PREFIX} nested too deeply (more than {MAX_DEPTH} levels)", path, line) from None
        raise InputError(f"invalid YAML: {exc.problem or exc}", path, line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", path) from None
    except RecursionError:
        raise InputError(f"{LIMIT_PREFIX} nested too deeply", path) from None
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. a 5000-digit int, a bad timestamp
        raise InputError(f"invalid YAML value: {exc}", path) from None
    finally:
        loader.dispose()


def _not_allowed(exc: yaml.reader.ReaderError, text: str, path: str | Path | None) -> InputError:
    """The reader's refusal with its line. libyaml gives the character as a number and its position in UTF-8 bytes,
    Python's reader a string and a character index: the character's first place in the text serves both (the
    reader stops at the first one)."""
    character = exc.character if isinstance(exc.character, str) else chr(exc.character)
    at = text.find(character)
    return InputError(f"invalid YAML: character {character!r} is not allowed", path,
                      text.count("\n", 0, at if at >= 0 else exc.position) + 1)  # fmt: skip


def read_text(path: str | Path, what: str = "file") -> str:
    """A regular file's text (UTF-8), at most MAX_FILE_BYTES; a FIFO, device or socket is refused, never opened blocking."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", path) from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{LIMIT_PREFIX} {what} is not a regular file ({_file_kind(mode)})", path)
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{LIMIT_PREFIX} {what} larger than {MAX_FILE_BYTES} bytes", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"cannot read {what}: not UTF-8 text (byte {exc.start})", path, line) from None


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):  # fmt: skip
        if test(mode):
            return name
    return "not a plain file"


def load(path: str | Path) -> Any:
    """Read and parse a YAML file with the limits above."""
    return loads(read_text(path), path)


def loads_json(text: str, what: str) -> Any:
    """Parse JSON text with the same limits as YAML (size, MAX_DEPTH); errors are InputError naming ``what``.

    For JSON given by users or brought back from hosts (JSONL metrics, manifests):
    a deep ``[[[[`` is refused instead of raising RecursionError in a caller.
    """
    if len(text) > MAX_FILE_BYTES:
        raise InputError(f"{LIMIT_PREFIX} JSON text larger than {MAX_FILE_BYTES} bytes", what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", what, exc.lineno) from None
    except RecursionError:
        raise InputError(f"{LIMIT_PREFIX} nested too deeply (more than {MAX_DEPTH} levels)", what) from None
    except (ValueError, OverflowError) as exc:  # e.g. an int of more than 4300 digits
        raise InputError(f"invalid JSON: {exc}", what) from None
    if nesting_depth(data) > MAX_DEPTH:
        raise InputError(f"{LIMIT_PREFIX} nested too deeply (more than {MAX_DEPTH} levels)", what)
    return data


def nesting_depth(value: Any) -> int:
    """How deeply lists and dicts nest in a parsed value (iterative: safe on any depth)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in item)
    return deepest


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
