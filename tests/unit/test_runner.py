"""The runner's orchestration paths, on scripted hosts (llmfleet.testing): no root, no lab.

Locks held by another run, hosts unreachable before and during a run, `always:` steps
after a failure, `--serial` stopping, internal errors, dry-run and check mode, and the
step contract (requires/provides). The lab tests are the end-to-end truth for the same
paths over real SSH.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import pytest

from llmfleet import catalog, runner
from llmfleet.errors import InputError
from llmfleet.playbook import Playbook, Role, Step, check_order
from llmfleet.steps import CHANGED, FAILED, OK, SKIPPED, HostContext, RunContext, StepFailed, spec
from llmfleet.testing import FakeNetwork, unreachable
from llmfleet.transport import Endpoint

from .fake_hosts import AUDIT, LOCK, RELEASE


def _probe(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    r = ctx.probe(["uname", "-n"])
    return OK, r.stdout.strip()


def _change(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    ctx.change(["touch", "/etc/changed"])
    return CHANGED, ""


def _fail(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    raise StepFailed("the host is not fit: fix it")


def _boom(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    raise KeyError("hf_secret_token_value_123")


def _provide(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    ctx.state.image_id = "sha256:abc"
    return OK, "image"


def _use(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    return OK, f"uses {ctx.state.image_id}"


ACTIONS = {
    "probe": spec(_probe),
    "change": spec(_change),
    "fail": spec(_fail),
    "boom": spec(_boom),
    "provide": spec(_provide, provides=["image_id"]),
    "use": spec(_use, requires=["image_id"]),
}


def _playbook(*steps: str, always: tuple[str, ...] = (), lock: bool = False) -> Playbook:
    role = Role("r", [Step(name=f"{i}-{a}", action=a, role="r", always=a in always or f"{i}-{a}" in always,
                           where=f"pb.yml:{i + 1}") for i, a in enumerate(steps)])  # fmt: skip
    return Playbook(name="test", path=Path("pb.yml"), roles=[role], vars={}, lock=lock)


def _plans(*names: str) -> list[runner.HostPlan]:
    hosts = [SimpleNamespace(name=n, address=f"198.51.100.{i + 1}", vars={}) for i, n in enumerate(names)]
    return [runner.HostPlan(h, Endpoint(h.name, h.address), settings=None, resolved={}, lock_root="/var/lib/llmfleet")
            for h in hosts]  # fmt: skip


def _run(pb: Playbook, net: FakeNetwork, names=("h1",), mode: str = "apply", serial: str | None = None):
    events: list = []
    ctx = RunContext(playbook=pb, catalog=catalog.load(), mode=mode, run_id="run-1", emit=events.append)
    report = runner.run(ctx, _plans(*names), ACTIONS, serial=serial, connect=net.connect)
    return report, ctx, events


def _statuses(report: runner.RunReport, host: str) -> list[str]:
    return [r.status for r in report.results if r.host == host]


def test_every_step_runs_and_the_recap_counts():
    net = FakeNetwork()
    net.host("h1").on(r"^uname -n$", "h1\n").on(r"^touch /etc/changed$", 0)
    report, ctx, events = _run(_playbook("probe", "change"), net)
    assert _statuses(report, "h1") == [OK, CHANGED]
    assert report.recap["h1"].as_json() == {"ok": 1, "changed": 1, "failed": 0, "skipped": 0, "unreachable": False, "message": ""}
    assert report.success and net.unexpected == {}
    assert [e.kind for e in events] == ["step", "step"]
    assert [e["command"] for e in ctx.events] == ["uname -n", "touch /etc/changed"]
    assert all(s.closed for s in net.sessions)


def test_a_failed_step_skips_the_rest_but_always_steps_run():
    net = FakeNetwork()
    net.host("h1").on(r"^uname -n$", "h1\n")
    report, _, _ = _run(_playbook("fail", "change", "probe", always=("2-probe",)), net)
    assert _statuses(report, "h1") == [FAILED, SKIPPED, OK]
    assert report.recap["h1"].failed == 1 and report.recap["h1"].skipped == 1
    assert report.recap["h1"].message == "the host is not fit: fix it"
    assert net.host("h1").ran("touch") == []  # the skipped change never ran
    assert not report.success


def test_lock_held_by_another_run_fails_the_host_and_runs_nothing():
    net = FakeNetwork()
    net.host("h1").on(LOCK, 1).on(r"^cat /var/lib/llmfleet/lock/owner$", '{"run": "other-run", "pid": 42}')
    net.host("h2").on(LOCK, 0).on(r"^uname -n$", "h2\n").on(AUDIT, 0).on(RELEASE, 0)
    report, _, events = _run(_playbook("probe", lock=True), net, names=("h1", "h2"))
    assert report.recap["h1"].failed == 1
    assert "locked by another run" in report.recap["h1"].message and "other-run" in report.recap["h1"].message
    assert "invoke unlock --hosts h1" in report.recap["h1"].message
    assert _statuses(report, "h1") == []
    assert net.host("h1").ran(RELEASE) == []  # another run's lock is never released
    assert ("locked", "h1") in [(e.kind, e.host) for e in events]
    # the other host took the lock and wrote its owner (one round trip), ran, audited and released (one more)
    h2 = net.host("h2")
    (lock_cmd,) = h2.ran(LOCK)
    assert "/var/lib/llmfleet/lock/owner" in lock_cmd and '"run_id": "run-1"' in lock_cmd
    (done,) = h2.ran(RELEASE)
    assert done.index("audit.log") < done.index("rm -rf /var/lib/llmfleet/lock") and done == h2.commands[-1]
    assert report.recap["h2"].success and net.unexpected == {}


def test_a_stale_lock_of_this_control_node_is_taken_over_and_audited():
    from llmfleet import hostlock

    dead = {"by": hostlock.me(), "pid": 2**22 + 7, "run_id": "cut-run", "playbook": "deploy", "since": "x"}
    net = FakeNetwork()
    h = net.host("h1")
    h.on(LOCK, 1).on(r"^cat /var/lib/llmfleet/lock/owner$", json.dumps(dead))
    h.on(r"took-over-stale-lock.*rm -rf /var/lib/llmfleet/lock && sh -c 'mkdir", 0)  # audit, remove, take again
    h.on(r"^uname -n$", "h1\n").on(AUDIT, 0).on(RELEASE, 0)
    report, _, events = _run(_playbook("probe", lock=True), net)
    assert report.success and _statuses(report, "h1") == [OK]
    retake = next(c for c in h.commands if "took-over-stale-lock" in c)
    assert "of run=cut-run pid=4194311" in retake and retake.index("audit.log") < retake.index("rm -rf") < retake.index("mkdir")
    assert any(e.kind == "note" and "stale deploy lock of run cut-run" in e.text for e in events)


@pytest.mark.parametrize("owner", [
    {"by": "someone@other-node", "pid": 2**22 + 7, "run_id": "r"},  # another control node: its process is not ours to judge
    "live",  # this node, a live llmfleet process
    "not json",
])  # fmt: skip
def test_a_lock_that_is_not_provably_stale_is_never_taken_over(owner):
    from llmfleet import hostlock

    if owner == "live":
        assert hostlock.stale_owner(json.dumps({"by": hostlock.me(), "pid": 4242, "run_id": "r"}), alive=lambda pid: True) is None
        return
    text = owner if isinstance(owner, str) else json.dumps(owner)
    assert hostlock.stale_owner(text, alive=lambda pid: False) is None
    net = FakeNetwork()
    net.host("h1").on(LOCK, 1).on(r"^cat /var/lib/llmfleet/lock/owner$", text)
    report, _, _ = _run(_playbook("probe", lock=True), net)
    assert "invoke unlock --hosts h1" in report.recap["h1"].message and net.host("h1").ran(RELEASE) == []


def test_unreachable_host_does_not_stop_the_others():
    net = FakeNetwork()
    net.host("h1").connect_error = unreachable("connection to 198.51.100.1:22 timed out after 15s")
    net.host("h2").on(r"^uname -n$", "h2\n")
    report, _, events = _run(_playbook("probe"), net, names=("h1", "h2"))
    assert report.recap["h1"].unreachable and "timed out" in report.recap["h1"].message
    assert report.recap["h2"].success and _statuses(report, "h2") == [OK]
    assert [e.kind for e in events if e.host == "h1"] == ["unreachable"]


def test_host_lost_mid_run_is_unreachable_and_runs_nothing_more():
    net = FakeNetwork()
    net.host("h1").on(LOCK, 0).on(r"^uname -n$", unreachable("connection to 198.51.100.1 was lost"))
    report, _, _ = _run(_playbook("probe", "change", "probe", always=("2-probe",), lock=True), net)
    recap = report.recap["h1"]
    assert recap.unreachable and recap.failed == 1 and "was lost" in recap.message
    assert _statuses(report, "h1") == [FAILED]  # not even `always` steps: the host is gone
    assert net.host("h1").ran(RELEASE) == [] and net.host("h1").ran(AUDIT) == []


def test_serial_stops_after_a_failed_batch():
    net = FakeNetwork()
    for name in ("h1", "h3", "h4"):
        net.host(name).on(r"^uname -n$", f"{name}\n")
    net.host("h2").on(r"^uname -n$", 1)

    def fail_on_exit(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
        if not ctx.probe(["uname", "-n"]).ok:
            raise StepFailed("uname failed")
        return OK, ""

    ACTIONS["probe_or_fail"] = spec(fail_on_exit)
    try:
        report, _, _ = _run(_playbook("probe_or_fail"), net, names=("h1", "h2", "h3", "h4"), serial="1")
    finally:
        del ACTIONS["probe_or_fail"]
    assert report.recap["h1"].success and report.recap["h2"].failed == 1
    for name in ("h3", "h4"):
        assert report.recap[name].message == "not started: an earlier batch failed"
        assert net.host(name).commands == []
    assert [s.host.name for s in net.sessions] == ["h1", "h2"]


def test_internal_error_fails_the_host_with_a_message_not_a_traceback():
    net = FakeNetwork()
    net.host("h2").on(r"^uname -n$", "h2\n")
    report, _, _ = _run(_playbook("boom", "probe", always=("1-probe",)), net, names=("h1", "h2"))
    for host in ("h1", "h2"):
        assert report.recap[host].message.startswith("internal error in boom: KeyError:")
        assert report.recap[host].failed == 1
    assert _statuses(report, "h2") == [FAILED, OK]  # the run went on: always steps still ran


def test_dry_run_connects_to_nothing_and_check_changes_nothing():
    net = FakeNetwork()
    report, _, _ = _run(_playbook("change"), net, mode="dry-run")
    assert net.sessions == [] and report.results[0].commands == ["touch /etc/changed"]
    net.host("h1").on(r"^uname -n$", "h1\n")
    report, _, _ = _run(_playbook("probe", "change"), net, mode="check")
    assert net.host("h1").ran("touch") == []
    assert report.results[1].status == CHANGED and report.results[1].commands == ["touch /etc/changed"]


def test_a_step_whose_input_was_not_provided_is_skipped_with_the_reason():
    net = FakeNetwork()
    report, _, _ = _run(_playbook("fail", "use", always=("1-use",)), net)
    assert report.results[1].status == SKIPPED
    assert report.results[1].message == "needs image_id, which no step provided"
    report, _, _ = _run(_playbook("provide", "use"), net)
    assert [r.message for r in report.results] == ["image", "uses sha256:abc"]


def test_playbook_order_is_checked_before_anything_runs():
    pb = _playbook("use", "provide")
    with pytest.raises(InputError, match=r"pb.yml:1: step '0-use' \(use\) needs image_id, which no earlier step provides"):
        check_order(pb.steps, ACTIONS)
    check_order(_playbook("provide", "use").steps, ACTIONS)


@pytest.mark.parametrize("serial", ["0", "-1", "abc", "inf%", "nan%", "0%", "101%", "1e999%"])
def test_bad_serial_is_an_input_error(serial):
    with pytest.raises(InputError):
        runner.batch_size(4, serial)
