"""The image relay's failure paths on the lab: a host cut mid-relay, a rerun, Ctrl-C; nothing left behind.

A small random image goes through a capped control link (so a transfer lasts long enough to
cut a host in the middle of it); every check reads the hosts themselves (image IDs, the
login user's authorized_keys, /tmp, the processes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llmfleet.lab import imagepush, lab_fault
from llmfleet.steps import RunContext
from tests.helpers import cli

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
FAST = {"relay_stall_timeout": 10}  # a cut host is given up after 10 s without a byte
SIZE_MB, UPLINK_MBIT = 16, 24  # ~6 s per transfer through the capped control link: long enough to cut one mid-way


@pytest.fixture()
def image(lab):
    names = [h.name for h in lab.hosts][:3]
    tag = imagepush.build_image(SIZE_MB, compressible=False, name="llmfleet-relaytest/blob")
    imagepush.drop_image(names, tag)
    lab_fault("control", "slow", UPLINK_MBIT)
    try:
        yield names, tag
    finally:
        lab_fault("control", "restore")
        for n in names:
            lab_fault(n, "restore")
        cli("unlock", "--hosts", ",".join(names))  # a host cut in a failed test keeps its lock: the next test starts clean
        imagepush.drop_image(names, tag)
        imagepush.remove_image(tag)


def _nothing_left(names: list[str]) -> None:
    assert imagepush.leftovers(names) == {}
    assert imagepush.relay_processes() == []


def _chain_member(ctx: RunContext, tag: str, timeout: float = 60) -> str:
    """A host that receives the image from another host (not the control node), once every host receives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ctx.shared.get(f"relay:{tag}")
        streams = list(run.relay.streams) if run is not None else []
        if len(streams) >= 3:
            time.sleep(1)  # a few MB in
            return streams[1]
        time.sleep(0.1)
    raise AssertionError("the relay never had every host receiving")


def test_a_host_cut_mid_relay_the_others_get_it_a_rerun_completes_it(image, lab, lab_ssh):
    names, tag = image
    ctx = RunContext(playbook=None, catalog=None, mode="apply")  # type: ignore[arg-type]
    cut: list[str] = []

    def cut_one() -> None:
        cut.append(_chain_member(ctx, tag))
        lab_fault(cut[0], "cut")

    t = threading.Thread(target=cut_one)
    t.start()
    _, report = imagepush.push(names, tag, relay=True, extra_vars=FAST, ctx=ctx)
    t.join(60)
    victim = cut[0]
    others = [n for n in names if n != victim]
    assert report.recap[victim].unreachable, report.recap[victim]
    gone = report.recap[victim].message  # "<victim> stopped answering|went away while receiving the image from ..."
    assert gone.startswith(victim) and "while receiving the image" in gone, gone
    assert all(report.recap[n].success for n in others), {n: report.recap[n].message for n in others}
    wanted = imagepush.image_ids(names[:1], tag) if names[0] != victim else imagepush.image_ids(others[:1], tag)
    image_id = next(iter(wanted.values()))
    assert image_id.startswith("sha256:")
    assert all(v == image_id for v in imagepush.image_ids(others, tag).values())

    lab_fault(victim, "restore")
    # the cut host kept the cut run's deploy lock (nobody could release it); that run is over, so the rerun
    # takes the stale lock over (no `invoke unlock`) and says so in the host's audit log
    _, again = imagepush.push(names, tag, relay=True, extra_vars=FAST)
    audit = lab_ssh(next(h.address for h in lab.hosts if h.name == victim), "cat /var/lib/llmfleet/audit.log").stdout
    assert "took-over-stale-lock" in audit, audit
    assert again.success, {h: r.message for h, r in again.recap.items()}
    assert imagepush.image_ids([victim], tag) == {victim: image_id}
    # verified on arrival, from a host that held it: the holders waited for the restored host (it was slowed by the
    # stale lock), so the control uplink did not carry the image a second time
    got = next(r.message for r in again.results if r.host == victim)
    assert "verified" in got and any(f" from {n} (" in got for n in others), got
    _nothing_left(names)


def test_ctrl_c_mid_relay_stops_the_transfers_and_leaves_nothing(image):
    names, tag = image
    script = ("import sys; from llmfleet.lab import imagepush; "
              "t, r = imagepush.push(sys.argv[1].split(','), sys.argv[2], relay=True); print(r.success)")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", script, ",".join(names), tag], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    moving = "find /tmp -maxdepth 2 -path '/tmp/llmfleet-relay.*/spool' -size +0 | head -n 1"
    deadline = time.monotonic() + 60
    while not imagepush.on_hosts(names[:1], moving)[names[0]] and time.monotonic() < deadline:
        time.sleep(0.3)  # until relay folders are made and the first bytes move
    assert proc.poll() is None
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - start < 20  # stopped, not waiting for the transfers (or a stall timeout)
    assert "KeyboardInterrupt" in err
    time.sleep(1)
    _nothing_left(names)
    assert imagepush.on_hosts(names, "ls /var/lib/llmfleet/lock 2>/dev/null; true") == {n: "" for n in names}
