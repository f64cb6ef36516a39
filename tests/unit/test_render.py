"""The console shows what hosts and inventories say as plain text: no markup injection."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from llmfleet import runner
from llmfleet.cli import render
from llmfleet.steps import FAILED, Event, StepResult

HOSTILE = ["[/x]", "[bold red]owned[/]", "[link=http://example.invalid]x[/link]", "\x1b[31mred", ":warning:", "[", "]]"]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_in_every_event_kind_prints_as_it_is(text):
    out = io.StringIO()
    console = Console(file=out, width=300, emoji=False, color_system=None)
    emit = render.printer(console)
    result = StepResult(host=f"h{text}", role="r", step=f"s{text}", status=FAILED, message=f"remote said {text}")
    for event in (Event("step", result.host, result=result), Event("note", "h1", f"note {text}"),
                  Event("unreachable", "h1", f"gone {text}"), Event("locked", "h1", f"held {text}")):  # fmt: skip
        emit(event)
    report = runner.RunReport("deploy", "apply", "now", results=[result], recap={result.host: runner.HostRecap(failed=1, message=text)})
    render.print_failures(report, console)
    console.print(render.recap_table(report))
    shown = out.getvalue()
    printable = text.replace("\x1b", "\\x1b")  # control characters are shown, never sent raw
    assert "\x1b" not in shown
    assert f"remote said {printable}" in shown and f"note {printable}" in shown and f"held {printable}" in shown
