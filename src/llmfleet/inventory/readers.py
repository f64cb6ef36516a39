"""The two inventory formats, YAML and INI, read into a Builder the way Ansible's plugins read them."""

from __future__ import annotations

import ast
import difflib
import re
import shlex
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .model import Origin
from .patterns import expand_host_pattern
from .values import kind, line_of, short

if TYPE_CHECKING:
    from .builder import Builder

GROUP_KEYS = ("hosts", "children", "vars")
_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")

# --------------------------------------------------------------------------- YAML


def read_yaml(b: Builder, data: Any, p: str) -> None:
    """A parsed YAML inventory document: a mapping of top-level groups."""
    if data is None:  # an empty file adds nothing
        return
    if isinstance(data, str) and data.startswith("$ANSIBLE_VAULT"):
        raise InputError("Ansible Vault files are not supported", p, 1)
    if not isinstance(data, dict):
        raise InputError(f"a YAML inventory is a mapping of groups (all:, children:, hosts:, vars:), not a {kind(data)}", p, 1)
    if "plugin" in data:
        raise InputError(
            f"inventory plugin configs (plugin: {str(data['plugin'])[:80]}) are not supported; "
            "save `ansible-inventory -i FILE --list -y` as a static inventory",
            p,
            line_of(data, "plugin"),
        )
    for name in data:
        _yaml_group(b, name, data[name], data, p)


