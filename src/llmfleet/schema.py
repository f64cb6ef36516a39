"""One way to validate input files: typed structures (msgspec) and errors that name file:line.

Catalog files, failure signatures, reference numbers, tolerances, run manifests and
the settings of a host are all checked here: the Python type *is* the schema, so a
field's type is written once, and a typo'd key, a wrong type or a missing field is an
:class:`~llmfleet.errors.InputError` that points at the line to fix (YAML loaded with
:mod:`llmfleet.yamlsrc` remembers lines; JSON errors name the field's path instead).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any, TypeVar

import msgspec

from .errors import InputError

T = TypeVar("T")

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]*)`")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")
_SEGMENT = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+|\.\.\.)\]")


class Struct(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of the file schemas: unknown keys are errors, instances are immutable."""


def convert(data: Any, type_: type[T], *, path: str | None = None, what: str = "", strict: bool = True) -> T:
    """``data`` as ``type_``, or an InputError naming the file, line and field.

    ``strict=False`` accepts numbers and booleans written as strings (INI inventories).
    """
    try:
        return msgspec.convert(data, type_, strict=strict)
    except msgspec.ValidationError as exc:
        raise located(exc, data, type_, path, what) from None


def located(exc: msgspec.ValidationError, data: Any, type_: Any, path: str | None, what: str = "") -> InputError:
    """Turn msgspec's ``... - at `$.a.b[2]` `` into ``file:line: what a.b[2]: ...``."""
    m = _AT.match(str(exc))
    message = m.group("msg") if m else str(exc)
    segments = _segments(m.group("path") if m and m.group("path") else "$")
    node, line, names, typ = data, _line(data, None), [], type_
    for seg in segments:
        if seg == "...":  # a mapping's value: msgspec does not say which key, so find it
            seg = _failing_key(node, _child_type(typ, seg))
            if seg is None:
                break
        node_line = _line(node, seg)
        try:
            node = node[seg]
        except (KeyError, IndexError, TypeError):
            break
        line = node_line or line
        typ = _child_type(typ, seg)
        names.append(f"[{seg}]" if isinstance(seg, int) else str(seg))
    field_name = None
    for pattern in (_UNKNOWN, _MISSING):
        fm = pattern.search(message)
        if fm:
            field_name = fm.group("field")
    if field_name and _UNKNOWN.search(message):
        line = _line(node, field_name) or line
        known = field_names(typ)
        hint = difflib.get_close_matches(field_name, known, n=1, cutoff=0.6)
        message = f"unknown key {field_name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        if known:
            message += f"; known: {', '.join(known)}"
    elif field_name:
        message = f"missing key {field_name!r}"
    where = ".".join(names).replace(".[", "[")
    prefix = " ".join(p for p in (what, where) if p)
    return InputError(f"{prefix}: {message}" if prefix else message, path or getattr(data, "path", None), line)


def _failing_key(mapping: Any, value_type: Any) -> Any:
    """The first key of ``mapping`` whose value does not convert to ``value_type``, or None."""
    for key, value in mapping.items() if isinstance(mapping, dict) else ():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError:
            return key
    return None


def field_names(type_: Any) -> list[str]:
    """The keys a Struct or dataclass accepts (for did-you-mean)."""
    type_ = _unwrap(type_)
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return sorted(f.encode_name for f in msgspec.structs.fields(type_))
    if dataclasses.is_dataclass(type_):
        return sorted(f.name for f in dataclasses.fields(type_))
    return []


def closest(word: str, choices: typing.Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _segments(path: str) -> list[str | int]:
    out: list[str | int] = []
    for name, index in _SEGMENT.findall(path):
        if name:
            out.append(name)
        elif index == "...":
            out.append("...")
        else:
            out.append(int(index))
    return out


def _line(node: Any, key: Any) -> int | None:
    if key is None:
        return getattr(node, "line", None)
    line_of = getattr(node, "line_of", None)
    if line_of is None:
        return None
    return line_of(key) if isinstance(node, dict) and key in node else None


def _unwrap(type_: Any) -> Any:
    """``X | None`` -> X (the schema types are at most optional)."""
    origin = typing.get_origin(type_)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(type_) if a is not type(None)]
        return args[0] if len(args) == 1 else type_
    return type_


def _child_type(type_: Any, seg: str | int) -> Any:
    type_ = _unwrap(type_)
    origin = typing.get_origin(type_)
    if origin in (list, tuple, set, frozenset) or (origin is not None and isinstance(seg, int)):
        args = typing.get_args(type_)
        return args[0] if args else Any
    if origin is dict:
        args = typing.get_args(type_)
        return args[1] if len(args) == 2 else Any
    if isinstance(type_, type) and (issubclass(type_, msgspec.Struct) or dataclasses.is_dataclass(type_)):
        try:
            hints = typing.get_type_hints(type_)
        except Exception:  # an unresolvable annotation: no deeper did-you-mean, the message stays right
            return Any
        return hints.get(str(seg), Any)
    return Any
