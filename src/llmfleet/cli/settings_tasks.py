"""`invoke vars`: a host's resolved settings and, with --explain, where each value came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from .. import paths

if TYPE_CHECKING:
    pass
from .common import console, print_json, run_task, task
from .deploy import HOST_HELP, parse_sets


@task(help={
    "hosts": HOST_HELP["hosts"],
    "inventory": HOST_HELP["inventory"],
    "playbook": "Whose playbook vars apply (default deploy)",
    "explain": "Show where each value came from and what it overrides",
    "all": "Also show the host's other variables (ansible_*, the operator's own)",
    "json": "Print {host: {name: {value, source, chain}}} on stdout",
    "set": HOST_HELP["set"],
}, iterable=["set"])  # fmt: skip
@run_task
def vars(c, hosts="", inventory=None, playbook="deploy", explain=False, all=False, json=False, set=None):  # noqa: A002
    """A host's resolved settings (role defaults < inventory < playbook vars < --set), checked."""
    from .. import playbook_run
    req = playbook_run.Request(playbook=playbook, hosts=hosts or "all", inventory=inventory or str(paths.default_inventory()),
                               mode="dry-run", cli_vars=parse_sets(set))  # fmt: skip
    prep = playbook_run.prepare(req)
    out: dict[str, Any] = {}
    for plan in prep.plans:
        resolved = plan.resolved
        names = sorted(resolved) if all else sorted(n for n in resolved if n in type(plan.settings).__struct_fields__)
        out[plan.host.name] = {
            n: {"value": resolved[n], "source": resolved.source(n),
                "chain": [{"layer": s.layer, "value": s.value, "where": s.where} for s in resolved.chain(n)]}
            for n in names
        }  # fmt: skip
    if json:
        print_json(out)
        return 0
    for host, settings in out.items():
        if explain:
            console.print(Text(f"{host}:", style="bold"))
            for name, info in settings.items():
                console.print(Text(f"  {resolved_line(name, info)}"), soft_wrap=True)
            continue
        table = Table(title=f"{host}: settings", title_justify="left")
        table.add_column("setting")
        table.add_column("value")
        table.add_column("layer")
        for name, info in settings.items():
            table.add_row(Text(name), Text(repr(info["value"])), Text(info["chain"][-1]["layer"]))
        console.print(table)
    return 0


def resolved_line(name: str, info: dict[str, Any]) -> str:
    """`name = value  <- source; overrides lower = value, ...` (what --explain prints)."""
    chain = info["chain"]
    text = f"{name} = {info['value']!r}  <- {info['source']}"
    if len(chain) > 1:
        text += "; overrides " + ", ".join(
            f"{s['layer']} ({s['where']}) = {s['value']!r}" if s["where"] else f"{s['layer']} = {s['value']!r}"
            for s in reversed(chain[:-1])
        )  # fmt: skip
    return text


TASKS: list = [vars]
