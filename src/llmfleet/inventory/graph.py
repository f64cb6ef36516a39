"""The group graph: descendants in Ansible's order, ancestors, depths (parents merge before children)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class GroupLike(Protocol):
    """What the graph walks need of a group (the builder's state and the final Group both fit)."""

    hosts: list[str]
    children: list[str]
    parents: list[str]


def walk_descendants(groups: Mapping[str, GroupLike], name: str) -> list[str]:
    """A group and its descendants in Ansible's order (``Group.get_descendants(preserve_ordering=True)``).

    The group, then its children as declared, then each further level breadth first.
    Ansible walks the groups of one level from a set, so below the children its
    order is arbitrary when two groups of a level both have children; here they
    are taken in the order the level was reached (deterministic, and what Ansible
    gives whenever its own order is fixed).
    """
    ordered = [name, *groups[name].children]
    seen = set(ordered)
    level = list(ordered)
    while level:
        following: list[str] = []
        for g in level:
            for child in groups[g].children:
                if child not in seen:
                    seen.add(child)
                    following.append(child)
        ordered.extend(following)
        level = following
    return ordered


def group_host_names(groups: Mapping[str, GroupLike], name: str) -> list[str]:
    """Host names of a group and its descendants, each once, in Ansible's order (``Group.get_hosts``)."""
    out: list[str] = []
    seen: set[str] = set()
    for g in walk_descendants(groups, name):
        for host in groups[g].hosts:
            if host not in seen:
                seen.add(host)
                out.append(host)
    return out


def ancestors(groups: Mapping[str, GroupLike], name: str) -> set[str]:
    """Every group above ``name`` (parents, their parents, ...)."""
    out: set[str] = set()
    todo = [name]
    while todo:
        for parent in groups[todo.pop()].parents:
            if parent not in out:
                out.add(parent)
                todo.append(parent)
    return out


def descendants(groups: Mapping[str, GroupLike], name: str) -> set[str]:
    """Every group below ``name``: a new child edge must not point back at one of them."""
    return set(walk_descendants(groups, name)) - {name}


def depths(groups: Mapping[str, GroupLike]) -> dict[str, int]:
    """Longest path from 'all' (Ansible's group depth): parents merge before children.

    Iterative, so a chain of thousands of nested groups cannot exhaust the stack.
    """
    memo: dict[str, int] = {}
    for start in groups:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in memo:
                stack.pop()
                continue
            pending = [p for p in groups[name].parents if p not in memo]
            if pending:
                stack.extend(pending)
                continue
            parents = groups[name].parents
            memo[name] = max((memo[p] + 1 for p in parents), default=0)
            stack.pop()
    return memo