def _yaml_group(b: Builder, name: Any, body: Any, container: Any, p: str) -> str:
    line = line_of(container, name)
    if not isinstance(name, str) or not name:
        raise InputError(f"group name {short(name)} must be a non-empty string (quote it)", p, line)
    b.add_group(name)
    if body is None:
        return name
    if not isinstance(body, dict):
        raise InputError(f"group {name!r} must be a mapping with hosts:, children: or vars:, not a {kind(body)}", p, line)
    for key in body:
        if key not in GROUP_KEYS:
            close = difflib.get_close_matches(str(key), GROUP_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else " (a group has hosts:, children: and vars:)"
            raise InputError(f"unknown key {short(key)} in group {name!r}{hint}", p, line_of(body, key))
    for key in body:  # in file order, as Ansible: host order follows the file
        section = body[key]
        kline = line_of(body, key)
        if isinstance(section, str) and key != "vars":
            section = {section: None}  # Ansible allows `hosts: web1` for a single entry
        if section is None:
            continue
        if not isinstance(section, dict):
            what = "host names" if key == "hosts" else "group names" if key == "children" else "variables"
            raise InputError(
                f"'{key}' of group {name!r} must be a mapping of {what} (each followed by ':'), not a {kind(section)}",
                p,
                kline,
            )
        if key == "vars":
            for var in section:
                b.set_group_var(name, var, section[var], Origin(p, line_of(section, var, kline), f"group {name!r}"))
        elif key == "children":
            for sub in section:
                child = _yaml_group(b, sub, section[sub], section, p)
                b.add_child(name, child, Origin(p, line_of(section, sub, kline), f"group {name!r}"))
        else:
            for pattern in section:
                _yaml_host(b, pattern, section[pattern], name, p, line_of(section, pattern, kline))
    return name


def _yaml_host(b: Builder, pattern: Any, hvars: Any, group: str, p: str, line: int | None) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise InputError(f"host name {short(pattern)} in group {group!r} must be a string (quote it)", p, line)
    if hvars is not None and not isinstance(hvars, dict):
        hint = f" (for its address write 'ansible_host: {hvars}')" if isinstance(hvars, (str, int)) and len(str(hvars)) < 100 else ""
        raise InputError(
            f"host {pattern!r} in group {group!r} must map to its variables (or nothing), not a {kind(hvars)}{hint}",
            p,
            line,
        )
    names, port = expand_host_pattern(pattern, p, line)
    own: dict[Any, Any] = hvars or {}
    for n in names:
        b.add_host(n, group, port, Origin(p, line, f"host {n!r}"))
        for k, value in own.items():
            b.set_host_var(n, k, value, Origin(p, line_of(own, k, line), f"host {n!r}"))


# --------------------------------------------------------------------------- INI


def read_ini(b: Builder, text: str, p: str) -> None:
    """An INI inventory: ``[group]`` host lines, ``[group:vars]`` key=value, ``[group:children]``."""
    group, state = "ungrouped", "hosts"
    # Groups named before they are defined: name -> [state, line, parents]. Like Ansible,
    # `[x:children]` may name a group defined further down; at the end none may be left.
    pending: dict[str, list[Any]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _INI_SECTION.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            _ini_section(b, group, state, pending, p, lineno)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InputError(f"invalid section header {short(line)} (no spaces; [name], [name:vars] or [name:children])", p, lineno)
        if state == "hosts":
            _ini_host(b, line, group, p, lineno)
        elif state == "vars":
            if "=" not in line:
                raise InputError(f"expected key=value in [{group}:vars], got {short(line)}", p, lineno)
            key, value = (s.strip() for s in line.split("=", 1))
            b.set_group_var(group, key, ini_value(value), Origin(p, lineno, f"group {group!r}"))
        else:
            cm = _INI_GROUPNAME.match(line)
            if not cm:
                raise InputError(f"expected a group name in [{group}:children], got {short(line)}", p, lineno)
            child = cm.group(1)
            if child in b.groups:
                b.add_child(group, child, Origin(p, lineno, f"group {group!r}"))
            else:
                pending.setdefault(child, ["children", lineno, []])[2].append(group)
    for name, (what, lineno, parents) in pending.items():
        if what == "vars":
            raise InputError(f"[{name}:vars] for a group that is not defined", p, lineno)
        raise InputError(f"[{parents[-1]}:children] names unknown group {name!r}", p, lineno)


def _ini_section(b: Builder, group: str, state: str, pending: dict[str, list[Any]], p: str, lineno: int) -> None:
    if state not in ("hosts", "children", "vars"):
        raise InputError(f"section [{group}:{state}] has unknown type {state!r} (use :vars or :children)", p, lineno)
    if group not in b.groups:
        if state == "vars" and group not in pending:
            pending[group] = ["vars", lineno, []]
        b.add_group(group)
    if group in pending and state != "vars":
        what, where, parents = pending.pop(group)
        for parent in parents if what == "children" else ():
            b.add_child(parent, group, Origin(p, where, f"group {parent!r}"))


def _ini_host(b: Builder, line: str, group: str, p: str, lineno: int) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InputError(f"cannot parse host line {short(line)}: {exc}", p, lineno) from None
    if not tokens:
        return
    if tokens[0] == "---":
        raise InputError("'---' is not a host; this looks like a YAML file (name it .yml)", p, lineno)
    names, port = expand_host_pattern(tokens[0], p, lineno)
    if tokens[0].endswith(":") and port is None:
        raise InputError(f"host {short(tokens[0])} ends in ':' without a port", p, lineno)
    hvars: dict[str, Any] = {}
    for tok in tokens[1:]:
        if "=" not in tok:
            raise InputError(f"expected key=value after host {short(tokens[0])}, got {short(tok)}", p, lineno)
        key, value = tok.split("=", 1)
        hvars[key] = ini_value(value)
    for n in names:
        b.add_host(n, group, port, Origin(p, lineno, f"host {n!r}"))
        for key, value in hvars.items():
            b.set_host_var(n, key, value, Origin(p, lineno, f"host {n!r}"))


def ini_value(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal if it parses as one, else the string.

    ``8080`` is an int, ``True`` a bool, ``'03'`` a string; ``03`` and ``a b``
    stay strings. Tuples and sets become lists; what YAML cannot hold becomes a string.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = text
    return _ini_coerce(value)


def _ini_coerce(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_ini_coerce(v) for v in value]
    if isinstance(value, dict):
        return {_ini_key(k): _ini_coerce(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _ini_key(key: Any) -> Any:
    """A dict key that stays hashable after coercion (a tuple key would become a list)."""
    value = _ini_coerce(key)
    return value if not isinstance(value, list) else str(key)
