"""Ansible-compatible inventories: which hosts exist, how to reach them, their variables.

An existing Ansible inventory works unchanged. What is read, the way Ansible
(ansible-core 2.19) reads it:

* YAML (``all:`` / ``children:`` / ``hosts:`` / ``vars:``) and INI
  (``[group]``, ``[group:vars]``, ``[group:children]``, ``host key=value``),
  host ranges (``gpu[01:08].example.com``, ``10.0.0.[1:4]``, ``db-[a:f]``,
  ``www[01:50:2]``) and ``host:port``;
* a file, or a directory of them (``*.yml``, ``*.yaml``, ``*.json``, ``*.ini``
  and files without an extension, sorted by name, sub-directories too; groups of
  the same name merge);
* ``group_vars/<group>[.yml|.yaml|.json|/]`` and ``host_vars/<host>...`` beside
  the inventory file (or inside the inventory directory).

A host's variables merge in Ansible's order, lowest first: the ``all`` group's
inventory vars, the other groups' inventory vars (parents before children, same
depth by ``ansible_group_priority`` then name), ``group_vars/all``, the other
groups' ``group_vars`` files (same order), the host's inventory vars, its
``host_vars`` files. Dicts are replaced, not merged (Ansible's default).

Where this is stricter than Ansible: a typo'd key, a malformed host entry or a
group Ansible would skip with a warning is an error here (file:line), because a
deploy against half an inventory is worse than no deploy.

Not supported: dynamic inventory scripts and inventory plugin configs, Ansible
Vault, Jinja in variables other than the connection ones (``ansible_host``,
``ansible_port``, ``ansible_user``, key and known_hosts files), which are
rendered with the host's variables.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import ipaddress
import os
import re
import shlex
import string
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import yamlsrc
from .errors import InputError

YAML_EXTENSIONS = (".yml", ".yaml", ".json")
INI_EXTENSIONS = (".ini",)
VARS_EXTENSIONS = ("",) + YAML_EXTENSIONS  # Ansible tries them in this order
GROUP_KEYS = ("hosts", "children", "vars")
# Never inventory sources when found in an inventory directory (Ansible's IGNORED_ALWAYS).
SKIPPED_DIRS = {"group_vars", "host_vars", "vars_plugins"}

# Connection settings: when several aliases are set, the last one listed wins (Ansible's rule).
ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user")
KEY_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")
KNOWN_HOSTS_VARS = ("known_hosts_file",)
DEFAULT_PORT = 22


# --------------------------------------------------------------------------- model


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
        """All hosts of a group and its descendants, in inventory order."""
        names: set[str] = set()
        for g in _descendants(self.groups, group):
            names.update(self.groups[g].hosts)
        return [h for n, h in self.hosts.items() if n in names]

    def select(self, pattern: str) -> list[Host]:
        """The hosts a ``--hosts`` pattern names, in inventory order, each once.

        ``web`` (group or host), ``web,db`` or ``web:db``, globs (``gpu*``,
        ``*.example.com``), ``~regex``, ``!name`` excludes, ``&group`` intersects,
        ``all`` or ``*``, ``group[0]`` / ``group[0:3]`` subscripts. A part that
        matches nothing is an error (a typo must not deploy to fewer hosts than
        meant), except an exclusion; so is an empty result.
        """
        parts = split_pattern(pattern)
        if not parts:
            raise InputError(f"--hosts {pattern!r}: empty host pattern")
        selected: list[str] = []
        for part in _order_parts(parts):
            names, known = self._match_part(part)
            if not known and not part.startswith("!"):
                raise InputError(f"--hosts {pattern!r}: {part!r} matches no host or group{self._suggest(part)}")
            if part.startswith("!"):
                drop = set(names)
                selected = [n for n in selected if n not in drop]
            elif part.startswith("&"):
                keep = set(names)
                selected = [n for n in selected if n in keep]
            else:
                seen = set(selected)
                selected.extend(n for n in names if n not in seen)
        if not selected:
            raise InputError(f"--hosts {pattern!r} selects no hosts{self._known_groups()}")
        chosen = set(selected)
        return [h for n, h in self.hosts.items() if n in chosen]

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

    # -- pattern helpers

    def _match_part(self, part: str) -> tuple[list[str], bool]:
        """Host names one pattern part matches (ignoring its ! or & prefix), in inventory order,
        and whether it named anything at all (an empty group counts)."""
        bare = part[1:] if part[:1] in ("!", "&") else part
        if bare in self.hosts:
            return [bare], True
        # Like Ansible, a trailing [N] or [N:M] is a subscript, not a glob character class.
        expr, subscript = _split_subscript(bare)
        matcher = _compile_matcher(expr, part)
        names: set[str] = set()
        groups = [g for g in self.groups if matcher(g)]
        for g in groups:
            names.update(h.name for h in self.hosts_of(g))
        if not groups or expr.startswith("~") or any(c in expr for c in ".?*["):
            names.update(h for h in self.hosts if matcher(h))
        ordered = [n for n in self.hosts if n in names]
        known = bool(groups) or bool(ordered)
        if subscript is None or not ordered:
            return ordered, known
        start, end = subscript
        try:
            if end is None:
                return [ordered[start]], known
            return ordered[start : (len(ordered) if end == -1 else end + 1)], known
        except IndexError:
            raise InputError(f"--hosts: {part!r}: subscript out of range ({len(ordered)} hosts match {expr!r})") from None

    def _suggest(self, part: str) -> str:
        bare = part.lstrip("!&~")
        names = [n for n in list(self.groups) + list(self.hosts) if n != bare]
        close = difflib.get_close_matches(bare, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return hint + self._known_groups()

    def _known_groups(self) -> str:
        names = [g for g in self.groups if g != "ungrouped" or self.groups[g].hosts]
        shown = ", ".join(names[:30]) + (f", ... ({len(names) - 30} more)" if len(names) > 30 else "")
        return f"; groups in {self.path}: {shown}"


# --------------------------------------------------------------------------- loading


def load_inventory(path: str | Path) -> Inventory:
    """Read an inventory file or directory; raises InputError (file:line) on bad input."""
    src = Path(path)
    if not src.exists():
        raise InputError("inventory not found (give a file or directory with --inventory/-i)", src)
    b = _Builder(str(src))
    if src.is_dir():
        for f in _inventory_files(src):
            b.load_file(f)
        vars_dir = src
    else:
        b.load_file(src)
        vars_dir = src.parent
    return b.finish(vars_dir)


def _inventory_files(directory: Path) -> list[Path]:
    """Inventory sources in a directory, in Ansible's order: sorted names, recursing into sub-directories."""
    out: list[Path] = []
    for entry in sorted(os.listdir(directory)):
        p = directory / entry
        if entry.startswith(".") or entry.endswith("~"):
            continue
        if p.is_dir():
            if entry not in SKIPPED_DIRS:
                out.extend(_inventory_files(p))
        elif p.suffix in YAML_EXTENSIONS + INI_EXTENSIONS or p.suffix == "":
            out.append(p)
    return out


