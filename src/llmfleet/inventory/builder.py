"""Loading: find the inventory files, read them into one Builder, resolve groups and variables once.

A host's variables merge in Ansible's order, lowest first: the ``all`` group's
inventory vars, the other groups' inventory vars (parents before children, same
depth by ``ansible_group_priority`` then name), ``group_vars/all``, the other
groups' ``group_vars`` files (same order), the host's inventory vars, its
``host_vars`` files. Dicts are replaced, not merged (Ansible's default).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import yamlsrc
from ..errors import InputError
from .connection import (
    ADDRESS_VARS,
    KEY_VARS,
    KNOWN_HOSTS_VARS,
    USER_VARS,
    ConnectionVars,
)
from .graph import ancestors, depths, descendants
from .model import Group, Host, Inventory, Origin
from .readers import read_ini, read_yaml
from .values import kind, line_of, load_yaml, plain, var_name

YAML_EXTENSIONS = (".yml", ".yaml", ".json")
INI_EXTENSIONS = (".ini",)
VARS_EXTENSIONS = ("",) + YAML_EXTENSIONS  # Ansible tries them in this order
# Never inventory sources when found in an inventory directory (Ansible's IGNORED_ALWAYS).
SKIPPED_DIRS = {"group_vars", "host_vars", "vars_plugins"}


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file or directory; raises InputError (file:line) on bad input."""
    src = Path(path)
    if not src.exists():
        raise InputError("inventory not found (give a file or directory with --inventory/-i)", src)
    b = Builder(str(src))
    if src.is_dir():
        for f in _inventory_files(src):
            b.load_file(f)
        vars_dir = src
    else:
        b.load_file(src)
        vars_dir = src.parent
    return b.finish(vars_dir)


def _listing(directory: Path) -> list[str]:
    """Entries of a directory in name order, without hidden and backup (``*~``) files."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise InputError(f"cannot list directory: {exc.strerror}", directory) from None
    return [n for n in names if not n.startswith(".") and not n.endswith("~")]


def _inventory_files(directory: Path) -> list[Path]:
    """Inventory sources in a directory, in Ansible's order: sorted names, recursing into sub-directories."""
    out: list[Path] = []
    for entry in _listing(directory):
        p = directory / entry
        if p.is_dir():
            if entry not in SKIPPED_DIRS:
                out.extend(_inventory_files(p))
        elif p.suffix in YAML_EXTENSIONS + INI_EXTENSIONS or p.suffix == "":
            out.append(p)
    return out


def _vars_dir_files(directory: Path) -> list[Path]:
    """Files of a group_vars/<group>/ directory: sorted, recursive, YAML extensions or none."""
    out: list[Path] = []
    for entry in _listing(directory):
        p = directory / entry
        if p.is_dir() and not p.suffix:
            out.extend(_vars_dir_files(p))
        elif not p.is_dir() and p.suffix in VARS_EXTENSIONS:
            out.append(p)  # a FIFO or device here is refused when read, not silently skipped
    return out


def _load_vars_file(path: Path, into: dict[str, Any], origins: dict[str, Origin], owner: str) -> None:
    text = yamlsrc.read_text(path, "variables file")
    data = load_yaml(text, path)
    if data is None:
        return
    if isinstance(data, str) and data.startswith("$ANSIBLE_VAULT"):
        raise InputError("Ansible Vault files are not supported", path, 1)
    if not isinstance(data, dict):
        raise InputError(f"a variables file must be a mapping of names to values, not a {kind(data)}", path, 1)
    for key in data:
        where = Origin(str(path), line_of(data, key), owner)
        into[var_name(key, where)] = plain(data[key])
        origins[key] = where


class _GroupState:
    """A group while files are still being read."""

    def __init__(self, name: str):
        self.name = name
        self.hosts: list[str] = []
        self.host_set: set[str] = set()
        self.children: list[str] = []
        self.parents: list[str] = []
        self.vars: dict[str, Any] = {}
        self.origins: dict[str, Origin] = {}
        self.priority = 1
        self.file_vars: dict[str, Any] = {}
        self.file_origins: dict[str, Origin] = {}


class _HostState:
    """A host while files are still being read: inventory vars and host_vars kept apart."""

    def __init__(self, name: str):
        self.name = name
        self.vars: dict[str, Any] = {}
        self.origins: dict[str, Origin] = {}
        self.file_vars: dict[str, Any] = {}
        self.file_origins: dict[str, Origin] = {}


