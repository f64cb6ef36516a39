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

Hosts of a group, and of a ``--hosts`` pattern, come in Ansible's order (the
group's own hosts, then its children's as declared); see ``selection``.

Where this is stricter than Ansible: a typo'd key, a malformed host entry or a
group Ansible would skip with a warning is an error here (file:line), because a
deploy against half an inventory is worse than no deploy. Input is bounded
(``yamlsrc``: size, nesting, aliases, regular files only).

Not supported: dynamic inventory scripts and inventory plugin configs, Ansible
Vault, Jinja in variables other than the connection ones (``ansible_host``,
``ansible_port``, ``ansible_user``, key and known_hosts files), which are
rendered sandboxed with the host's variables (``llmfleet.templating``).

Modules: ``model`` (Host, Group, Inventory, Origin), ``graph`` (group walks in
Ansible's order), ``patterns`` (ranges, pattern syntax), ``selection`` (``--hosts``),
``readers`` (YAML, INI), ``builder`` (files, merge, precedence), ``connection``
(ConnectionVars).
"""

from __future__ import annotations

from .builder import load_inventory
from .connection import ConnectionVars
from .model import DEFAULT_PORT, Group, Host, Inventory, Origin
from .patterns import expand_host_pattern, split_pattern
from .readers import ini_value

__all__ = [
    "DEFAULT_PORT",
    "ConnectionVars",
    "Group",
    "Host",
    "Inventory",
    "Origin",
    "expand_host_pattern",
    "ini_value",
    "load_inventory",
    "split_pattern",
]
