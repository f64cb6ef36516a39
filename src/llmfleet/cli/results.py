"""Tasks that read the local archive: parse, report, runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    pass
from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task, task


@task(help={"file": "a bench_serving log, its --output-file JSONL, or a few_shot_gsm8k log",
            "json": "print one JSON object (the metric keys of DESIGN.md)",
            "all_blocks": "every result block of the log, not only the last complete one"})
@run_task
def parse(c, file, json=False, all_blocks=False):
    """Parse a benchmark or GSM8K log into metrics."""
    from .. import metrics
    from ..report import plain
    path = Path(file)
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a regular file", path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    result = metrics.parse_named(path.name, text, all_blocks)
    if json:
        print_json(metrics.json_safe(result))  # valid JSON: no Infinity/NaN
    else:
        for i, block in enumerate(result if isinstance(result, list) else [result]):
            console.print(metrics_table(path.name + (f" block {i + 1}" if all_blocks else ""), block))
    if not result:
        console.print(Text(f"no metrics found in {plain(path)}", style="yellow"))
        return EXIT_FAILED
    return 0


def metrics_table(title: str, block: dict[str, Any]) -> Table:
    """One parsed block as a table; values from the log are Text, never markup."""
    from ..report import plain
    table = Table(title=Text(plain(title)), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in block.items():
        table.add_row(Text(plain(key)), Text("null" if value is None else plain(value)))
    return table


@task(help={"run": "run id, id prefix, run folder, or 'latest' (default); invoke has no optional positionals",
            "baseline": "'cookbook' (catalog/reference.yml) or another run id (two sessions compared)",
            "json": "print the comparison as JSON (fleet statistics and outliers under 'fleet')",
            "fail_on_regression": "exit 1 when any figure is a regression",
            "html": "also write a self-contained HTML report to this file",
            "per_host": "also print each host's table (the console shows the fleet view and its outliers)"})
@run_task
def report(c, run=None, baseline="cookbook", json=False, fail_on_regression=False, html=None, per_host=False):
    """Compare a run with the cookbook or another run: the fleet view and its outlier hosts; tables, JSON, HTML."""
    from .. import report as report_mod
    from ..report import plain
    rep = report_mod.build_report(run, baseline=baseline)
    if json:
        data = report_mod.report_json(rep)
        if html:
            data["html"] = str(report_mod.write_html(rep, html))
        print_json(data)
    else:
        report_mod.render_console(rep, console, per_host=per_host)
        if html:
            console.print(Text(f"html report: {plain(report_mod.write_html(rep, html))}"))
    if fail_on_regression and rep.regressions:
        console.print(f"[bold red]{len(rep.regressions)} regression(s)[/]")
        return EXIT_FAILED
    return 0


@task(help={"json": "print the list as JSON", "no_verify": "skip the checksum check of each run"})
@run_task
def runs(c, json=False, no_verify=False):
    """List archived runs, newest first (id, kind, model, hosts, status, verified)."""
    from .. import archive
    from .. import report as report_mod
    from ..report import plain
    rows = report_mod.runs_table(verify=not no_verify)
    if json:
        print_json(rows)
        return 0
    table = Table(title=Text(f"runs in {plain(archive.paths.archive_dir())}"), title_justify="left")
    for col in ("run", "kind", "model", "hosts", "status", "verified"):
        table.add_column(col)
    for r in rows:
        cells = (r["run_id"], r["kind"], r["model"], ", ".join(r["hosts"]), r["status"])
        table.add_row(*(Text(plain(c)) for c in cells), verified_cell(r["verified"], r["problems"]))
    console.print(table)
    return 0


def verified_cell(verified: bool | None, problems: list[str]) -> Text:
    """"yes", "-" (not checked) or "NO" with the first reason (the rest: `invoke runs --json`)."""
    from ..report import plain
    if verified is None:
        return Text("-")
    if verified:
        return Text("yes", style="green")
    cell = Text("NO", style="red")
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        cell.append(f": {plain(problems[0])}{more}")
    return cell


TASKS: list = [parse, report, runs]