class _GroupState:
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
    def __init__(self, name: str):
        self.name = name
        self.vars: dict[str, Any] = {}
        self.origins: dict[str, Origin] = {}
        self.file_vars: dict[str, Any] = {}
        self.file_origins: dict[str, Origin] = {}


class _Builder:
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
        if child == parent or parent in _descendants_state(self.groups, child):
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
        key = _var_name(key, where)
        g = self.groups[group]
        if key == "ansible_group_priority":  # steers the merge order; not a variable (Ansible)
            try:
                g.priority = int(value)
            except (TypeError, ValueError):
                raise InputError(f"ansible_group_priority must be an integer, got {value!r}", where.path, where.line) from None
            return
        g.vars[key] = _plain(value)
        g.origins[key] = where

    def set_host_var(self, host: str, key: Any, value: Any, where: Origin) -> None:
        key = _var_name(key, where)
        h = self.hosts[host]
        h.vars[key] = _plain(value)
        h.origins[key] = where

    # -- files

    def load_file(self, path: Path) -> None:
        """Parse one inventory file; the format comes from its extension (none: YAML if it is a mapping)."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read inventory file: {getattr(exc, 'strerror', None) or exc}", path) from None
        ext = path.suffix
        if ext == "" and text.startswith("#!") and os.access(path, os.X_OK):
            raise InputError("dynamic inventory scripts are not supported; save its --list output as a YAML file", path, 1)
        self.files.append(str(path))
        if ext in YAML_EXTENSIONS:
            self._yaml(_load_yaml(text, path), path)
        elif ext in INI_EXTENSIONS:
            self._ini(text, path)
        else:  # no extension (or an unknown one given explicitly): YAML if it reads as a YAML mapping
            try:
                data = yamlsrc.loads(text, path)
            except InputError:
                data = None
            if isinstance(data, dict):
                self._yaml(data, path)
            else:
                self._ini(text, path)

    # -- YAML

    def _yaml(self, data: Any, path: Path) -> None:
        p = str(path)
        if data is None:  # an empty file adds nothing
            return
        if isinstance(data, str) and data.startswith("$ANSIBLE_VAULT"):
            raise InputError("Ansible Vault files are not supported", p, 1)
        if not isinstance(data, dict):
            raise InputError(
                f"a YAML inventory is a mapping of groups (all:, children:, hosts:, vars:), not a {_kind(data)}", p, 1
            )
        if "plugin" in data:
            raise InputError(
                f"inventory plugin configs (plugin: {data['plugin']}) are not supported; "
                "save `ansible-inventory -i FILE --list -y` as a static inventory",
                p,
                _line(data, "plugin"),
            )
        for name in data:
            self._yaml_group(name, data[name], data, p)

    def _yaml_group(self, name: Any, body: Any, container: Any, p: str) -> str:
        line = _line(container, name)
        if not isinstance(name, str) or not name:
            raise InputError(f"group name {name!r} must be a non-empty string (quote it)", p, line)
        self.add_group(name)
        if body is None:
            return name
        if not isinstance(body, dict):
            raise InputError(
                f"group {name!r} must be a mapping with hosts:, children: or vars:, not a {_kind(body)}", p, line
            )
        for key in body:
            if key not in GROUP_KEYS:
                close = difflib.get_close_matches(str(key), GROUP_KEYS, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else " (a group has hosts:, children: and vars:)"
                raise InputError(f"unknown key {key!r} in group {name!r}{hint}", p, _line(body, key))
        for key in body:  # in file order, as Ansible: host order follows the file
            section = body[key]
            kline = _line(body, key)
            if isinstance(section, str) and key != "vars":
                section = {section: None}  # Ansible allows `hosts: web1` for a single entry
            if section is None:
                continue
            if not isinstance(section, dict):
                what = "host names" if key == "hosts" else "group names" if key == "children" else "variables"
                raise InputError(
                    f"'{key}' of group {name!r} must be a mapping of {what} (each followed by ':'), not a {_kind(section)}",
                    p,
                    kline,
                )
            if key == "vars":
                for var in section:
                    self.set_group_var(name, var, section[var], Origin(p, _line(section, var, kline), f"group {name!r}"))
            elif key == "children":
                for sub in section:
                    child = self._yaml_group(sub, section[sub], section, p)
                    self.add_child(name, child, Origin(p, _line(section, sub, kline), f"group {name!r}"))
            else:
                for pattern in section:
                    self._yaml_host(pattern, section[pattern], name, p, _line(section, pattern, kline))
        return name

    def _yaml_host(self, pattern: Any, hvars: Any, group: str, p: str, line: int | None) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise InputError(f"host name {pattern!r} in group {group!r} must be a string (quote it)", p, line)
        if hvars is not None and not isinstance(hvars, dict):
            hint = f" (for its address write 'ansible_host: {hvars}')" if isinstance(hvars, (str, int)) else ""
            raise InputError(
                f"host {pattern!r} in group {group!r} must map to its variables (or nothing), not a {_kind(hvars)}{hint}",
                p,
                line,
            )
        names, port = expand_host_pattern(pattern, p, line)
        own: dict[Any, Any] = hvars or {}
        for n in names:
            self.add_host(n, group, port, Origin(p, line, f"host {n!r}"))
            for k in own:
                self.set_host_var(n, k, own[k], Origin(p, _line(own, k, line), f"host {n!r}"))

    # -- INI

    def _ini(self, text: str, path: Path) -> None:
        p = str(path)
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
                if state not in ("hosts", "children", "vars"):
                    raise InputError(f"section [{group}:{state}] has unknown type {state!r} (use :vars or :children)", p, lineno)
                if group not in self.groups:
                    if state == "vars" and group not in pending:
                        pending[group] = ["vars", lineno, []]
                    self.add_group(group)
                if group in pending and state != "vars":
                    kind, where, parents = pending.pop(group)
                    for parent in parents if kind == "children" else ():
                        self.add_child(parent, group, Origin(p, where, f"group {parent!r}"))
                continue
            if line.startswith("[") and line.endswith("]"):
                raise InputError(
                    f"invalid section header {line!r} (no spaces; [name], [name:vars] or [name:children])", p, lineno
                )
            if state == "hosts":
                self._ini_host(line, group, p, lineno)
            elif state == "vars":
                if "=" not in line:
                    raise InputError(f"expected key=value in [{group}:vars], got {line!r}", p, lineno)
                key, value = (s.strip() for s in line.split("=", 1))
                self.set_group_var(group, key, ini_value(value), Origin(p, lineno, f"group {group!r}"))
            else:
                cm = _INI_GROUPNAME.match(line)
                if not cm:
                    raise InputError(f"expected a group name in [{group}:children], got {line!r}", p, lineno)
                child = cm.group(1)
                if child in self.groups:
                    self.add_child(group, child, Origin(p, lineno, f"group {group!r}"))
                else:
                    pending.setdefault(child, ["children", lineno, []])[2].append(group)
        for name, (kind, lineno, parents) in pending.items():
            if kind == "vars":
                raise InputError(f"[{name}:vars] for a group that is not defined", p, lineno)
            raise InputError(f"[{parents[-1]}:children] names unknown group {name!r}", p, lineno)

    def _ini_host(self, line: str, group: str, p: str, lineno: int) -> None:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InputError(f"cannot parse host line {line!r}: {exc}", p, lineno) from None
        if not tokens:
            return
        if tokens[0] == "---":
            raise InputError("'---' is not a host; this looks like a YAML file (name it .yml)", p, lineno)
        names, port = expand_host_pattern(tokens[0], p, lineno)
        if tokens[0].endswith(":") and port is None:
            raise InputError(f"host {tokens[0]!r} ends in ':' without a port", p, lineno)
        hvars: dict[str, Any] = {}
        for tok in tokens[1:]:
            if "=" not in tok:
                raise InputError(f"expected key=value after host {tokens[0]!r}, got {tok!r}", p, lineno)
            key, value = tok.split("=", 1)
            hvars[key] = ini_value(value)
        for n in names:
            self.add_host(n, group, port, Origin(p, lineno, f"host {n!r}"))
            for key, value in hvars.items():
                self.set_host_var(n, key, value, Origin(p, lineno, f"host {n!r}"))

    # -- group_vars / host_vars

    def _vars_files(self, vars_dir: Path, kind: str, known: Iterable[str]) -> dict[str, list[Path]]:
        """group_vars/ or host_vars/ files per known name, as Ansible finds them; warns about strays."""
        base = vars_dir / kind
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
                if cand.is_file():
                    found[name] = [cand]
                    break
        for entry in sorted(os.listdir(base)):
            if entry.startswith(".") or entry.endswith("~"):
                continue
            stem, ext = os.path.splitext(entry)
            name = stem if ext in YAML_EXTENSIONS else entry
            if name not in known:
                what = "group" if kind == "group_vars" else "host"
                self.warnings.append(f"{base / entry}: no {what} named {name!r} in the inventory; ignored")
        return found

    def finish(self, vars_dir: Path) -> Inventory:
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
        depth = _depths(self.groups)
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
        ancestors = {g: _ancestors_state(self.groups, g) for g in self.groups}
        hosts = {n: self._host(h, depth, member_of[n], ancestors) for n, h in self.hosts.items()}
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

    def _host(self, h: _HostState, depth: dict[str, int], direct: list[str], ancestors: dict[str, set[str]]) -> Host:
        mine: set[str] = set()
        for g in direct:
            mine.add(g)
            mine.update(ancestors[g])
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
        conn = _Connection(h.name, values, sources, groups)
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


class _Connection:
    """Reads a host's connection settings from its merged variables; bad values name their origin."""

    def __init__(self, name: str, values: dict[str, Any], sources: dict[str, Origin], groups: list[str]):
        self.name, self.values, self.sources, self.groups = name, values, sources, groups

    def _pick(self, names: tuple[str, ...]) -> tuple[str, Any] | None:
        found = None
        for n in names:  # the last alias set wins, as in Ansible
            if self.values.get(n) is not None:
                found = (n, self.values[n])
        return found

    def _fail(self, var: str, message: str) -> InputError:
        o = self.sources.get(var)
        return InputError(f"host {self.name!r}: {message}", o.path if o else None, o.line if o else None)

    def _render(self, var: str, value: Any) -> str:
        text = str(value)
        if "{{" not in text and "{%" not in text:
            return text
        import jinja2

        env = jinja2.Environment(undefined=jinja2.StrictUndefined)
        context = dict(self.values)
        context.update(
            inventory_hostname=self.name,
            inventory_hostname_short=self.name.split(".")[0],
            group_names=[g for g in self.groups if g not in ("all", "ungrouped")],
        )
        for _ in range(10):  # a var may point at another templated var
            try:
                text = env.from_string(text).render(context)
            except jinja2.TemplateError as exc:
                raise self._fail(var, f"cannot render {var}: {exc}") from None
            if "{{" not in text and "{%" not in text:
                return text
        raise self._fail(var, f"{var} does not resolve (templates refer to each other in a loop?)")

    def text(self, names: tuple[str, ...]) -> str | None:
        got = self._pick(names)
        return self._render(*got) if got else None

    def path(self, names: tuple[str, ...]) -> str | None:
        value = self.text(names)
        return os.path.expanduser(value) if value else None

    def port(self) -> int:
        got = self._pick(PORT_VARS)
        if got is None:
            return DEFAULT_PORT
        var, raw = got
        if isinstance(raw, bool):
            raise self._fail(var, f"{var} must be a port number, not {raw!r}")
        value = self._render(var, raw) if isinstance(raw, str) else raw
        try:
            port = int(str(value).strip())
        except ValueError:
            raise self._fail(var, f"{var} must be a port number (1-65535), got {raw!r}") from None
        if not 1 <= port <= 65535:
            raise self._fail(var, f"{var} must be a port number (1-65535), got {raw!r}")
        return port


