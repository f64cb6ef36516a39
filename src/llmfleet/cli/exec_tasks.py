"""`invoke exec`: one ad-hoc command on every matched host at once (Ansible's `ansible PATTERN -a CMD`).

A direct path, not a playbook: connections opened in parallel (forks), one channel per
host, output grouped per host. The inventory's connection settings and host keys are the
same as a deploy's (``endpoint.host_endpoint``); secrets are masked by the redacting
streams every task writes through. No deploy lock: an ad-hoc command changes nothing the
toolkit manages (use a playbook for that).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text

from .. import paths
from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task, task
from .deploy import _num, helps, parse_sets

if TYPE_CHECKING:
    from ..endpoint import Endpoint
    from ..runner import Connect

FORKS = 32  # the engine's default (runner.DEFAULT_FORKS; a unit test keeps them equal), without loading it


@dataclass
class HostOutput:
    """What one host answered; rc None when it was unreachable (stderr says why)."""

    rc: int | None
    stdout: str
    stderr: str
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def as_json(self) -> dict[str, Any]:
        return {"rc": self.rc, "stdout": self.stdout, "stderr": self.stderr, "unreachable": self.rc is None}


def targets(hosts: str, inventory_path: str | None, cli_vars: Mapping[str, Any] | None = None) -> list[tuple[Endpoint, int]]:
    """Each matched host's endpoint, built and checked exactly as for a deploy (before anything connects),
    and its `ssh_control_persist` (seconds a shared connection stays open)."""
    from .. import settings
    from ..endpoint import host_endpoint
    from ..inventory import load_inventory

    inv = load_inventory(inventory_path or paths.default_inventory())
    found = []
    for h in inv.select(hosts):
        hs = settings.for_host(h, {}, dict(cli_vars or {}))
        found.append((host_endpoint(h, hs.settings.known_hosts_file, hs.resolved), hs.settings.ssh_control_persist))
    return found


def run_one(endpoint: Endpoint, command: str, timeout: float | None, connect: Connect | None, persist_s: int = 0) -> HostOutput:
    """One host's answer: through `ssh` when it can (see :mod:`llmfleet.sshcli`), else the engine's transport."""
    from .. import sshcli
    start = time.monotonic()
    if connect is None and sshcli.usable(endpoint):
        answer = sshcli.run(endpoint, command, timeout, persist_s)
        return HostOutput(answer.rc, answer.stdout, answer.stderr, time.monotonic() - start)
    from ..runner import connect_ssh
    from ..transport import Unreachable
    try:
        session = (connect or connect_ssh)(endpoint)
    except Unreachable as exc:
        return HostOutput(None, "", str(exc), time.monotonic() - start)
    try:
        result = session.run(command, timeout=timeout)
        return HostOutput(result.exit_code, result.stdout, result.stderr, time.monotonic() - start)
    except Unreachable as exc:
        return HostOutput(None, "", str(exc), time.monotonic() - start)
    finally:
        session.close()


def run_everywhere(eps: Sequence[Endpoint], command: str, forks: int = FORKS, timeout: float | None = None,
                   connect: Connect | None = None, persist: Mapping[str, int] | None = None) -> dict[str, HostOutput]:  # fmt: skip
    """Every host's answer, in inventory order; one host's failure never stops the others.

    ``connect`` given (a test's scripted network): every host through it, never `ssh`.
    ``persist``: per host, seconds its shared `ssh` connection stays open (none: not shared).
    """
    if not command.strip():
        raise InputError("--cmd is empty")
    if forks < 1:
        raise InputError(f"--forks takes a whole number of at least 1, not {forks}")
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(eps)))) as pool:
        futures = {ep.name: pool.submit(run_one, ep, command, timeout, connect, (persist or {}).get(ep.name, 0)) for ep in eps}
        return {name: fut.result() for name, fut in futures.items()}


def render(outputs: dict[str, HostOutput]) -> list[Text]:
    """One block per host: a header with its state, then its output (never read as markup)."""
    blocks = []
    for name, out in outputs.items():
        state = "UNREACHABLE" if out.rc is None else ("ok" if out.ok else f"FAILED rc={out.rc}")
        block = Text(f"{name} | {state} | {out.duration_s:.2f}s\n", style="bold green" if out.ok else "bold red")
        body = (out.stdout + (("\n" if out.stdout and not out.stdout.endswith("\n") else "") + out.stderr if out.stderr else "")).rstrip("\n")
        if body:
            block.append(body + "\n")
        blocks.append(block)
    return blocks


@task(name="exec", help=helps("hosts", "inventory", "forks", "json", "set", cmd="The command (remote shell text), e.g. \"amd-smi static\"",
                 timeout="Seconds before a host's command is given up (default: none)"), iterable=["set"])  # fmt: skip
@run_task
def exec_(c: Any, hosts: str = "", cmd: str = "", inventory: str | None = None, forks: Any = None,
          timeout: Any = None, json: bool = False, set: list[str] | None = None) -> int:  # noqa: A002  # fmt: skip
    """Run one command on every matched host in parallel; output grouped per host; non-zero exit if a host failed."""
    from .. import settings

    n_forks = _num(forks, "forks")
    cli_vars = parse_sets(set)
    settings.check_keys(cli_vars, {})
    found = targets(hosts or "all", inventory, cli_vars)
    outputs = run_everywhere([ep for ep, _ in found], cmd, FORKS if n_forks is None else n_forks, _num(timeout, "timeout"),
                             persist={ep.name: p for ep, p in found})  # fmt: skip
    if json:
        print_json({name: out.as_json() for name, out in outputs.items()})
    else:
        for block in render(outputs):
            console.print(block, soft_wrap=True)
    failed = [n for n, o in outputs.items() if not o.ok]
    if failed and not json:
        console.print(Text(f"failed on {len(failed)} of {len(outputs)} host(s): {', '.join(failed)}", style="bold red"))
    return EXIT_FAILED if failed else 0


TASKS = [exec_]
