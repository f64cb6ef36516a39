"""Run a playbook's steps on many hosts at once and keep the score (Ansible's recap).

One SSH session per host for the whole run, bounded parallelism (`forks`), optional
`serial` batches. One host's failure never stops the others. Three modes:
``apply`` changes hosts, ``check`` connects and reports what would change, ``dry-run``
never connects and records each host's commands from the inventory's facts.

Generic: it knows steps (:mod:`llmfleet.steps`), sessions (:mod:`llmfleet.transport`)
and the host lock, nothing of SGLang. What a host needs (its endpoint, settings, lock
folder) comes in a :class:`HostPlan` built by the caller before anything connects.
"""

from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

from . import hostlock, shell
from .errors import InputError
from .steps import CHANGED, FAILED, OK, SKIPPED, ActionSpec, Event, HostContext, RunContext, StepFailed, StepResult
from .transport import Endpoint, Session, SessionLike, Unreachable

__all__ = ["OK", "CHANGED", "FAILED", "SKIPPED", "HostPlan", "HostRecap", "RunReport", "batches", "run"]

Connect = Callable[[Endpoint], SessionLike]
DEFAULT_FORKS = 32


def connect_ssh(endpoint: Endpoint) -> SessionLike:
    return Session(endpoint).open()


@dataclass
class HostPlan:
    """One host of a run: how to reach it and what it is set to."""

    host: Any
    endpoint: Endpoint
    settings: Any  # llmfleet.settings.Settings
    resolved: Mapping[str, Any]
    lock_root: str | None = None  # the host's folder for the deploy lock and audit log


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

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)


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


def batches(hosts: Sequence[Any], serial: str | None) -> list[list[Any]]:
    """Split hosts into `--serial` batches: N, N% or a list ramping up ("1,25%": a canary, then quarters).

    A list's sizes are taken in order, the last one repeating until every host has a batch
    (Ansible's ``serial: [1, "25%"]``); all hosts at once when unset.
    """
    if not serial:
        return [list(hosts)] if hosts else []
    sizes = [batch_size(len(hosts), item) for item in str(serial).split(",")]
    out: list[list[Any]] = []
    i = 0
    while i < len(hosts):
        size = sizes[min(len(out), len(sizes) - 1)]
        out.append(list(hosts[i : i + size]))
        i += size
    return out


def batch_size(n_hosts: int, serial: str) -> int:
    """The batch size `--serial` asks for; an InputError for anything but N >= 1 or 0 < N% <= 100 (or a list of those)."""
    text = str(serial).strip()
    if "," in text:
        return [batch_size(n_hosts, item) for item in text.split(",")][0]
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not math.isfinite(pct) or not 0 < pct <= 100:
                raise InputError(f"--serial N% takes a percentage above 0 and at most 100, not {serial!r}")
            return max(1, int(n_hosts * pct / 100))
        size = int(text)
    except ValueError:
        raise InputError(f"--serial takes N or N% (or a comma list of those, like 1,25%), not {serial!r}") from None
    if size < 1:
        raise InputError(f"--serial must be at least 1, not {serial!r}")
    return size


def too_many_failed(failed: int, batch: int, max_fail_percentage: float) -> bool:
    """Ansible's rule: a batch whose failed share exceeds the percentage stops the run."""
    return batch > 0 and failed * 100.0 / batch > max_fail_percentage


class Turns:
    """Holds each host at the start of a playbook's batched part until its batch's turn.

    The steps before it (``Playbook.serial_from``: the image pre-staged on every host) run
    on all hosts at once; then the run admits one batch at a time, or tells the rest
    that the rollout stopped. One session and one lock per host for the whole run.
    """

    def __init__(self, names: Sequence[str], forks: int = DEFAULT_FORKS) -> None:
        self.arrived = {n: threading.Event() for n in names}
        self.go = {n: threading.Event() for n in names}
        self.stopped: set[str] = set()
        # every host has a thread (it must be able to wait for its turn), but only `forks` of
        # them work at a time: before the split and within a batch, as `--forks` promises
        self.slots = threading.BoundedSemaphore(max(1, forks))

    def wait(self, name: str) -> bool:
        """Called by a host's thread at the split; True when its batch may go on.

        The host gives its work slot up while it waits and takes one again when admitted.
        """
        self.arrived[name].set()
        self.slots.release()
        self.go[name].wait()
        self.slots.acquire()
        return name not in self.stopped

    def admit(self, names: Sequence[str], stop: bool = False) -> None:
        if stop:
            self.stopped.update(names)
        for n in names:
            self.go[n].set()