# --------------------------------------------------------------------------- pieces


def _load_yaml(text: str, path: Path) -> Any:
    try:
        return yamlsrc.loads(text, path)
    except InputError as exc:
        if "!vault" in exc.message:
            raise InputError("Ansible Vault values (!vault) are not supported", exc.path, exc.line) from None
        raise


def _load_vars_file(path: Path, into: dict[str, Any], origins: dict[str, Origin], owner: str) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read variables file: {getattr(exc, 'strerror', None) or exc}", path) from None
    data = _load_yaml(text, path)
    if data is None:
        return
    if isinstance(data, str) and data.startswith("$ANSIBLE_VAULT"):
        raise InputError("Ansible Vault files are not supported", path, 1)
    if not isinstance(data, dict):
        raise InputError(f"a variables file must be a mapping of names to values, not a {_kind(data)}", path, 1)
    for key in data:
        where = Origin(str(path), _line(data, key), owner)
        into[_var_name(key, where)] = _plain(data[key])
        origins[key] = where


def _vars_dir_files(directory: Path) -> list[Path]:
    """Files of a group_vars/<group>/ directory: sorted, recursive, YAML extensions or none."""
    out: list[Path] = []
    for entry in sorted(os.listdir(directory)):
        p = directory / entry
        if entry.startswith(".") or entry.endswith("~"):
            continue
        if p.is_dir() and not p.suffix:
            out.extend(_vars_dir_files(p))
        elif p.is_file() and p.suffix in VARS_EXTENSIONS:
            out.append(p)
    return out


