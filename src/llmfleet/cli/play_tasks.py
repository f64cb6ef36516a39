"""`invoke play`: run any playbook, the shipped ones or an operator's own (docs/playbooks.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from ..steps import Event
from ..errors import InputError
from .common import console, run_task, task
from .deploy import HOST_HELP, _finish, _mode, _num, parse_sets

_DIFF_STYLE = {"+": "green", "-": "red", "@": "cyan"}


def diff_text(text: str) -> Text:
    """A unified diff as plain text (never markup), added lines green, removed red."""
    out = Text()
    for line in text.splitlines(keepends=True):
        style = "bold" if line.startswith(("+++", "---")) else _DIFF_STYLE.get(line[:1], "")
        out.append(line, style=style)
    return out


def play_printer(con: Console) -> Callable[[Event], None]:
    """The runner's events as `render.printer` prints them, diffs as coloured text."""
    from . import render
    plain = render.printer(con)

    def emit(event: Event) -> None:
        if event.kind == "diff":
            con.print(Text(f"{event.host} diff:", style="bold"), diff_text(event.text), sep="\n", end="",
                      soft_wrap=True, highlight=False)  # fmt: skip
        else:
            plain(event)

    return emit


@task(
    help={
        **HOST_HELP,
        "playbook": "A playbook file (any path; its roles are looked up in <its folder>/roles, then roles/) "
                    "or the name of a shipped one (deploy, host-tuning, ...)",
        "check": "Connect, report what would change, change nothing",
        "diff": "Show unified diffs of the files that change (or would, with --check); secrets masked",
        "dry_run": "Connect to nothing; print each host's commands",
    },
    iterable=["set"],
)
@run_task
def play(c, playbook="", hosts="", inventory=None, check=False, diff=False, dry_run=False, json=False, serial=None,
         forks=None, hf_token_file=None, set=None):  # fmt: skip
    """Run a playbook on the hosts: the same runner, recap, archive, lock and audit as deploy."""
    from .. import playbook_run, runner
    from . import render
    if not playbook:
        raise InputError("--playbook is required: a playbook file, or a shipped playbook's name")
    n_forks = _num(forks, "forks")
    req = playbook_run.Request(
        playbook=playbook,
        hosts=hosts or "all",
        inventory=inventory,
        mode=_mode(dry_run, check),
        cli_vars=parse_sets(set),
        forks=runner.DEFAULT_FORKS if n_forks is None else n_forks,
        serial=str(serial) if serial not in (None, "") else None,
        hf_token_file=hf_token_file,
        diff=bool(diff),
    )
    say: Callable[[str], Any] = lambda text: console.print(text, markup=False)
    report = playbook_run.execute(req, play_printer(console), say, progress=render.transfer_progress(console))
    return _finish(report, json)


TASKS = [play]