STOPPED = "untouched (rollout stopped)"


def _connect(ctx: RunContext, plan: HostPlan, connect: Connect, recap: HostRecap) -> SessionLike | None:
    start = time.monotonic()
    try:
        return connect(plan.endpoint)
    except Unreachable as exc:
        recap.unreachable = True
        recap.message = str(exc)
        ctx.emit(Event("unreachable", plan.host.name, str(exc), mode=ctx.mode))
        ctx.event(host=plan.host.name, step="connect", command="ssh", exit_code=None,
                  duration_s=round(time.monotonic() - start, 4), mode=ctx.mode, note=str(exc))  # fmt: skip
        return None


def _take_lock(ctx: RunContext, plan: HostPlan, session: SessionLike, recap: HostRecap) -> bool:
    assert plan.lock_root is not None
    owner_file = f"{hostlock.lock_dir(plan.lock_root)}/owner"
    record = hostlock.owner_record(ctx.run_id, ctx.playbook.name)
    write_owner = shell.join(["sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sh", record, owner_file])
    # the lock and its owner record in one round trip (no SFTP session just for one small file)
    take = f"{shell.join(hostlock.acquire(plan.lock_root))} && {write_owner}"
    got = session.run(take, timeout=60)
    if got.ok:
        return True
    owner = session.run(shell.join(hostlock.read_owner(plan.lock_root)), timeout=30).stdout.strip()
    stale = hostlock.stale_owner(owner)
    if stale is not None:
        # this control node's own earlier run, whose process is gone: take the lock over, and say so in the audit log
        line = hostlock.audit_line(ctx.playbook.name, ctx.run_id, "took-over-stale-lock", f"of run={stale.get('run_id')} pid={stale['pid']}")
        retake = f"{shell.join(hostlock.audit(plan.lock_root, line))}; {shell.join(hostlock.release(plan.lock_root))} && {take}"
        if session.run(retake, timeout=60).ok:
            ctx.emit(Event("note", plan.host.name, f"took over a stale deploy lock of run {stale.get('run_id')} "
                           f"(its process {stale['pid']} on this control node is gone)", mode=ctx.mode))  # fmt: skip
            return True
        owner = session.run(shell.join(hostlock.read_owner(plan.lock_root)), timeout=30).stdout.strip()
    recap.failed = 1
    recap.message = (
        f"host is locked by another run ({owner or 'owner unknown'}); if none is running: "
        f"invoke unlock --hosts {plan.host.name}"
    )
    ctx.emit(Event("locked", plan.host.name, recap.message, mode=ctx.mode))
    return False


def _release_lock(ctx: RunContext, plan: HostPlan, session: SessionLike, failed: bool) -> None:
    assert plan.lock_root is not None
    line = hostlock.audit_line(ctx.playbook.name, ctx.run_id, "failed" if failed else "ok")
    try:
        # the audit line and the release in one round trip; the lock goes even if the audit log cannot be written
        session.run(f"{shell.join(hostlock.audit(plan.lock_root, line))}; {shell.join(hostlock.release(plan.lock_root))}",
                    timeout=30)  # fmt: skip
    except Unreachable:
        pass  # the host went away: the lock says who held it


def _run_step(hctx: HostContext, spec: ActionSpec, args: Mapping[str, Any], recap: HostRecap) -> tuple[str, str]:
    try:
        return spec.fn(hctx, args)
    except (StepFailed, InterruptedError) as exc:  # InterruptedError: a file transfer cut short by Ctrl-C
        return FAILED, str(exc)
    except Unreachable as exc:
        recap.unreachable = True
        recap.message = str(exc)
        return FAILED, str(exc)
    except Exception as exc:  # a bug or an unexpected host answer: fail this host, not the run
        return FAILED, f"internal error in {hctx.step.action if hctx.step else '?'}: {exc.__class__.__name__}: {exc}"


