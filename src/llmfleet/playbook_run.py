"""One playbook run from the command line's point of view: check everything, run, archive.

The tasks in ``llmfleet.cli`` call :func:`execute`; it owns the order of things: every
input (playbook, inventory, settings of every host, catalog names, the token) is
checked before anything connects or any run folder is created; then the runner works
on the hosts; then the archive is written atomically.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Sequence

from . import __version__, archive, catalog, inventory, paths, playbook, runner, secrets, settings
from .actions import ACTIONS
from .errors import InputError
from .steps import Event, RunContext
from .transport import Endpoint, host_endpoint


@dataclass
class Request:
    playbook: str
    hosts: str
    inventory: str | None = None
    mode: str = "apply"  # apply | check | dry-run
    cli_vars: dict[str, Any] = field(default_factory=dict)
    forks: int = runner.DEFAULT_FORKS
    serial: str | None = None
    max_fail_percentage: float | None = None  # with serial: stop after a batch whose failed share exceeds it (default 0)
    hf_token_file: str | None = None
    archive: bool = True
    diff: bool = False  # --diff: show unified diffs of the files steps write (or would write)


@dataclass
class Prepared:
    """A run that passed every check: nothing has connected yet."""

    playbook: playbook.Playbook
    catalog: catalog.Catalog
    plans: list[runner.HostPlan]
    hf_token: str | None
    cli_vars: dict[str, Any]  # the flags and --set values the user gave (None: not given, dropped)


def endpoint(host: Any, s: settings.Settings, resolved: Any) -> Endpoint:
    """How to reach a host: the inventory's ansible_* values, `known_hosts_file`, a ProxyJump."""
    return host_endpoint(host, s.known_hosts_file, resolved)


def plan_hosts(hosts: Sequence[Any], pb: playbook.Playbook, cat: catalog.Catalog,
               cli_vars: dict[str, Any]) -> list[runner.HostPlan]:  # fmt: skip
    """Every host's checked settings and endpoint; the first bad one is an InputError."""
    settings.check_keys(cli_vars, pb.vars)
    plans = []
    for h in hosts:
        hs = settings.for_host(h, pb.vars, cli_vars)
        settings.check_catalog(hs.settings, cat)
        plans.append(runner.HostPlan(h, endpoint(h, hs.settings, hs.resolved), hs.settings, hs.resolved,
                                     lock_root=hs.settings.remote_root))  # fmt: skip
    return plans


def prepare(req: Request) -> Prepared:
    """Check everything a run needs, before anything connects."""
    # first: from here on the token is masked, also in the messages of the checks below
    token = secrets.load_hf_token(token_file=req.hf_token_file)
    if req.forks < 1:
        raise InputError(f"--forks takes a whole number of at least 1, not {req.forks}")
    cat = catalog.load()
    pb = playbook.load_playbook(req.playbook, ACTIONS)
    inv = inventory.load_inventory(req.inventory or paths.default_inventory())
    hosts = inv.select(req.hosts)
    cli_vars = {k: v for k, v in req.cli_vars.items() if v is not None}
    plans = plan_hosts(hosts, pb, cat, cli_vars)
    if req.serial:
        runner.batch_size(len(hosts), req.serial)
    if req.max_fail_percentage is not None and not 0 <= req.max_fail_percentage <= 100:
        raise InputError(f"--max-fail-percentage takes 0 to 100, not {req.max_fail_percentage}")
    return Prepared(pb, cat, plans, token, cli_vars)


def execute(req: Request, emit: Callable[[Event], None], say: Callable[[str], None],
            progress: ContextManager[Any] | None = None, connect: runner.Connect = runner.connect_ssh) -> runner.RunReport:  # fmt: skip
    """Check everything, run the playbook on the selected hosts, archive, and return the report.

    ``connect`` opens a host's session (``llmfleet.testing.FakeNetwork.connect`` in unit tests).
    """
    prep = prepare(req)
    ctx = RunContext(playbook=prep.playbook, catalog=prep.catalog, mode=req.mode, hf_token=prep.hf_token, emit=emit,
                     diff=req.diff)
    names = [p.host.name for p in prep.plans]
    say(f"{prep.playbook.name} on {len(names)} host(s): {', '.join(names)}"
        + (f"  ({req.mode}: nothing will be changed)" if req.mode != "apply" else ""))  # fmt: skip
    if req.mode == "dry-run" or not req.archive:
        return runner.run(ctx, prep.plans, ACTIONS, forks=req.forks, serial=req.serial, connect=connect,
                          max_fail_percentage=req.max_fail_percentage)
    with archive.new_run(run_meta(req, prep)) as run:
        ctx.run_id = run.run_id
        ctx.shared["progress"] = progress
        with progress or nullcontext():
            report = runner.run(ctx, prep.plans, ACTIONS, forks=req.forks, serial=req.serial, connect=connect,
                          max_fail_percentage=req.max_fail_percentage)
        for host, files in sorted(ctx.host_files.items()):
            for rel, data in sorted(files.items()):
                run.write(f"{host}/{rel}", data)
        run.write("events.jsonl", runner.events_jsonl(ctx.events))
        versions = {m.get("sglang_version") for m in ctx.host_meta.values()} - {None}
        run.update_meta(
            status="ok" if report.success else "failed",
            recap={h: r.as_json() for h, r in report.recap.items()},
            hosts={p.host.name: ctx.host_meta.get(p.host.name, {}) for p in prep.plans},
            sglang_version=versions.pop() if len(versions) == 1 else None,
            duration_s=round(report.duration_s, 3),
        )
        report.archive = str(paths.archive_dir() / run.run_id)
    return report


def run_meta(req: Request, prep: Prepared) -> dict[str, Any]:
    """The manifest's description of the run (archive format: docs/archive-format.md)."""
    cli_vars = prep.cli_vars
    model = cli_vars.get("model")
    return {
        "kind": prep.playbook.name,
        "mode": req.mode,
        "model": model,
        "hf_id": prep.catalog.model(str(model)).hf_id if model else None,
        "hosts": [p.host.name for p in prep.plans],
        "flags": {k: v for k, v in cli_vars.items() if k != "model"},
        "toolkit_version": __version__,
        "inventory": str(req.inventory or "inventory/"),
        # lab hosts simulate GPUs and model: their numbers must never pass for hardware results
        "simulated": bool(prep.plans) and all(p.settings.lab for p in prep.plans),
    }
