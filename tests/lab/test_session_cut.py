"""A session's file transfers (SFTP) never hang on a host that goes away, and Ctrl-C ends them.

A cut link says nothing: without a deadline, an SFTP write waits for its answer forever (seen in a relay run whose
receiver was cut while its hop key was written: the whole run hung, Ctrl-C too). Real sshd, real cut (the lab's
fault), the product's Session.
"""

from __future__ import annotations

import threading
import time

import pytest

from llmfleet import inventory, paths, playbook_run, settings, transport
from llmfleet.lab import lab_fault

pytestmark = pytest.mark.lab


@pytest.fixture
def session(lab, monkeypatch):
    monkeypatch.setattr(transport, "SFTP_IDLE_TIMEOUT_S", 3.0)  # the deadline is the subject; 30 s in real runs
    host = inventory.load_inventory(paths.default_inventory()).select(lab.hosts[-1].name)[0]
    hs = settings.for_host(host, {}, {})
    s = transport.Session(playbook_run.endpoint(host, hs.settings, hs.resolved)).open()
    s.put_bytes(b"before", "/tmp/llmfleet-session-cut")  # the SFTP channel is open before the cut
    try:
        yield host.name, s
    finally:
        lab_fault(host.name, "restore")
        s.close()


def test_a_write_to_a_cut_host_is_unreachable_after_the_deadline(session):
    name, s = session
    lab_fault(name, "cut")
    started = time.monotonic()
    with pytest.raises(transport.Unreachable) as err:
        s.put_bytes(b"x" * 4_000_000, "/tmp/llmfleet-session-cut")
    assert time.monotonic() - started < 15
    assert str(err.value).startswith(f"{name} stopped answering while writing /tmp/llmfleet-session-cut: no answer")


def test_ctrl_c_ends_a_write_in_flight(session):
    name, s = session
    lab_fault(name, "cut")
    got: list[BaseException] = []

    def write() -> None:
        try:
            s.put_bytes(b"x" * 4_000_000, "/tmp/llmfleet-session-cut")
        except BaseException as exc:  # noqa: BLE001 - the test reads what the write raised
            got.append(exc)

    t = threading.Thread(target=write)
    t.start()
    time.sleep(1.0)
    started = time.monotonic()
    s.interrupt()  # what the runner's Ctrl-C hook calls
    t.join(10)
    assert not t.is_alive() and time.monotonic() - started < 2.5
    # not Unreachable: the host did nothing wrong, and the run still releases its lock there
    assert isinstance(got[0], InterruptedError) and str(got[0]).startswith("interrupted while writing"), got
    lab_fault(name, "restore")
    s.put_bytes(b"after", "/tmp/llmfleet-session-cut")  # cleanup after Ctrl-C gets a new SFTP channel
    assert s.get_bytes("/tmp/llmfleet-session-cut") == b"after"
