"""bench_forks: how many hosts of one run have a benchmark or GSM8K client running at once.

Real hosts measure all at once (the default, unset); the lab's hosts share the control
node's cores, so its inventory sets 1. The bound is the run's, shared by every host's
thread: here real threads hold the slot while a fake client "runs", and the test counts
how many were inside at the same time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmfleet import catalog, settings
from llmfleet.actions import bench as bench_action
from llmfleet.errors import InputError
from llmfleet.lab import configs
from llmfleet.playbook import Playbook
from llmfleet.steps import Event, HostContext, RunContext, StepFailed


def run_context(mode: str = "apply") -> tuple[RunContext, list[Event]]:
    events: list[Event] = []
    pb = Playbook(name="bench", path=Path("pb.yml"), roles=[], vars={}, lock=False)
    return RunContext(playbook=pb, catalog=catalog.load(), mode=mode, run_id="run-1", emit=events.append), events


def host(run: RunContext, name: str, forks: int | None) -> HostContext:
    return HostContext(run, SimpleNamespace(name=name), SimpleNamespace(bench_forks=forks), {})  # type: ignore[arg-type]


def most_at_once(forks: int | None, hosts: int = 4, hold_s: float = 0.15) -> tuple[int, list[Event]]:
    """Run `hosts` threads through client_slot at once; the most that were inside together."""
    run, events = run_context()
    inside, most, lock = [0], [0], threading.Lock()
    start = threading.Barrier(hosts)

    def client(name: str) -> None:
        ctx = host(run, name, forks)
        start.wait()
        with bench_action.client_slot(ctx, "bench"):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(hold_s)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=client, args=(f"h{i}",)) for i in range(hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return most[0], events


def test_unset_every_host_measures_at_once() -> None:
    most, events = most_at_once(None)
    assert most == 4 and not [e for e in events if "waiting" in e.text]


@pytest.mark.parametrize("forks", [1, 2])
def test_bench_forks_bounds_the_hosts_whose_client_runs(forks: int) -> None:
    most, events = most_at_once(forks)
    assert most == forks
    waited = [e for e in events if "waiting for one of" in e.text]
    assert len(waited) >= 4 - forks and all(f"{forks} at a time" in e.text for e in waited)


def test_a_host_waiting_for_a_slot_stops_on_ctrl_c() -> None:
    run, _ = run_context()
    holder, waiter = host(run, "h1", 1), host(run, "h2", 1)
    got: list[BaseException] = []

    def wait() -> None:
        try:
            with bench_action.client_slot(waiter, "bench"):
                pass
        except StepFailed as exc:
            got.append(exc)

    with bench_action.client_slot(holder, "bench"):
        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.2)
        run.shared["interrupted"] = True  # what the runner sets on KeyboardInterrupt
        t.join(timeout=5)
    assert not t.is_alive() and got and "interrupted while waiting" in str(got[0])


def test_the_slot_is_given_back_when_the_client_fails() -> None:
    run, _ = run_context()
    with pytest.raises(StepFailed):
        with bench_action.client_slot(host(run, "h1", 1), "bench"):
            raise StepFailed("client exited 1")
    done = threading.Event()
    threading.Thread(target=lambda: (bench_action.client_slot(host(run, "h2", 1), "bench").__enter__(), done.set())).start()
    assert done.wait(timeout=2)


def test_dry_run_says_the_bound_and_never_waits() -> None:
    run, _ = run_context(mode="dry-run")
    a, b = host(run, "h1", 1), host(run, "h2", 1)
    with bench_action.client_slot(a, "bench"), bench_action.client_slot(b, "bench"):
        pass
    assert a.planned == ["bench with at most 1 host(s) of the run measuring at once (bench_forks)"]


def test_the_setting_has_one_default_all_at_once_and_takes_whole_numbers() -> None:
    decl = settings.load_declared()
    assert decl.owner["bench_forks"] == "bench" and decl.values["bench_forks"] is None
    assert settings.for_host(None, {}, {"bench_forks": "2"}).settings.bench_forks == 2
    with pytest.raises(InputError, match=r"--bench-forks 0: Expected `int` >= 1"):
        settings.for_host(None, {}, {"bench_forks": 0})


def test_the_lab_inventory_measures_one_host_at_a_time() -> None:
    import yaml

    text = configs.inventory_yaml([("lab1", "10.213.0.11")], ssh_key="/k", known_hosts_file="/kh",
                                  control_docker_host="unix:///d.sock", datasets={})
    assert yaml.safe_load(text)["all"]["children"]["lab"]["vars"]["bench_forks"] == 1
