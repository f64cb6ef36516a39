"""Run a playbook's steps on many hosts at once and keep the score (Ansible's recap).

One SSH session per host for the whole run, bounded parallelism (`forks`), optional
`serial` batches. One host's failure never stops the others. Three modes:
``apply`` changes hosts, ``check`` connects and reports what would change, ``dry-run``
never connects and prints each host's commands from the inventory's facts.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import facts as factlib
from . import deployment, hostlock, shell
from .catalog import Catalog
from .errors import InputError
from .playbook import Playbook, Step
from .transport import Endpoint, Result, Session, Unreachable

OK, CHANGED, FAILED, SKIPPED = "ok", "changed", "failed", "skipped"


class StepFailed(Exception):
    """An action failed on a host; the message says what is wrong and how to fix it."""


@dataclass
class StepResult:
    host: str
    role: str
    step: str
    status: str
    message: str = ""
    commands: list[str] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "skipped": self.skipped,
            "unreachable": self.unreachable,
            "message": self.message,
        }

    @property
    def success(self) -> bool:
        return not (self.failed or self.unreachable)


@dataclass
class RunReport:
    playbook: str
    mode: str
    started_at: str
    ended_at: str = ""
    duration_s: float = 0.0
    results: list[StepResult] = field(default_factory=list)
    recap: dict[str, HostRecap] = field(default_factory=dict)
    archive: str | None = None

    @property
    def success(self) -> bool:
        return all(r.success for r in self.recap.values())

    def as_json(self) -> dict[str, Any]:
        commands: dict[str, list[str]] = {}
        for r in self.results:
            commands.setdefault(r.host, []).extend(r.commands)
        return {
            "playbook": self.playbook,
            "mode": self.mode,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": round(self.duration_s, 3),
            "recap": {h: r.as_json() for h, r in self.recap.items()},
            "steps": [
                {"host": r.host, "role": r.role, "step": r.step, "status": r.status, "message": r.message,
                 "duration_s": round(r.duration_s, 3)}
                for r in self.results
            ],  # fmt: skip
            "commands": commands if self.mode != "apply" else {},
            "archive": self.archive,
        }


@dataclass
class RunContext:
    """What all hosts of one run share."""

    playbook: Playbook
    catalog: Catalog
    mode: str
    cli_vars: Mapping[str, Any]
    resolve_vars: Callable[[dict, Any, dict, Mapping[str, Any]], Mapping[str, Any]]
    secrets: list[str] = field(default_factory=list)
    run_id: str | None = None
    emit: Callable[[str], None] = lambda line: None
    shared: dict[str, Any] = field(default_factory=dict)  # cross-host caches (the image tar, ...)
    events: list[dict[str, Any]] = field(default_factory=list)
    host_files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # host -> relpath -> data, for the archive
    host_meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> hardware, image, image_id, ...
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, **record: Any) -> None:
        record["ts"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self.lock:
            self.events.append(record)

    def note(self, host: str, **meta: Any) -> None:
        """Per-host facts for the run's manifest (hardware, image, image_id, sglang_version)."""
        with self.lock:
            self.host_meta.setdefault(host, {}).update({k: v for k, v in meta.items() if v is not None})

    def keep(self, host: str, relpath: str, data: bytes | str) -> None:
        """A file for the run's archive, masked of secrets."""
        if isinstance(data, str):
            data = data.encode()
        data = shell.mask(data.decode(errors="replace"), self.secrets).encode()
        with self.lock:
            self.host_files.setdefault(host, {})[relpath] = data


