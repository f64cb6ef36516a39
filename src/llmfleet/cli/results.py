"""Tasks that read the local archive: parse, report, runs."""

from __future__ import annotations

from pathlib import Path

from invoke import task
from rich.table import Table

from .. import archive, metrics, report as report_mod
from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task


@task(help={"file": "a bench_serving log, its --output-file JSONL, or a few_shot_gsm8k log",
            "json": "print one JSON object (the metric keys of DESIGN.md)",
            "all_blocks": "every result block of the log, not only the last complete one"})
@run_task
def parse(c, file, json=False, all_blocks=False):
    """Parse a benchmark or GSM8K log into metrics."""
    path = Path(file)
    if not path.is_file():
        raise InputError("no such file", path)
    if all_blocks:
        text = path.read_text(encoding="utf-8", errors="replace")
        result = (metrics.parse_jsonl(text) if path.suffix in (".jsonl", ".json") else metrics.parse_blocks(text))
    else:
        result = metrics.parse_file(path)
    if json:
        print_json(result)
        return 0
    for i, block in enumerate(result if isinstance(result, list) else [result]):
        table = Table(title=f"{path.name}" + (f" block {i + 1}" if all_blocks else ""), title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in block.items():
            table.add_row(key, "null" if value is None else str(value))
        console.print(table)
    if not result:
        console.print(f"[yellow]no metrics found in {path}[/]")
        return EXIT_FAILED
    return 0


@task(help={"run": "run id, id prefix, run folder, or 'latest' (default); invoke has no optional positionals",
            "baseline": "'cookbook' (catalog/reference.yml) or another run id",
            "json": "print the comparison as JSON",
            "fail_on_regression": "exit 1 when any figure is a regression",
            "html": "also write a self-contained HTML report to this file"})
@run_task
def report(c, run=None, baseline="cookbook", json=False, fail_on_regression=False, html=None):
    """Compare a run with the cookbook or another run: tables, JSON, HTML."""
    rep = report_mod.build_report(run, baseline=baseline)
    if json:
        data = report_mod.report_json(rep)
        if html:
            data["html"] = str(report_mod.write_html(rep, html))
        print_json(data)
    else:
        report_mod.render_console(rep, console)
        if html:
            console.print(f"html report: {report_mod.write_html(rep, html)}")
    if fail_on_regression and rep.regressions:
        console.print(f"[bold red]{len(rep.regressions)} regression(s)[/]")
        return EXIT_FAILED
    return 0


@task(help={"json": "print the list as JSON", "no_verify": "skip the checksum check of each run"})
@run_task
def runs(c, json=False, no_verify=False):
    """List archived runs, newest first (id, kind, model, hosts, status, verified)."""
    rows = report_mod.runs_table(verify=not no_verify)
    if json:
        print_json(rows)
        return 0
    table = Table(title=f"runs in {archive.paths.archive_dir()}", title_justify="left")
    for col in ("run", "kind", "model", "hosts", "status", "verified"):
        table.add_column(col)
    for r in rows:
        verified = "-" if r["verified"] is None else ("[green]yes[/]" if r["verified"] else "[red]NO[/]")
        table.add_row(r["run_id"], r["kind"], r["model"], ", ".join(r["hosts"]), r["status"], verified)
    console.print(table)
    return 0


TASKS: list = [parse, report, runs]