def _run_host(ctx: RunContext, plan: HostPlan, actions: Mapping[str, ActionSpec], connect: Connect,
              results: list[StepResult], turns: Turns | None = None) -> HostRecap:  # fmt: skip
    recap = HostRecap()
    name = plan.host.name
    if turns is not None:
        turns.slots.acquire()
    _host_hooks(ctx, "hosts_started", "on_host_start", name)
    try:
        return _run_host_steps(ctx, plan, actions, connect, results, recap, turns)
    finally:
        _host_hooks(ctx, "hosts_ended", "on_host_end", name)
        if turns is not None:
            turns.slots.release()
            turns.arrived[name].set()  # a host that ended before the split does not hold the batches up


def _host_hooks(ctx: RunContext, seen: str, hooks: str, name: str) -> None:
    """Record that a host's work started or ended, and tell the steps that asked (``shared[hooks]``).

    Cross-host steps (the image relay) learn which hosts may still come without the
    runner knowing about them.
    """
    with ctx.lock:
        ctx.shared.setdefault(seen, set()).add(name)
        call = list(ctx.shared.get(hooks, []))
    for hook in call:
        hook(name)


def _run_host_steps(ctx: RunContext, plan: HostPlan, actions: Mapping[str, ActionSpec], connect: Connect,
                    results: list[StepResult], recap: HostRecap, turns: Turns | None) -> HostRecap:  # fmt: skip
    name = plan.host.name
    session = None
    if ctx.mode != "dry-run":
        session = _connect(ctx, plan, connect, recap)
        if session is None:
            return recap
    hctx = HostContext(ctx, plan.host, plan.settings, plan.resolved, session)
    failed = locked = stopped = waited = False
    try:
        if ctx.mode == "apply" and ctx.playbook.lock and plan.lock_root and session is not None:
            locked = _take_lock(ctx, plan, session, recap)
            if not locked:
                return recap
        notified: set[str] = set()  # handlers a changed step asked for (run once, after the steps)
        for step in ctx.playbook.run_order(notified):
            spec = actions[step.action]
            if turns is not None and not waited and step.role == ctx.playbook.serial_from:
                waited = True
                stopped = not turns.wait(name)
            missing = sorted(r for r in spec.requires if getattr(hctx.state, r) is None)
            if (failed and not step.always) or missing or stopped:
                why = f"needs {', '.join(missing)}, which no step provided" if missing else "an earlier step failed"
                why = STOPPED if stopped else why
                results.append(StepResult(name, step.role, step.name, SKIPPED, why))
                recap.skipped += 1
                continue
            hctx.step, hctx.planned = step, []
            start = time.monotonic()
            status, message = _run_step(hctx, spec, step.args, recap)
            if status == CHANGED and ctx.mode != "apply" and not hctx.planned and not message:
                message = "would change"
            result = StepResult(name, step.role, step.name, status, message, list(hctx.planned), time.monotonic() - start)
            results.append(result)
            recap.count(status)
            if status == CHANGED:
                notified.update(step.notify)
            ctx.emit(Event("step", name, result=result, mode=ctx.mode))
            if status == FAILED:
                failed = True
                if recap.unreachable:
                    return recap
    finally:
        if session is not None:
            if locked and not recap.unreachable:
                _release_lock(ctx, plan, session, failed)
            session.close()
    if failed and not recap.message:
        recap.message = next((r.message for r in results if r.status == FAILED), "")
    if stopped:
        hctx.outcome = hctx.outcome or STOPPED
    if hctx.outcome and not recap.unreachable:
        recap.message = hctx.outcome  # what happened to the host, in one line (the failed step keeps its detail)
    return recap