class HostContext:
    """What an action sees: its host, variables, facts, and a way to run commands."""

    def __init__(self, run: RunContext, host: Any, session: Session | None):
        self.run = run
        self.host = host
        self.name: str = host.name
        self.session = session
        self.vars: Mapping[str, Any] = {}
        self.facts: factlib.HostFacts | None = None
        self.state: dict[str, Any] = {}  # what earlier steps found out (image id, container, ...)
        self.step: Step | None = None
        self.planned: list[str] = []

    @property
    def mode(self) -> str:
        return self.run.mode

    @property
    def catalog(self) -> Catalog:
        return self.run.catalog

    def say(self, message: str) -> None:
        self.run.emit(f"[bold]{self.name}[/] {message}")

    def _log(self, command: str, result: Result | None, note: str = "") -> None:
        self.run.event(
            host=self.name,
            step=self.step.name if self.step else "",
            role=self.step.role if self.step else "",
            command=shell.mask(command, self.run.secrets),
            exit_code=None if result is None else result.exit_code,
            duration_s=None if result is None else round(result.duration_s, 4),
            mode=self.mode,
            note=note,
        )

    def probe(self, command: str | Sequence[str], timeout: float | None = 60) -> Result:
        """A read-only command: runs in apply and check mode (never in dry-run)."""
        text = command if isinstance(command, str) else shell.join(command)
        if self.session is None:
            raise RuntimeError("probe() in dry-run: actions must not read hosts in dry-run")
        result = self.session.run(text, timeout=timeout)
        self._log(text, result, "probe")
        return result

    def change(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | Iterable[bytes] | None = None,
        on_sent: Callable[[int], None] | None = None,
        check: bool = True,
        display: str | None = None,
    ) -> Result | None:
        """A command that changes the host: runs in apply mode, is only recorded otherwise."""
        text = command if isinstance(command, str) else shell.join(command)
        shown = shell.mask(display or text, self.run.secrets)
        if self.mode != "apply":
            self.planned.append(shown)
            return None
        assert self.session is not None
        result = self.session.run(text, timeout=timeout, stdin=stdin, on_sent=on_sent)
        self._log(display or text, result)
        if check and not result.ok:
            detail = shell.mask((result.stderr or result.stdout).strip()[-800:], self.run.secrets)
            raise StepFailed(f"`{shown[:160]}` exited {result.exit_code}: {detail}")
        return result

    def put(self, data: bytes, remote_path: str, mode: int = 0o644, display: str | None = None) -> None:
        """Upload a file (secrets too: content never appears in a command or a log)."""
        shown = display or f"upload {len(data)} bytes to {remote_path} (mode {mode:o})"
        if self.mode != "apply":
            self.planned.append(shown)
            return
        assert self.session is not None
        start = time.monotonic()
        self.session.put_bytes(data, remote_path, mode)
        self.run.event(host=self.name, step=self.step.name if self.step else "", command=shown,
                       exit_code=0, duration_s=round(time.monotonic() - start, 4), mode=self.mode, note="sftp")  # fmt: skip


Action = Callable[[HostContext, dict], tuple[str, str]]


def batches(hosts: Sequence[Any], serial: str | None) -> list[list[Any]]:
    """Split hosts into `--serial N` or `--serial N%` batches (all at once when unset)."""
    if not serial:
        return [list(hosts)] if hosts else []
    text = str(serial).strip()
    try:
        if text.endswith("%"):
            size = max(1, int(len(hosts) * float(text[:-1]) / 100))
        else:
            size = int(text)
    except ValueError:
        raise InputError(f"--serial takes N or N%, not {serial!r}") from None
    if size < 1:
        raise InputError(f"--serial must be at least 1, not {serial!r}")
    return [list(hosts[i : i + size]) for i in range(0, len(hosts), size)]


def endpoint(host: Any, v: Mapping[str, Any] | None = None) -> Endpoint:
    """How to reach a host; `--set known_hosts_file=...` (or a key file) overrides the inventory."""
    v = v or {}
    return Endpoint(
        name=host.name,
        address=host.address,
        port=int(host.port or 22),
        user=host.user,
        key_file=v.get("ansible_ssh_private_key_file") or host.key_file,
        known_hosts_file=v.get("known_hosts_file") or host.known_hosts_file or host.vars.get("known_hosts_file"),
    )


