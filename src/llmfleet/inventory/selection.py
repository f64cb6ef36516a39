"""``--hosts`` selection, step for step as ansible-core's InventoryManager does it.

Order matters (``web[-1]``, ``--serial`` batches): a group lists its own hosts,
then its children's as declared (``graph.walk_descendants``); a pattern's parts
add hosts in the order the parts are written; a glob adds the hosts of every
matching group (in the order groups were defined), then matching host names.
Stricter than Ansible: a part that matches nothing, or an empty result, is an error.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from ..errors import InputError
from .graph import group_host_names
from .patterns import (
    apply_subscript,
    compile_matcher,
    is_glob,
    order_parts,
    split_pattern,
    split_subscript,
)

if TYPE_CHECKING:
    from .model import Inventory


def select_names(inv: Inventory, pattern: str) -> list[str]:
    """Host names a pattern selects, each once, in the order ``ansible PATTERN --list-hosts`` prints them."""
    parts = split_pattern(pattern)
    if not parts:
        raise InputError(f"--hosts {pattern!r}: empty host pattern")
    selected: list[str] = []
    for part in order_parts(parts):
        if part in inv.hosts:  # a plain host name, as Ansible short-cuts it
            selected.append(part)
            continue
        names, known = match_part(inv, part)
        if not known and not part.startswith("!"):
            raise InputError(f"--hosts {pattern!r}: {part!r} matches no host or group{_suggest(inv, part)}")
        if part.startswith("!"):
            drop = set(names)
            selected = [n for n in selected if n not in drop]
        elif part.startswith("&"):
            keep = set(names)
            selected = [n for n in selected if n in keep]
        else:
            present = set(selected)
            selected.extend(n for n in names if n not in present)
    result = list(dict.fromkeys(selected))
    if not result:
        raise InputError(f"--hosts {pattern!r} selects no hosts{_known_groups(inv)}")
    return result


def match_part(inv: Inventory, part: str) -> tuple[list[str], bool]:
    """Host names one part matches (its ! or & ignored), duplicates kept as Ansible keeps them
    before a subscript, and whether it named anything at all (an empty group counts)."""
    bare = part[1:] if part[:1] in ("!", "&") else part
    expr, subscript = split_subscript(bare)
    matcher = compile_matcher(expr, part)
    groups = [g for g in inv.groups if matcher(g)]
    names: list[str] = []
    for g in groups:
        names.extend(group_host_names(inv.groups, g))
    if not groups or is_glob(expr):
        names.extend(h for h in inv.hosts if matcher(h))
    known = bool(groups) or bool(names)
    try:
        return apply_subscript(names, subscript), known
    except IndexError:
        count = len(dict.fromkeys(names))
        raise InputError(f"--hosts: {part!r}: subscript out of range ({count} hosts match {expr!r})") from None


def _suggest(inv: Inventory, part: str) -> str:
    bare = part.lstrip("!&~")
    names = [n for n in list(inv.groups) + list(inv.hosts) if n != bare]
    close = difflib.get_close_matches(bare, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return hint + _known_groups(inv)


def _known_groups(inv: Inventory) -> str:
    names = [g for g in inv.groups if g != "ungrouped" or inv.groups[g].hosts]
    shown = ", ".join(names[:30]) + (f", ... ({len(names) - 30} more)" if len(names) > 30 else "")
    return f"; groups in {inv.path}: {shown}"