def run(
    ctx: RunContext,
    plans: Sequence[HostPlan],
    actions: Mapping[str, ActionSpec],
    forks: int = DEFAULT_FORKS,
    serial: str | None = None,
    connect: Connect = connect_ssh,
    max_fail_percentage: float | None = None,
) -> RunReport:
    """Run the playbook on every host; never raises for a host's failure.

    With `serial`, hosts go in batches and the run stops after a batch whose failed share
    exceeds `max_fail_percentage` (default 0, Ansible's). A playbook with ``serial_from``
    runs its steps before that role on every host first (the image on every host before
    any server is touched), then the rest batch by batch.
    """
    report = RunReport(ctx.playbook.name, ctx.mode, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    start = time.monotonic()
    per_host: dict[str, list[StepResult]] = {p.host.name: [] for p in plans}
    limit = 0.0 if max_fail_percentage is None else max_fail_percentage
    hostlock.RUNNING.add(ctx.run_id)
    try:
        if serial and ctx.playbook.serial_from:
            _run_staged(ctx, plans, actions, forks, serial, connect, limit, per_host, report)
        else:
            _run_batches(ctx, plans, actions, forks, serial, connect, limit, per_host, report)
    finally:
        hostlock.RUNNING.discard(ctx.run_id)
    for p in plans:
        report.results.extend(per_host[p.host.name])
    report.duration_s = time.monotonic() - start
    report.ended_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report


def _run_batches(ctx: RunContext, plans: Sequence[HostPlan], actions: Mapping[str, ActionSpec], forks: int,
                 serial: str | None, connect: Connect, limit: float, per_host: dict[str, list[StepResult]],
                 report: RunReport) -> None:  # fmt: skip
    """Batch after batch (all hosts in one without `serial`); a batch whose failed share is too high stops the rest."""
    for batch in batches(plans, serial):
        with ThreadPoolExecutor(max_workers=max(1, min(forks, len(batch)))) as pool:
            futures = {p.host.name: pool.submit(_run_host, ctx, p, actions, connect, per_host[p.host.name]) for p in batch}
            with _interruptible(ctx):
                for name, fut in futures.items():
                    report.recap[name] = fut.result()
        failed = sum(not report.recap[p.host.name].success for p in batch)
        if serial and too_many_failed(failed, len(batch), limit):
            for p in plans:
                if p.host.name not in report.recap:
                    report.recap[p.host.name] = HostRecap(skipped=1, failed=1, message="not started: an earlier batch failed")
            break


def _run_staged(ctx: RunContext, plans: Sequence[HostPlan], actions: Mapping[str, ActionSpec], forks: int,
                serial: str, connect: Connect, limit: float, per_host: dict[str, list[StepResult]],
                report: RunReport) -> None:  # fmt: skip
    """Every host up to the split at once, then batch by batch (see :class:`Turns`)."""
    names = [p.host.name for p in plans]
    turns = Turns(names, forks)
    # every host's thread lives for the whole run (it waits for its turn), so no fewer threads than hosts
    with ThreadPoolExecutor(max_workers=max(1, len(plans))) as pool:
        futures = {p.host.name: pool.submit(_run_host, ctx, p, actions, connect, per_host[p.host.name], turns)
                   for p in plans}  # fmt: skip
        try:
            with _interruptible(ctx):
                _admit_batches(names, serial, limit, turns, futures, report)
        except KeyboardInterrupt:
            turns.admit(names, stop=True)  # hosts still waiting for their turn end too
            raise


def _admit_batches(names: list[str], serial: str, limit: float, turns: Turns, futures: Mapping[str, Any],
                   report: RunReport) -> None:  # fmt: skip
    """Let the batches go one after the other; the first one whose failed share is too high stops the rest."""
    for n in names:
        turns.arrived[n].wait()
    stop = False
    for batch in batches(names, serial):
        if stop:
            turns.admit(batch, stop=True)
            continue
        turns.admit(batch)
        for n in batch:
            report.recap[n] = futures[n].result()
        stop = too_many_failed(sum(not report.recap[n].success for n in batch), len(batch), limit)
    for n in names:
        report.recap[n] = futures[n].result()


@contextmanager
def _interruptible(ctx: RunContext) -> Iterator[None]:
    """Ctrl-C while hosts work: call what the steps registered in ``shared["on_interrupt"]`` (stop transfers),

    so the hosts' threads end (and clean up, and release their locks) soon instead of
    finishing long transfers; then the interrupt goes on.
    """
    try:
        yield
    except KeyboardInterrupt:
        ctx.shared["interrupted"] = True
        for stop in list(ctx.shared.get("on_interrupt", [])):
            try:
                stop()
            except Exception:  # noqa: BLE001 - one failing hook must not keep the others from stopping
                pass
        raise


def events_jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
