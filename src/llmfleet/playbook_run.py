"""One playbook run from the command line's point of view: load, run, archive, report.

The tasks in ``llmfleet.cli`` call :func:`execute`; it owns the order of things
(validate all input before connecting, archive atomically, recap at the end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from . import __version__, archive, catalog, inventory, paths, playbook, runner, secrets, shell, variables
from .actions import ACTIONS, ARGS


@dataclass
class Request:
    playbook: str
    hosts: str
    inventory: str | None = None
    mode: str = "apply"  # apply | check | dry-run
    cli_vars: dict[str, Any] = field(default_factory=dict)
    forks: int = 32
    serial: str | None = None
    hf_token_file: str | None = None
    archive: bool = True


def _resolver(role_defaults: dict, host: Any, pb_vars: dict, cli_vars: Mapping[str, Any]) -> Mapping[str, Any]:
    return variables.resolve(role_defaults, host, pb_vars, dict(cli_vars))


def execute(req: Request, console: Console) -> runner.RunReport:
    """Validate everything, run the playbook on the selected hosts, archive, and return the report."""
    cat = catalog.load()
    pb = playbook.load_playbook(req.playbook, ARGS)
    inv = inventory.load_inventory(req.inventory or paths.default_inventory())
    hosts = inv.select(req.hosts)
    cli_vars = {k: v for k, v in req.cli_vars.items() if v is not None}
    if "model" in cli_vars:
        cat.model(str(cli_vars["model"]))  # unknown model: exit 2 before any connection
    for h in hosts:
        hw = h.vars.get("hardware")
        if hw:
            cat.hw(str(hw))
    token = secrets.load_hf_token(token_file=req.hf_token_file)
    ctx = runner.RunContext(
        playbook=pb,
        catalog=cat,
        mode=req.mode,
        cli_vars=cli_vars,
        resolve_vars=_resolver,
        secrets=[token] if token else [],
        emit=lambda line: console.print(line, highlight=False, soft_wrap=True),
    )
    ctx.shared["hf_token"] = token
    console.print(
        f"[bold]{pb.name}[/] on {len(hosts)} host(s): {', '.join(h.name for h in hosts)}"
        + (f"  [yellow]({req.mode}: nothing will be changed)[/]" if req.mode != "apply" else "")
    )
    if req.mode == "dry-run" or not req.archive:
        return runner.run(ctx, hosts, ACTIONS, forks=req.forks, serial=req.serial)
    meta = {
        "kind": pb.name,
        "mode": req.mode,
        "model": cli_vars.get("model"),
        "hf_id": cat.model(str(cli_vars["model"])).hf_id if cli_vars.get("model") else None,
        "hosts": [h.name for h in hosts],
        "flags": {k: v for k, v in cli_vars.items() if k != "model"},
        "toolkit_version": __version__,
        "inventory": str(req.inventory or "inventory/"),
        # lab hosts simulate GPUs and model: their numbers must never pass for hardware results
        "simulated": all(h.vars.get("lab") is True for h in hosts),
    }
    with archive.new_run(meta) as run:
        ctx.run_id = run.run_id
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=console, transient=True,
        )  # fmt: skip
        ctx.shared["progress"] = progress
        with progress:
            report = runner.run(ctx, hosts, ACTIONS, forks=req.forks, serial=req.serial)
        for host, files in sorted(ctx.host_files.items()):
            for rel, data in sorted(files.items()):
                run.write(f"{host}/{rel}", data)
        run.write("events.jsonl", shell.mask(runner.events_jsonl(ctx.events), ctx.secrets))
        versions = {m.get("sglang_version") for m in ctx.host_meta.values()} - {None}
        run.update_meta(
            status="ok" if report.success else "failed",
            recap={h: r.as_json() for h, r in report.recap.items()},
            hosts={h.name: ctx.host_meta.get(h.name, {}) for h in hosts},
            sglang_version=versions.pop() if len(versions) == 1 else None,
            duration_s=round(report.duration_s, 3),
        )
        report.archive = str(paths.archive_dir() / run.run_id)
    return report


def recap_table(report: runner.RunReport) -> Table:
    table = Table(title=f"recap: {report.playbook} ({report.mode}, {report.duration_s:.1f}s)", title_justify="left")
    for col in ("host", "ok", "changed", "failed", "skipped", "unreachable", "note"):
        table.add_column(col, justify="right" if col in ("ok", "changed", "failed", "skipped") else "left")
    for host, r in report.recap.items():
        style = "red" if not r.success else ("yellow" if r.changed else "green")
        note = r.message.splitlines()[0][:100] if r.message else ""
        table.add_row(
            f"[{style}]{host}[/]", str(r.ok), str(r.changed), str(r.failed), str(r.skipped),
            "yes" if r.unreachable else "no", escape(note),
        )  # fmt: skip
    return table


def print_dry_run(report: runner.RunReport, console: Console) -> None:
    """Each host's exact commands, in order (what `--dry-run` promises)."""
    by_host: dict[str, list[str]] = {}
    for r in report.results:
        by_host.setdefault(r.host, []).extend(r.commands)
    for host, commands in by_host.items():
        console.print(f"\n[bold]{host}[/]")
        for i, cmd in enumerate(commands, 1):
            console.print(f"  {i:>2}. {escape(cmd)}", soft_wrap=True, highlight=False)


def failures(report: runner.RunReport, console: Console) -> None:
    """Full messages of failed steps (the recap shows one line)."""
    for r in report.results:
        if r.status == runner.FAILED:
            console.print(f"\n[bold red]{r.host} {r.role} : {r.step} failed[/]\n  {escape(r.message)}", soft_wrap=True)