def _run_host(ctx: RunContext, host: Any, actions: Mapping[str, Action], results: list[StepResult]) -> HostRecap:
    recap = HostRecap()
    session: Session | None = None
    hctx = HostContext(ctx, host, None)
    host_vars = ctx.resolve_vars({}, host, ctx.playbook.vars, ctx.cli_vars)
    if ctx.mode != "dry-run":
        start = time.monotonic()
        try:
            session = Session(endpoint(host, host_vars)).open()
        except Unreachable as exc:
            recap.unreachable = True
            recap.message = str(exc)
            ctx.emit(f"[bold]{host.name}[/] [red]UNREACHABLE[/] {exc}")
            ctx.event(host=host.name, step="connect", command="ssh", exit_code=None,
                      duration_s=round(time.monotonic() - start, 4), mode=ctx.mode, note=str(exc))  # fmt: skip
            return recap
        hctx.session = session
    failed = False
    locked = False
    remote_dir = deployment.remote_dir(host_vars)
    try:
        if ctx.mode == "apply" and ctx.playbook.lock and session is not None:
            got = session.run(shell.join(hostlock.acquire(remote_dir)), timeout=60)
            if not got.ok:
                owner = session.run(shell.join(hostlock.read_owner(remote_dir)), timeout=30).stdout.strip()
                recap.failed = 1
                recap.message = (
                    f"host is locked by another run ({owner or 'owner unknown'}); if none is running: "
                    f"invoke unlock --hosts {host.name}"
                )
                ctx.emit(f"[bold]{host.name}[/] [bold red]locked[/] {recap.message}")
                return recap
            locked = True
            session.put_bytes(hostlock.owner_record(ctx.run_id, ctx.playbook.name).encode(), f"{hostlock.lock_dir(remote_dir)}/owner")
        for role in ctx.playbook.roles:
            hctx.vars = ctx.resolve_vars(role.defaults, host, ctx.playbook.vars, ctx.cli_vars)
            for step in role.steps:
                if failed and not step.always:
                    results.append(StepResult(host.name, role.name, step.name, SKIPPED, "an earlier step failed"))
                    recap.skipped += 1
                    continue
                hctx.step = step
                hctx.planned = []
                start = time.monotonic()
                try:
                    status, message = actions[step.action](hctx, step.args)
                except StepFailed as exc:
                    status, message = FAILED, shell.mask(str(exc), ctx.secrets)
                except Unreachable as exc:
                    recap.unreachable = True
                    recap.message = str(exc)
                    status, message = FAILED, str(exc)
                except Exception as exc:  # a bug or an unexpected host answer: fail this host, not the run
                    detail = shell.mask(f"{exc.__class__.__name__}: {exc}", ctx.secrets)
                    status, message = FAILED, f"internal error in {step.action}: {detail}"
                if status == CHANGED and ctx.mode != "apply" and not hctx.planned and not message:
                    message = "would change"
                result = StepResult(host.name, role.name, step.name, status, message, list(hctx.planned),
                                    time.monotonic() - start)  # fmt: skip
                results.append(result)
                setattr(recap, status, getattr(recap, status) + 1)
                _emit_step(ctx, result)
                if status == FAILED:
                    failed = True
                    if recap.unreachable:
                        return recap
    finally:
        if session is not None:
            if locked:
                outcome = "failed" if failed else "ok"
                try:
                    session.run(shell.join(hostlock.audit(remote_dir, hostlock.audit_line(ctx.playbook.name, ctx.run_id, outcome))), timeout=30)
                    session.run(shell.join(hostlock.release(remote_dir)), timeout=30)
                except Unreachable:
                    pass  # the host went away: the lock says who held it
            session.close()
    if failed and not recap.message:
        recap.message = next((r.message for r in results if r.host == host.name and r.status == FAILED), "")
    return recap


_STYLE = {OK: "green", CHANGED: "yellow", FAILED: "bold red", SKIPPED: "dim"}


def _emit_step(ctx: RunContext, r: StepResult) -> None:
    label = r.status if ctx.mode == "apply" or r.status != CHANGED else "would change"
    line = f"[bold]{r.host}[/] {r.role} : {r.step} [{_STYLE[r.status]}]{label}[/]"
    if r.message:
        line += f" - {r.message}"
    if r.duration_s >= 1:
        line += f" [dim]({r.duration_s:.1f}s)[/]"
    ctx.emit(line)


def run(
    ctx: RunContext,
    hosts: Sequence[Any],
    actions: Mapping[str, Action],
    forks: int = 32,
    serial: str | None = None,
) -> RunReport:
    """Run the playbook on every host; never raises for a host's failure."""
    report = RunReport(ctx.playbook.name, ctx.mode, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    start = time.monotonic()
    per_host: dict[str, list[StepResult]] = {h.name: [] for h in hosts}
    for batch in batches(hosts, serial):
        with ThreadPoolExecutor(max_workers=max(1, min(forks, len(batch)))) as pool:
            futures = {h.name: pool.submit(_run_host, ctx, h, actions, per_host[h.name]) for h in batch}
            for name, fut in futures.items():
                report.recap[name] = fut.result()
        if serial and any(not report.recap[h.name].success for h in batch):
            # Like Ansible's serial with max_fail_percentage 0: stop before the next batch.
            for h in hosts:
                if h.name not in report.recap:
                    report.recap[h.name] = HostRecap(skipped=1, message="not started: an earlier batch failed")
                    report.recap[h.name].failed = 1
            break
    for h in hosts:
        report.results.extend(per_host[h.name])
    report.duration_s = time.monotonic() - start
    report.ended_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report


def events_jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
