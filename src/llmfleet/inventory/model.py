"""The inventory model: hosts, groups, where each value came from, and host order as Ansible's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .graph import group_host_names
from .selection import select_names

DEFAULT_PORT = 22


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a file, a line and the group or host it belongs to."""

    path: str
    line: int | None
    owner: str  # "group 'web'", "host 'gpu01'", "group_vars of 'web'"

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line else "")
        return f"{where} ({self.owner})"


@dataclass
class Host:
    """One inventory host, with its connection settings resolved from its variables."""

    name: str
    address: str
    port: int = DEFAULT_PORT
    user: str | None = None
    key_file: str | None = None
    known_hosts_file: str | None = None
    groups: list[str] = field(default_factory=list)  # 'all' first, then in variable precedence order
    vars: dict[str, Any] = field(default_factory=dict)
    var_sources: dict[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:  # hosts are unique by name in an inventory
        return hash(self.name)


@dataclass
class Group:
    """One inventory group. ``hosts`` are its direct members; ``Inventory.hosts_of`` adds its children's."""

    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)  # inventory vars, then group_vars files on top
    var_sources: dict[str, str] = field(default_factory=dict)
    depth: int = 0
    priority: int = 1


@dataclass
class Inventory:
    """Hosts and groups of an inventory file or directory, variables resolved."""

    path: str
    hosts: dict[str, Host]  # in inventory order: the order hosts first appear in the files
    groups: dict[str, Group]
    files: list[str] = field(default_factory=list)  # inventory files read, in load order
    warnings: list[str] = field(default_factory=list)  # things Ansible would only warn about

    def hosts_of(self, group: str) -> list[Host]:
        """All hosts of a group and its descendants, in Ansible's order (children as declared)."""
        return [self.hosts[n] for n in group_host_names(self.groups, group)]

    def select(self, pattern: str) -> list[Host]:
        """The hosts a ``--hosts`` pattern names, each once, in the order Ansible lists them.

        ``web`` (group or host), ``web,db`` or ``web:db``, globs (``gpu*``,
        ``*.example.com``), ``~regex``, ``!name`` excludes, ``&group`` intersects,
        ``all`` or ``*``, ``group[0]`` / ``group[-1]`` / ``group[0:3]`` subscripts.
        A part that matches nothing is an error (a typo must not deploy to fewer
        hosts than meant), except an exclusion; so is an empty result.
        """
        return [self.hosts[n] for n in select_names(self, pattern)]

    def to_ansible_json(self) -> dict[str, Any]:
        """The shape of ``ansible-inventory --list``: for comparing with Ansible, and for humans."""
        out: dict[str, Any] = {"_meta": {"hostvars": {n: dict(h.vars) for n, h in self.hosts.items() if h.vars}}}
        for name, g in self.groups.items():
            entry: dict[str, Any] = {}
            if g.hosts and name != "all":  # Ansible lists hosts placed directly in 'all' under 'ungrouped'
                entry["hosts"] = list(g.hosts)
            if g.children:
                entry["children"] = list(g.children)
            if entry:
                out[name] = entry
        return out
