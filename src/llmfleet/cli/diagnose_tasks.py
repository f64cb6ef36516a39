"""`invoke diagnose`: why a server failed, from a pasted log (--log) or the hosts' containers (--hosts).

--json prints ``{"findings": [...]}`` for --log and ``{"hosts": {HOST: {"findings": [...], "status": ...}}}``
for --hosts (a host whose log could not be read has ``status`` failed/unreachable and an ``error``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

if TYPE_CHECKING:
    from .. import runner
from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task, task
from .deploy import _num, helps, parse_sets

LOG_TAIL_BYTES = 8 * 2**20  # a pasted log can be huge; the crash is at its end


def read_log(path: Path) -> str:
    """The last LOG_TAIL_BYTES of a log file as text (undecodable bytes replaced)."""
    if not path.is_file():
        raise InputError("no such file", path)
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - LOG_TAIL_BYTES))
        return f.read().decode("utf-8", errors="replace")


def print_findings(title: str, findings: list[dict[str, str]]) -> None:
    """Cause, fix and evidence per finding; log text is printed as plain text, never as markup."""
    if not findings:
        console.print(Text(f"{title}: no known failure signature in the log", style="yellow"))
        return
    for i, f in enumerate(findings, 1):
        line = Text(f"{title} ", style="bold")
        line.append(f"{i}. {f['cause']}", style="red" if i == 1 else "")
        line.append(f" [{f['signature']}]", style="dim")
        console.print(line)
        console.print(Text(f"   fix: {f['fix']}"))
        if f.get("evidence"):
            console.print(Text(f"   log: {f['evidence']}", style="dim"))


def host_findings(report: runner.RunReport) -> dict[str, dict[str, Any]]:
    """Per host: the findings of its diagnose step, or why there are none."""
    from .. import diagnose as diag
    out: dict[str, dict[str, Any]] = {}
    for host, rec in report.recap.items():
        entry: dict[str, Any] = {"findings": [], "status": "unreachable" if rec.unreachable else "ok"}
        if rec.failed:
            entry.update(status="failed", error=rec.message)
        elif rec.unreachable:
            entry["error"] = rec.message
        out[host] = entry
    for r in report.results:
        if r.host in out and r.status == "ok":
            out[r.host]["findings"] = diag.parse_step_message(r.message)
    return out


def _from_hosts(hosts: str, inventory: str | None, lines: Any, forks: Any, sets: list[str] | None, as_json: bool) -> int:
    from .. import playbook_run, runner
    from . import render
    cli_vars = {"log_lines": _num(lines, "lines"), **parse_sets(sets)}
    req = playbook_run.Request(playbook="diagnose", hosts=hosts or "all", inventory=inventory, mode="apply",
                               cli_vars={k: v for k, v in cli_vars.items() if v is not None},
                               forks=_num(forks, "forks") or runner.DEFAULT_FORKS, archive=False)  # fmt: skip
    report = playbook_run.execute(req, render.printer(console), lambda text: console.print(text, markup=False))
    per_host = host_findings(report)
    for host, entry in per_host.items():
        if entry["status"] == "ok":
            print_findings(host, entry["findings"])
    console.print(render.recap_table(report))
    if as_json:
        print_json({"hosts": per_host})
    return 0 if report.success else EXIT_FAILED


@task(
    help={
        **helps("hosts", "inventory", "forks", "set"),
        "log": "A server log file (e.g. one an operator pasted); diagnosed here, no host contacted",
        "lines": "With --hosts: how many of the container log's last lines to read (default 400)",
        "json": "Print one JSON object: {findings: [...]} for --log, {hosts: {HOST: {findings: [...]}}} for --hosts",
    },
    iterable=["set"],
)
@run_task
def diagnose(c, log=None, hosts="", inventory=None, lines=None, forks=None, json=False, set=None):
    """Why a server failed: cause, fix and the log line that says so (catalog/failure-signatures.yml)."""
    from .. import diagnose as diag
    if bool(log) == bool(hosts):
        raise InputError("diagnose needs exactly one of --log FILE or --hosts PATTERN")
    if hosts:
        return _from_hosts(hosts, inventory, lines, forks, set, json)
    path = Path(log)
    diag.load_signatures()  # a broken signature file is an input error here (exit 2), not a finding
    found = diag.diagnose(read_log(path))
    if json:
        print_json(diag.findings_json(found))
    else:
        print_findings(path.name, [d.to_json() for d in found])
    return 0


TASKS = [diagnose]