class Builder:
    """Collects groups, hosts and variables from all files, then resolves them once."""

    def __init__(self, path: str):
        self.path = path
        self.groups: dict[str, _GroupState] = {}
        self.hosts: dict[str, _HostState] = {}
        self.files: list[str] = []
        self.warnings: list[str] = []
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped", Origin(path, None, "implicit"))

    # -- primitives shared by both formats

    def add_group(self, name: str) -> _GroupState:
        if name not in self.groups:
            self.groups[name] = _GroupState(name)
        return self.groups[name]

    def add_child(self, parent: str, child: str, where: Origin) -> None:
        if child == parent or parent in descendants(self.groups, child):
            raise InputError(f"group {child!r} as a child of {parent!r} makes a loop", where.path, where.line)
        p, c = self.groups[parent], self.groups[child]
        if child not in p.children:
            p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)

    def add_host(self, name: str, group: str, port: int | None, where: Origin) -> _HostState:
        h = self.hosts.get(name)
        if h is None:
            h = self.hosts[name] = _HostState(name)
            if port is not None:  # like Ansible: host:port counts where the host first appears
                h.vars["ansible_port"] = port
                h.origins["ansible_port"] = Origin(where.path, where.line, f"host {name!r}")
        elif port is not None and h.vars.get("ansible_port") != port:
            self.warnings.append(
                f"{where.path}:{where.line}: port {port} of {name!r} ignored (Ansible takes the port where a host first appears)"
            )
        g = self.groups[group]
        if name not in g.host_set:
            g.hosts.append(name)
            g.host_set.add(name)
        return h

    def set_group_var(self, group: str, key: Any, value: Any, where: Origin) -> None:
        key = var_name(key, where)
        g = self.groups[group]
        if key == "ansible_group_priority":  # steers the merge order; not a variable (Ansible)
            try:
                g.priority = int(value)
            except (TypeError, ValueError, OverflowError):
                raise InputError(f"ansible_group_priority must be an integer, got {value!r}", where.path, where.line) from None
            return
        g.vars[key] = plain(value)
        g.origins[key] = where

    def set_host_var(self, host: str, key: Any, value: Any, where: Origin) -> None:
        key = var_name(key, where)
        h = self.hosts[host]
        h.vars[key] = plain(value)
        h.origins[key] = where

    # -- files

    def load_file(self, path: Path) -> None:
        """Parse one inventory file; the format comes from its extension (none: YAML if it is a mapping)."""
        text = yamlsrc.read_text(path, "inventory file")
        ext = path.suffix
        if ext == "" and text.startswith("#!") and os.access(path, os.X_OK):
            raise InputError("dynamic inventory scripts are not supported; save its --list output as a YAML file", path, 1)
        self.files.append(str(path))
        if ext in YAML_EXTENSIONS:
            read_yaml(self, load_yaml(text, path), str(path))
        elif ext in INI_EXTENSIONS:
            read_ini(self, text, str(path))
        else:  # no extension (or an unknown one given explicitly): YAML if it reads as a YAML mapping
            try:
                data = yamlsrc.loads(text, path)
            except InputError as exc:
                if exc.message.startswith(yamlsrc.LIMIT_PREFIX):
                    raise  # a bomb is refused, not re-read as INI
                data = None
            if isinstance(data, dict):
                read_yaml(self, data, str(path))
            else:
                read_ini(self, text, str(path))

    # -- group_vars / host_vars

    def _vars_files(self, vars_dir: Path, what: str, known: Iterable[str]) -> dict[str, list[Path]]:
        """group_vars/ or host_vars/ files per known name, as Ansible finds them; warns about strays."""
        base = vars_dir / what
        if not base.is_dir():
            return {}
        known = set(known)
        found: dict[str, list[Path]] = {}
        for name in sorted(known):
            if name.startswith("/"):
                continue
            for ext in VARS_EXTENSIONS:  # the first that exists wins, a directory included
                cand = base / (name + ext)
                if cand.is_dir():
                    found[name] = _vars_dir_files(cand)
                    break
                if cand.exists():
                    found[name] = [cand]
                    break
        for entry in _listing(base):
            stem, ext = os.path.splitext(entry)
            name = stem if ext in YAML_EXTENSIONS else entry
            if name not in known:
                noun = "group" if what == "group_vars" else "host"
                self.warnings.append(f"{base / entry}: no {noun} named {name!r} in the inventory; ignored")
        return found

    def finish(self, vars_dir: Path) -> Inventory:
        """Apply Ansible's reconcile rules, read group_vars/host_vars, merge every host's variables."""
        self._reconcile()
        for name, files in self._vars_files(vars_dir, "group_vars", self.groups).items():
            g = self.groups[name]
            for f in files:
                _load_vars_file(f, g.file_vars, g.file_origins, f"group_vars of {name!r}")
        for name, files in self._vars_files(vars_dir, "host_vars", self.hosts).items():
            h = self.hosts[name]
            for f in files:
                _load_vars_file(f, h.file_vars, h.file_origins, f"host_vars of {name!r}")
        for name in set(self.groups) & set(self.hosts):
            self.warnings.append(f"{name!r} is both a group and a host")
        depth = depths(self.groups)
        groups = {
            n: Group(
                name=n,
                hosts=list(g.hosts),
                children=list(g.children),
                parents=list(g.parents),
                vars={**g.vars, **g.file_vars},
                var_sources={k: str(o) for k, o in {**g.origins, **g.file_origins}.items()},
                depth=depth[n],
                priority=g.priority,
            )
            for n, g in self.groups.items()
        }
        member_of = self._memberships()
        above = {g: ancestors(self.groups, g) for g in self.groups}
        hosts = {n: self._host(h, depth, member_of[n], above) for n, h in self.hosts.items()}
        return Inventory(path=self.path, hosts=hosts, groups=groups, files=self.files, warnings=self.warnings)

    def _reconcile(self) -> None:
        """Ansible's rules after parsing: top groups hang under 'all'; 'ungrouped' holds hosts with no other group."""
        for name, g in self.groups.items():
            if name != "all" and not g.parents:
                self.add_child("all", name, Origin(self.path, None, "implicit"))
        ungrouped = self.groups["ungrouped"]
        member_of = self._memberships()
        for name in self.hosts:
            others = set(member_of[name]) - {"all", "ungrouped"}
            if others and name in ungrouped.host_set:
                ungrouped.hosts.remove(name)
                ungrouped.host_set.discard(name)
            elif not others and name not in ungrouped.host_set:
                ungrouped.hosts.append(name)
                ungrouped.host_set.add(name)

    def _memberships(self) -> dict[str, list[str]]:
        """Host name -> the groups it is a direct member of."""
        out: dict[str, list[str]] = {name: [] for name in self.hosts}
        for g in self.groups.values():
            for name in g.hosts:
                out[name].append(g.name)
        return out

    def _host(self, h: _HostState, depth: dict[str, int], direct: list[str], above: dict[str, set[str]]) -> Host:
        """One host's merged variables (Ansible's precedence) and its connection settings."""
        mine: set[str] = set()
        for g in direct:
            mine.add(g)
            mine.update(above[g])
        mine.discard("all")
        ordered = sorted(mine, key=lambda g: (depth[g], self.groups[g].priority, g))
        all_g = self.groups["all"]
        values: dict[str, Any] = {}
        sources: dict[str, Origin] = {}
        layers = (
            [(all_g.vars, all_g.origins)]
            + [(self.groups[g].vars, self.groups[g].origins) for g in ordered]
            + [(all_g.file_vars, all_g.file_origins)]
            + [(self.groups[g].file_vars, self.groups[g].file_origins) for g in ordered]
            + [(h.vars, h.origins), (h.file_vars, h.file_origins)]
        )
        for layer_vars, layer_origins in layers:
            values.update(layer_vars)
            sources.update(layer_origins)
        groups = ["all"] + ordered
        conn = ConnectionVars(h.name, values, sources, groups)
        return Host(
            name=h.name,
            address=conn.text(ADDRESS_VARS) or h.name,
            port=conn.port(),
            user=conn.text(USER_VARS),
            key_file=conn.path(KEY_VARS),
            known_hosts_file=conn.path(KNOWN_HOSTS_VARS),
            groups=groups,
            vars=values,
            var_sources={k: str(o) for k, o in sources.items()},
        )
