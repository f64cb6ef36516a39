"""The image relay's coordination (llmfleet.relay.Relay) with threads standing in for hops, and its commands."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from llmfleet import relay


def _simulate(names: list[str], hop_s: float = 0.02, fail_feeder: str | None = None, fail_receiver: str | None = None,
              holders: tuple[str, ...] = (), stream: bool = False) -> tuple[relay.Relay, dict[str, str], list[tuple[str, str]]]:  # fmt: skip
    """Each name is a host thread doing what ensure_image does: wait for a feeder, 'transfer', hold, serve.

    With ``stream``, a hop from a host that is still receiving ends when that host's own
    transfer ends, and breaks (the receiver starts again) when that one fails.
    """
    r = relay.Relay(stream=stream)
    outcome: dict[str, str] = {}
    hops: list[tuple[str, str]] = []
    lock = threading.Lock()
    ended: dict[str, threading.Event] = {n: threading.Event() for n in names}
    good: dict[str, bool] = {}
    for h in holders:
        r.hold(h)

    def host(name: str) -> None:
        while True:
            hop = r.feeder_for(name, timeout=10)
            with lock:
                hops.append((hop.feeder, name))
            streaming_from = hop.feeder if hop.feeder in ended and not ended[hop.feeder].is_set() else None
            time.sleep(hop_s)
            if streaming_from is not None:
                ended[streaming_from].wait(10)
                if not good.get(streaming_from):
                    r.finished(hop, ok=False, feeder_failed=f"{hop.feeder} cut" if hop.feeder == fail_feeder else None)
                    continue
            if name == fail_receiver:
                good[name] = False
                ended[name].set()
                r.finished(hop, ok=False)
                outcome[name] = "failed"
                return
            if hop.feeder == fail_feeder:
                r.finished(hop, ok=False, feeder_failed=f"{fail_feeder} cut")
                continue
            good[name] = True
            ended[name].set()
            r.finished(hop, ok=True)
            break
        outcome[name] = hop.feeder
        r.serve(name, timeout=10)

    threads = [threading.Thread(target=host, args=(n,)) for n in names]
    for i, t in enumerate(threads):
        t.start()
        time.sleep(0.005 if i == 0 else 0.001)  # the first name asks first (the control node feeds it)
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    return r, outcome, hops


def test_streamed_chain_each_host_feeds_the_next_while_it_receives():
    names = [f"h{i}" for i in range(1, 9)]
    r, outcome, hops = _simulate(names, stream=True)
    assert [f for f, _ in hops].count(relay.CONTROL) == 1
    assert all(v != "failed" for v in outcome.values()) and set(outcome) == set(names)
    # one chain: every source feeds exactly one host, so the hops form a path from the control node
    sources = list(outcome.values())
    assert len(set(sources)) == len(sources) == len(names)
    walk, seen = relay.CONTROL, 0
    by_source = {src: host for host, src in outcome.items()}
    while walk in by_source:
        walk, seen = by_source[walk], seen + 1
    assert seen == len(names)
    assert r.inflight == 0 and not r.streams


def test_streamed_chain_a_failed_receiver_breaks_only_its_tail_which_is_fed_again():
    names = [f"h{i}" for i in range(1, 7)]
    r, outcome, hops = _simulate(names, stream=True, fail_receiver="h3")
    assert outcome["h3"] == "failed" and "h3" not in r.holders
    assert all(outcome[n] not in ("failed", "h3") for n in names if n != "h3")
    assert ("h3", "h4") in hops  # h4 had started from h3, then started again from someone else
    assert [f for f, _ in hops].count(relay.CONTROL) == 1


def test_streamed_chain_a_cut_feeder_is_dropped_and_the_rest_finish():
    names = [f"h{i}" for i in range(1, 7)]
    r, outcome, _ = _simulate(names, stream=True, fail_feeder="h2", fail_receiver="h2")
    assert "h2" in r.bad or outcome["h2"] == "failed"
    assert all(outcome[n] not in ("failed", "h2") for n in names if n != "h2")


def test_cancel_stops_waiters_and_servers():
    r = relay.Relay(stream=False)
    assert r.feeder_for("a").feeder == relay.CONTROL
    got: list[BaseException] = []

    def wait() -> None:
        try:
            r.feeder_for("b", timeout=5)
        except BaseException as exc:  # noqa: BLE001 - the test looks at what was raised
            got.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.05)
    r.cancel()
    t.join(2)
    assert not t.is_alive() and isinstance(got[0], relay.Cancelled)


def test_the_control_node_feeds_exactly_once_and_holders_double():
    names = [f"h{i}" for i in range(1, 9)]
    r, outcome, hops = _simulate(names)
    assert [f for f, _ in hops].count(relay.CONTROL) == 1
    assert set(outcome) == set(names) and all(v != "failed" for v in outcome.values())
    assert r.sources == outcome and r.inflight == 0 and not r.waiting
    # a binomial tree: 8 hosts in 4 rounds (1 from the control node, then 1, 2, 4 holders feeding)
    depth = {relay.CONTROL: 0}
    for feeder, receiver in hops:
        depth[receiver] = depth[feeder] + 1
    assert max(depth.values()) <= 4


def test_hosts_that_have_the_image_feed_and_the_control_node_sends_nothing():
    _, _, hops = _simulate(["h3", "h4", "h5"], holders=("h1", "h2"))
    assert relay.CONTROL not in {f for f, _ in hops}
    assert {f for f, _ in hops} <= {"h1", "h2", "h3", "h4"}


def test_a_feeder_cut_mid_transfer_is_dropped_and_its_receivers_fed_by_others():
    names = [f"h{i}" for i in range(1, 9)]
    r, outcome, hops = _simulate(names, fail_feeder="h1")
    assert "h1" in r.bad and r.bad["h1"] == "h1 cut"
    assert all(outcome[n] != "h1" for n in names)  # whoever h1 started to feed got it elsewhere
    assert all(v != "failed" for v in outcome.values())
    assert len([1 for f, _ in hops if f == "h1"]) == 1  # dropped after its first failure
    assert [f for f, _ in hops].count(relay.CONTROL) == 2  # h1 was the only holder: the control node again


def test_a_failed_receiver_is_reported_and_the_rest_finish():
    names = [f"h{i}" for i in range(1, 7)]
    r, outcome, _ = _simulate(names, fail_receiver="h2")
    assert outcome["h2"] == "failed" and "h2" not in r.holders and "h2" not in r.sources
    assert all(outcome[n] not in ("failed", "h2") for n in names if n != "h2")


def test_a_waiter_with_no_holder_times_out():
    r = relay.Relay(stream=False)
    first = r.feeder_for("a")
    assert first.feeder == relay.CONTROL
    with pytest.raises(TimeoutError):
        r.feeder_for("b", timeout=0.05)


def test_authorized_line_restricts_the_key_to_one_command_one_source_and_a_deadline():
    now = datetime(2025, 1, 2, 3, 4, tzinfo=timezone.utc)
    line = relay.authorized_line("ssh-ed25519 AAAAC3Nza comment", "10.213.0.12",
                                 relay.serve_command("lmsysorg/sglang:v0.5.9-rocm720-mi30x", True), "llmfleet-relay-x", now)  # fmt: skip
    assert line == ('restrict,from="10.213.0.12",expiry-time="202501020904Z",'
                    'command="docker save lmsysorg/sglang:v0.5.9-rocm720-mi30x | zstd -q -1 -T0 -c" '
                    "ssh-ed25519 AAAAC3Nza llmfleet-relay-x")  # fmt: skip
    for bad in ('10.0.0.1" ,command="sh', "a b"):
        with pytest.raises(ValueError):
            relay.authorized_line("ssh-ed25519 AAAA", bad, "docker save x", "c")


def test_receive_pipeline_status_and_progress_parsing():
    cmd = relay.receive_command(relay.ssh_argv("/tmp/llmfleet-relay.abc", "10.213.0.11", 22, "root"), True)
    assert "StrictHostKeyChecking=yes" in cmd and "UserKnownHostsFile=/tmp/llmfleet-relay.abc/known_hosts" in cmd
    assert "| zstd -q -d -c | docker load" in cmd and "relay-status" in cmd
    assert relay.parse_status("relay-alive\nLoaded image: x\nrelay-status 0 0 0 0\n") == [0, 0, 0, 0]
    assert relay.feeder_failed(relay.parse_status("relay-status 255 0 1 1"))
    assert not relay.feeder_failed(relay.parse_status("relay-status 0 0 0 1"))
    assert relay.progress_bytes("1048576 bytes (1.0 MB) copied, 1 s\r20971520 bytes (21 MB, 20 MiB) copied, 2 s") == 20971520


def test_a_receiver_whose_hop_failed_keeps_the_holders_until_it_asks_again():
    r = relay.Relay()
    r.hold("h1")
    hop = r.feeder_for("h2", timeout=1)
    assert hop.feeder == "h1"
    r.finished(hop, ok=False, again=True)
    assert r.needed()  # h1 must not leave between h2's failed hop and its next request
    again = r.feeder_for("h2", timeout=1)
    assert again.feeder == "h1" and not r.again
    r.finished(again, ok=True)
    assert not r.needed()


def test_stop_serving_stops_an_unfinished_receiving_pipeline_only():
    script = relay.stop_serving("/tmp/llmfleet-relay.x")[2]
    assert '[ ! -e "$1/ok" ]' in script and 'pkill -P "$p"' in script  # a finished transfer's PID may be reused
    assert relay.serve_spool("/tmp/llmfleet-relay.x").startswith("i=0; while [ -d /tmp/llmfleet-relay.x ]")


def test_holders_stay_for_a_host_still_on_its_way_and_leave_when_it_is_gone():
    """A rerun: h1 and h2 hold already; h3 (slowed by its lock or facts) asks later and is fed by a holder."""
    r = relay.Relay()
    r.expect("h3")
    r.expect("h4")
    for h in ("h1", "h2"):
        r.hold(h)
    assert r.needed()
    served = threading.Thread(target=r.serve, args=("h1",), kwargs={"timeout": 10})
    served.start()
    time.sleep(0.1)
    assert served.is_alive()  # h1 stays while h3 and h4 may still ask
    r.arrived("h3")
    hop = r.feeder_for("h3", timeout=1)
    assert hop.feeder in ("h1", "h2")  # not the control node
    r.finished(hop, ok=True)
    assert served.is_alive()  # h4 is still on its way
    r.leave("h4")  # its run ended before its image step (a failed preflight)
    served.join(5)
    assert not served.is_alive() and not r.needed()


def test_a_host_that_asks_or_holds_is_no_longer_pending_even_unannounced():
    """Steps that use the relay without the image step's announcement (the lab's image push) must not hang it."""
    r = relay.Relay()
    for h in ("h1", "h2", "h3"):
        r.expect(h)
    r.hold("h1")
    hop = r.feeder_for("h2", timeout=1)
    r.finished(hop, ok=True)
    assert r.pending == {"h3"}
    done = threading.Thread(target=r.serve, args=("h1",), kwargs={"timeout": 10})
    done.start()
    r.hold("h3")  # it had the image already
    done.join(5)
    assert not done.is_alive() and not r.needed()


def test_the_control_node_waits_a_moment_for_a_host_on_its_way_that_may_hold_the_image():
    """A rerun where the restored host asks before the others have looked at their own image: a peer feeds it."""
    r = relay.Relay(peer_grace=5.0)
    for h in ("h1", "h2", "h3"):
        r.expect(h)
    got: list[relay.Hop] = []
    asker = threading.Thread(target=lambda: got.append(r.feeder_for("h3", timeout=10)))
    asker.start()
    time.sleep(0.2)
    assert not got  # h1 and h2 are still on their way
    r.hold("h1")
    asker.join(2)
    assert got and got[0].feeder == "h1"


def test_the_control_node_sends_once_every_host_has_come_or_the_grace_is_over():
    r = relay.Relay(peer_grace=5.0)
    for h in ("h1", "h2"):
        r.expect(h)
    started = time.monotonic()
    got: list[relay.Hop] = []
    first = threading.Thread(target=lambda: got.append(r.feeder_for("h1", timeout=10)))
    first.start()
    time.sleep(0.1)
    r.leave("h2")  # h2's run ended before its image step: nobody else may hold it
    first.join(2)
    assert got[0].feeder == relay.CONTROL and time.monotonic() - started < 1.0
    r.finished(got[0], ok=True)

    late = relay.Relay(peer_grace=0.3)
    late.expect("slow")  # never comes in time (its lock or facts take long)
    started = time.monotonic()
    assert late.feeder_for("h1", timeout=10).feeder == relay.CONTROL
    assert 0.3 <= time.monotonic() - started < 1.5