def _line(container: Any, key: Any, default: int | None = None) -> int | None:
    getter = getattr(container, "line_of", None)
    line = getter(key) if getter else None
    return line if line is not None else default


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _var_name(key: Any, where: Origin) -> str:
    if not isinstance(key, str) or not key:
        raise InputError(f"variable name {key!r} must be a non-empty string", where.path, where.line)
    return key


def _plain(value: Any) -> Any:
    """Plain dicts and lists (no line bookkeeping) for values that outlive loading."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def ini_value(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal if it parses as one, else the string.

    ``8080`` is an int, ``True`` a bool, ``'03'`` a string; ``03`` and ``a b``
    stay strings. Tuples and sets become lists; what YAML cannot hold becomes a string.
    """
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = text
    return _ini_coerce(value)


def _ini_coerce(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_ini_coerce(v) for v in value]
    if isinstance(value, dict):
        return {_ini_coerce(k): _ini_coerce(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_GROUPNAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")

# Host patterns. A range is [begin:end] or [begin:end:step]; a port is ':N' after a
# host (an IPv6 address needs brackets for one: [fe80::1]:22).
_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+|[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I | re.UNICODE)
_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")


def _is_address(text: str) -> bool:
    """A hostname, IPv4 or IPv6 address, ranges allowed (Ansible's parse_address test)."""
    if _HOSTNAME.match(text):
        return True
    plain = re.sub(_RANGE, "0", text, flags=re.I)
    try:
        ipaddress.ip_address(plain)
        return True
    except ValueError:
        return False


def _split_port(pattern: str) -> tuple[str, int | None]:
    host, port = pattern, None
    for regex in (_BRACKETED_PORT, _HOST_PORT):
        m = regex.match(host)
        if m:
            host, port = m.group(1), int(m.group(2))
    if not _is_address(host):
        return pattern, None  # not host[:port]: Ansible then takes the text as the name
    return host, port


def expand_host_pattern(pattern: str, path: str | None = None, line: int | None = None) -> tuple[list[str], int | None]:
    """``gpu[01:03]:2222`` -> (['gpu01', 'gpu02', 'gpu03'], 2222), as Ansible expands it."""
    host, port = _split_port(pattern)
    if "[" not in host:
        return [host], port
    try:
        return _expand_ranges(host), port
    except ValueError as exc:
        raise InputError(f"bad host range in {pattern!r}: {exc}", path, line) from None


def _expand_ranges(name: str) -> list[str]:
    start = name.index("[")
    end = name.find("]", start)
    if end < 0:
        raise ValueError("'[' without ']'")
    head, spec, tail = name[:start], name[start + 1 : end], name[end + 1 :]
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
        items: list[str] = list(letters[letters.index(beg) : letters.index(stop) + 1 : step])
    else:
        if not (beg.isdigit() and stop.isdigit()):
            raise ValueError(f"{spec!r} is neither a numeric nor a single-letter range")
        items = [str(i).zfill(width) for i in range(int(beg), int(stop) + 1, step)]
    if not items:  # Ansible silently adds no host; a range that names nothing is a mistake
        raise ValueError("the range is empty (begin after end?)")
    out: list[str] = []
    for item in items:
        expanded = head + item + tail
        out.extend(_expand_ranges(expanded) if "[" in expanded else [expanded])
    return out


# -- patterns


_PATTERN_PART = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")


def split_pattern(pattern: str) -> list[str]:
    """Split ``--hosts`` text into parts: on commas, else on colons unless it is one host[:port]/IPv6."""
    pattern = pattern.strip()
    if "," in pattern:
        parts = pattern.split(",")
    elif pattern and _split_port(pattern) != (pattern, None) or _is_address(pattern):
        parts = [pattern]
    else:
        parts = _PATTERN_PART.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def _order_parts(parts: list[str]) -> list[str]:
    """Plain parts first, then &intersections, then !exclusions (Ansible's order); only !x means all!x."""
    plain = [p for p in parts if p[0] not in "!&"]
    inter = [p for p in parts if p[0] == "&"]
    excl = [p for p in parts if p[0] == "!"]
    return (plain or ["all"]) + inter + excl


def _split_subscript(expr: str) -> tuple[str, tuple[int, int | None] | None]:
    if expr.startswith("~"):
        return expr, None
    m = _SUBSCRIPT.match(expr)
    if not m:
        return expr, None
    base, index, start, _sep, end = m.groups()
    if index is not None:
        return base, (int(index), None)
    return base, (int(start), int(end) if end else -1)


def _compile_matcher(expr: str, part: str):
    try:
        regex = re.compile(expr[1:]) if expr.startswith("~") else re.compile(fnmatch.translate(expr))
    except re.error as exc:
        raise InputError(f"--hosts: {part!r} is not a valid pattern: {exc}") from None
    return lambda name: regex.match(name) is not None


# -- graph helpers


def _descendants(groups: dict[str, Any], name: str) -> list[str]:
    out, todo = [name], [name]
    while todo:
        for child in groups[todo.pop()].children:
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def _descendants_state(groups: dict[str, _GroupState], name: str) -> set[str]:
    return set(_descendants(groups, name)) - {name}


def _ancestors_state(groups: dict[str, _GroupState], name: str) -> set[str]:
    out: set[str] = set()
    todo = [name]
    while todo:
        for parent in groups[todo.pop()].parents:
            if parent not in out:
                out.add(parent)
                todo.append(parent)
    return out


def _depths(groups: dict[str, _GroupState]) -> dict[str, int]:
    """Longest path from 'all' (Ansible's group depth): parents merge before children."""
    memo: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in memo:
            parents = groups[name].parents
            memo[name] = 0 if not parents else max(depth(p) for p in parents) + 1
        return memo[name]

    return {name: depth(name) for name in groups}
