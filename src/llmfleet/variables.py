"""Variable precedence: the one order in which a host's variables are decided.

Lowest first; a higher layer replaces a lower one's value (whole values: dicts
are not merged, as in Ansible):

1. role defaults        ``roles/<role>/defaults.yml``
2. inventory            the host's merged inventory variables, itself in Ansible's
                        order: group ``all`` < parent groups < child groups (same
                        depth: ``ansible_group_priority``, then name) <
                        ``group_vars/all`` < other ``group_vars`` files < the host's
                        inventory vars < ``host_vars`` files (see ``llmfleet.inventory``)
3. playbook vars        ``vars:`` of ``playbooks/<name>.yml``
4. command line         flags the user actually gave (``--context-length 65536``)

A command-line value of ``None`` means "flag not given" and never overrides; in
the other layers ``None`` (a YAML ``key:`` with no value) is a value like any other.

Example: ``roles/sglang_server/defaults.yml`` says ``context_length: 131072``,
``group_vars/mi300-cluster.yml`` says ``65536``, the user passes nothing: the host
gets 65536, and ``.source("context_length")`` names the group_vars file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

if TYPE_CHECKING:
    from .inventory import Host

ROLE_DEFAULTS = "role defaults"
INVENTORY = "inventory"
PLAYBOOK = "playbook vars"
COMMAND_LINE = "command line"
LAYERS = (ROLE_DEFAULTS, INVENTORY, PLAYBOOK, COMMAND_LINE)  # lowest first


@dataclass(frozen=True)
class Setting:
    """One layer's value for a variable and where it was written."""

    layer: str
    value: Any
    where: str | None  # file:line (and group/host) when known; the flag for the command line

    def describe(self) -> str:
        return f"{self.layer} ({self.where})" if self.where else self.layer


class ResolvedVars(Mapping[str, Any]):
    """A host's final variables; each one knows which layer and file gave it."""

    def __init__(self, chains: dict[str, list[Setting]]):
        self._chains = chains  # per name, every layer that set it, lowest first

    def __getitem__(self, name: str) -> Any:
        return self._chains[name][-1].value

    def __iter__(self) -> Iterator[str]:
        return iter(self._chains)

    def __len__(self) -> int:
        return len(self._chains)

    def __repr__(self) -> str:
        return f"ResolvedVars({dict(self)!r})"

    def source(self, name: str) -> str:
        """Where the value in effect came from, e.g. ``inventory (inventory/x.yml:7 (group 'x'))``."""
        return self._chains[name][-1].describe()

    def layer(self, name: str) -> str:
        return self._chains[name][-1].layer

    def chain(self, name: str) -> list[Setting]:
        """Every layer that set ``name``, lowest first: the last one wins."""
        return list(self._chains[name])

    def explain(self, name: str) -> str:
        """One line for ``--explain``: the value, its source, and what it overrode."""
        chain = self._chains[name]
        text = f"{name} = {chain[-1].value!r} from {chain[-1].describe()}"
        if len(chain) > 1:
            text += "; overrides " + ", ".join(f"{s.describe()} = {s.value!r}" for s in reversed(chain[:-1]))
        return text


def resolve(
    role_defaults: Mapping[str, Any],
    host: Host | None,
    playbook_vars: Mapping[str, Any],
    cli_vars: Mapping[str, Any],
    default_sources: Mapping[str, str] | None = None,
) -> ResolvedVars:
    """Merge the four layers for one host (``host=None``: no inventory layer).

    ``default_sources`` names the file:line of each default when the defaults come
    from several files (``llmfleet.settings`` merges every role's).
    """
    chains: dict[str, list[Setting]] = {}

    def add(layer: str, name: str, value: Any, where: str | None) -> None:
        chains.setdefault(name, []).append(Setting(layer, value, where))

    for name, value in role_defaults.items():
        add(ROLE_DEFAULTS, name, value, (default_sources or {}).get(name) or _where(role_defaults, name))
    if host is not None:
        for name, value in host.vars.items():
            add(INVENTORY, name, value, host.var_sources.get(name))
    for name, value in playbook_vars.items():
        add(PLAYBOOK, name, value, _where(playbook_vars, name))
    for name, value in cli_vars.items():
        if value is not None:  # None: the flag was not given
            add(COMMAND_LINE, name, value, "--" + name.replace("_", "-"))
    return ResolvedVars(chains)


def _where(mapping: Mapping[str, Any], name: str) -> str | None:
    """file:line for mappings loaded with llmfleet.yamlsrc (they remember both)."""
    path = getattr(mapping, "path", None)
    if not path:
        return None
    line_of = getattr(mapping, "line_of", None)
    line = line_of(name) if line_of else None
    return f"{path}:{line}" if line else str(path)
