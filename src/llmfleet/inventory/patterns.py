"""Host ranges (``gpu[01:08]``) and ``--hosts`` pattern syntax, as Ansible reads them.

Pure text functions: nothing here knows an inventory.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import string
from collections.abc import Callable

from ..errors import InputError

# A range is [begin:end] or [begin:end:step]; a port is ':N' after a host (an IPv6
# address needs brackets for one: [fe80::1]:22).
_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+|[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.IGNORECASE | re.UNICODE)
_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_PATTERN_PART = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
# Ranges that would expand to more hosts than this are refused (a typo like [1:99999999]).
MAX_RANGE_HOSTS = 100_000

Subscript = tuple[int, "int | None"]


def is_address(text: str) -> bool:
    """A hostname, IPv4 or IPv6 address, ranges allowed (Ansible's parse_address test)."""
    if _HOSTNAME.match(text):
        return True
    plain = re.sub(_RANGE, "0", text, flags=re.IGNORECASE)
    try:
        ipaddress.ip_address(plain)
        return True
    except ValueError:
        return False


def split_port(pattern: str) -> tuple[str, int | None]:
    """``host:22`` / ``[fe80::1]:22`` -> (host, 22); anything that is not host[:port] comes back whole."""
    host, port = pattern, None
    for regex in (_BRACKETED_PORT, _HOST_PORT):
        m = regex.match(host)
        if m:
            host, port = m.group(1), int(m.group(2))
    if not is_address(host):
        return pattern, None  # not host[:port]: Ansible then takes the text as the name
    return host, port


def expand_host_pattern(pattern: str, path: str | None = None, line: int | None = None) -> tuple[list[str], int | None]:
    """``gpu[01:03]:2222`` -> (['gpu01', 'gpu02', 'gpu03'], 2222), as Ansible expands it."""
    host, port = split_port(pattern)
    if "[" not in host:
        return [host], port
    try:
        return _expand_ranges(host, [0]), port
    except ValueError as exc:
        raise InputError(f"bad host range in {pattern!r}: {exc}", path, line) from None


def _range_items(spec: str) -> list[str]:
    """The names one ``[begin:end(:step)]`` stands for."""
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError("a range is [begin:end] or [begin:end:step]")
    beg, stop = bounds[0] or "0", bounds[1]
    step = int(bounds[2]) if len(bounds) == 3 and bounds[2].isdigit() else 1 if len(bounds) == 2 else -1
    if step < 1:
        raise ValueError("the step must be a positive number")
    if not stop:
        raise ValueError("the range needs an end")
    width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
    if width and len(stop) != width:
        raise ValueError("zero-padded begin and end must have the same width")
    letters = string.ascii_letters
    if len(beg) == 1 and len(stop) == 1 and beg in letters and stop in letters:
        if letters.index(beg) > letters.index(stop):
            raise ValueError("begin must not be after end")
        return list(letters[letters.index(beg) : letters.index(stop) + 1 : step])
    if not (beg.isdigit() and stop.isdigit()):
        raise ValueError(f"{spec!r} is neither a numeric nor a single-letter range")
    count = max(0, (int(stop) - int(beg)) // step + 1)
    if count > MAX_RANGE_HOSTS:
        raise ValueError(f"the range names {count} hosts (at most {MAX_RANGE_HOSTS})")
    return [str(i).zfill(width) for i in range(int(beg), int(stop) + 1, step)]


def _expand_ranges(name: str, made: list[int]) -> list[str]:
    start = name.index("[")
    end = name.find("]", start)
    if end < 0:
        raise ValueError("'[' without ']'")
    head, spec, tail = name[:start], name[start + 1 : end], name[end + 1 :]
    items = _range_items(spec)
    if not items:  # Ansible silently adds no host; a range that names nothing is a mistake
        raise ValueError("the range is empty (begin after end?)")
    out: list[str] = []
    for item in items:
        expanded = head + item + tail
        if "[" in expanded:
            out.extend(_expand_ranges(expanded, made))
        else:
            made[0] += 1
            if made[0] > MAX_RANGE_HOSTS:
                raise ValueError(f"the ranges name more than {MAX_RANGE_HOSTS} hosts")
            out.append(expanded)
    return out


def split_pattern(pattern: str) -> list[str]:
    """Split ``--hosts`` text into parts: on commas, else on colons unless it is one host[:port]/IPv6."""
    pattern = pattern.strip()
    if "," in pattern:
        parts = pattern.split(",")
    elif pattern and split_port(pattern) != (pattern, None) or is_address(pattern):
        parts = [pattern]
    else:
        parts = _PATTERN_PART.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def order_parts(parts: list[str]) -> list[str]:
    """Plain parts first, then &intersections, then !exclusions (Ansible's order); only !x means all!x."""
    plain = [p for p in parts if p[0] not in "!&"]
    inter = [p for p in parts if p[0] == "&"]
    excl = [p for p in parts if p[0] == "!"]
    return (plain or ["all"]) + inter + excl


def split_subscript(expr: str) -> tuple[str, Subscript | None]:
    """``web[-1]`` -> ('web', (-1, None)); ``web[1:]`` -> ('web', (1, -1)); a ~regex has none."""
    if expr.startswith("~"):
        return expr, None
    m = _SUBSCRIPT.match(expr)
    if not m:
        return expr, None
    base, index, start, _sep, end = m.groups()
    if index is not None:
        return base, (int(index), None)
    return base, (int(start), int(end) if end else -1)


def apply_subscript(names: list[str], subscript: Subscript | None) -> list[str]:
    """Ansible's ``_apply_subscript``: ``[i]`` one name, ``[a:b]`` inclusive, ``[a:]`` to the end.

    Raises IndexError for an index past the end, as Ansible does.
    """
    if not names or subscript is None:
        return names
    start, end = subscript
    if end:
        return names[start : (len(names) if end == -1 else end + 1)]
    return [names[start]]


def compile_matcher(expr: str, part: str) -> Callable[[str], bool]:
    """A glob (fnmatch) or, with a leading ``~``, a regular expression, anchored at the start as in Ansible."""
    try:
        regex = re.compile(expr[1:]) if expr.startswith("~") else re.compile(fnmatch.translate(expr))
    except (re.error, RecursionError, OverflowError) as exc:
        raise InputError(f"--hosts: {part!r} is not a valid pattern: {exc}") from None
    return lambda name: regex.match(name) is not None


def is_glob(expr: str) -> bool:
    """Ansible also matches host names (not only groups) for a regex or a glob."""
    return expr.startswith("~") or any(c in expr for c in ".?*[")
