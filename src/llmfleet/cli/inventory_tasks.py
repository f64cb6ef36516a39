"""`invoke hosts`: what a --hosts pattern selects, in the order a deploy works through it.

Like ``ansible PATTERN --list-hosts``, plus how each host is reached. --json prints
``{"pattern": P, "inventory": INV, "hosts": [{"name", "address", "port", "user", "groups"}]}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from .. import paths

if TYPE_CHECKING:
    from ..inventory import Host
from .common import console, print_json, run_task, task
from .deploy import helps


def host_rows(hosts: Sequence[Host]) -> list[dict[str, Any]]:
    """One JSON-ready row per host: name, how to reach it, its groups (without the implicit 'all')."""
    return [
        {"name": h.name, "address": h.address, "port": h.port, "user": h.user, "groups": [g for g in h.groups if g != "all"]}
        for h in hosts
    ]


def hosts_table(pattern: str, rows: list[dict[str, Any]]) -> Table:
    """The rows as a table; every cell is Text, so names from the inventory are never read as markup."""
    table = Table(title=Text(f"hosts ({len(rows)}) matching {pattern!r}"), title_justify="left")
    for column in ("#", "host", "address", "port", "user", "groups"):
        table.add_column(column)
    for i, row in enumerate(rows):
        cells = (str(i), row["name"], row["address"], str(row["port"]), row["user"] or "-", ", ".join(row["groups"]))
        table.add_row(*(Text(c) for c in cells))
    return table


@task(help=helps("hosts", "inventory", "json"))
@run_task
def hosts(c: Any, hosts: str = "all", inventory: str | None = None, json: bool = False) -> int:
    """List the hosts a pattern selects, in deploy order, with address, port and user."""
    from ..inventory import load_inventory
    path = inventory or str(paths.default_inventory())
    selected = load_inventory(path).select(hosts)
    rows = host_rows(selected)
    if json:
        print_json({"pattern": hosts, "inventory": path, "hosts": rows})
    else:
        console.print(hosts_table(hosts, rows))
    return 0


TASKS = [hosts]
