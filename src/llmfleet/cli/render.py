"""How a run looks on the console: the runner's events, the recap, dry-run commands.

Every value that comes from a host, an inventory or a message is put into rich
``Text`` as plain text: markup is ours only (no `[/x]` in a value can break a line).
"""

from __future__ import annotations

from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from .. import runner
from ..report import plain
from ..steps import CHANGED, FAILED, OK, SKIPPED, Event

_STYLE = {OK: "green", CHANGED: "yellow", FAILED: "bold red", SKIPPED: "dim"}


def safe(text: str) -> str:
    """Remote or inventory text for the terminal: lines kept, control and bidi characters shown escaped."""
    return "\n".join(plain(line) for line in text.split("\n"))


def event_text(event: Event) -> Text:
    """One console line for one runner event."""
    line = Text(safe(event.host), style="bold")
    line.append(" ")
    if event.kind == "unreachable":
        line.append("UNREACHABLE ", style="red")
        line.append(safe(event.text))
    elif event.kind == "locked":
        line.append("locked ", style="bold red")
        line.append(safe(event.text))
    elif event.kind == "step" and event.result is not None:
        r = event.result
        label = r.status if event.mode == "apply" or r.status != CHANGED else "would change"
        line.append(safe(f"{r.role} : {r.step} "))
        line.append(label, style=_STYLE[r.status])
        if r.message:
            line.append(safe(f" - {r.message}"))
        if r.duration_s >= 1:
            line.append(f" ({r.duration_s:.1f}s)", style="dim")
    else:
        line.append(safe(event.text), style="dim" if event.text.startswith("still ") else "")
    return line


def printer(console: Console) -> Callable[[Event], None]:
    """The runner's `emit`: print each event as it comes."""

    def emit(event: Event) -> None:
        console.print(event_text(event), soft_wrap=True, highlight=False)

    return emit


def transfer_progress(console: Console) -> Progress:
    """Per-host progress bars for long transfers (image pushes)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=console, transient=True,
    )  # fmt: skip


def recap_table(report: runner.RunReport) -> Table:
    table = Table(title=f"recap: {report.playbook} ({report.mode}, {report.duration_s:.1f}s)", title_justify="left")
    for col in ("host", "ok", "changed", "failed", "skipped", "unreachable", "note"):
        table.add_column(col, justify="right" if col in ("ok", "changed", "failed", "skipped") else "left")
    for host, r in report.recap.items():
        style = "red" if not r.success else ("yellow" if r.changed else "green")
        note = r.message.splitlines()[0][:100] if r.message else ""
        table.add_row(
            Text(safe(host), style=style), str(r.ok), str(r.changed), str(r.failed), str(r.skipped),
            "yes" if r.unreachable else "no", Text(safe(note)),
        )  # fmt: skip
    return table


def print_dry_run(report: runner.RunReport, console: Console) -> None:
    """Each host's exact commands, in order (what `--dry-run` promises)."""
    by_host: dict[str, list[str]] = {}
    for r in report.results:
        by_host.setdefault(r.host, []).extend(r.commands)
    for host, commands in by_host.items():
        console.print(Text("\n" + safe(host), style="bold"))
        for i, cmd in enumerate(commands, 1):
            console.print(Text(f"  {i:>2}. {safe(cmd)}"), soft_wrap=True, highlight=False)


def print_failures(report: runner.RunReport, console: Console) -> None:
    """Full messages of failed steps (the recap shows one line)."""
    for r in report.results:
        if r.status == FAILED:
            head = Text(f"\n{safe(r.host)} {safe(r.role)} : {safe(r.step)} failed", style="bold red")
            console.print(head, Text("\n  " + safe(r.message)), sep="", soft_wrap=True)
