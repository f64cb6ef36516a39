"""`invoke exec`'s engine on scripted hosts: parallel, per host, failures and unreachable hosts kept apart."""

from __future__ import annotations

import threading
import time

import pytest

from llmfleet.cli import exec_tasks
from llmfleet.errors import InputError
from llmfleet.testing import FakeNetwork, result, unreachable
from llmfleet.transport import Endpoint


def _eps(*names: str) -> list[Endpoint]:
    return [Endpoint(n, f"198.51.100.{i + 1}") for i, n in enumerate(names)]


def test_each_host_answers_in_inventory_order_and_failures_are_kept_apart():
    net = FakeNetwork()
    net.host("a").on(r"^amd-smi static$", "GPU 0\n")
    net.host("b").on(r"^amd-smi static$", result("amd-smi static", 3, "", "amd-smi: not found\n"))
    net.host("c").connect_error = unreachable("connection to 198.51.100.3:22 timed out after 15s")
    out = exec_tasks.run_everywhere(_eps("c", "a", "b"), "amd-smi static", connect=net.connect)
    assert list(out) == ["c", "a", "b"]
    assert out["a"].as_json() == {"rc": 0, "stdout": "GPU 0\n", "stderr": "", "unreachable": False}
    assert out["b"].rc == 3 and out["b"].stderr == "amd-smi: not found\n" and not out["b"].ok
    assert out["c"].rc is None and "timed out" in out["c"].stderr and out["c"].as_json()["unreachable"]
    assert all(s.closed for s in net.sessions) and net.unexpected == {}


def test_hosts_run_at_the_same_time_up_to_forks():
    net = FakeNetwork()
    running, peak, lock = [0], [0], threading.Lock()

    def slow(cmd: str):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return result(cmd, 0, "ok\n")

    names = [f"h{i}" for i in range(8)]
    for n in names:
        net.host(n).on(r"^true$", slow)
    exec_tasks.run_everywhere(_eps(*names), "true", forks=4, connect=net.connect)
    assert peak[0] == 4
    peak[0] = 0
    exec_tasks.run_everywhere(_eps(*names), "true", forks=1, connect=net.connect)
    assert peak[0] == 1


def test_output_is_text_never_markup():
    out = {"a": exec_tasks.HostOutput(0, "[bold red]not markup[/]\n", ""),
           "b": exec_tasks.HostOutput(None, "", "unreachable: [x]")}  # fmt: skip
    blocks = [b.plain for b in exec_tasks.render(out)]
    assert blocks[0].startswith("a | ok | ") and "[bold red]not markup[/]" in blocks[0]
    assert blocks[1].startswith("b | UNREACHABLE") and "unreachable: [x]" in blocks[1]


@pytest.mark.parametrize("cmd,forks", [("  ", 4), ("true", 0)])
def test_bad_input_is_an_input_error(cmd: str, forks: int):
    with pytest.raises(InputError):
        exec_tasks.run_everywhere(_eps("a"), cmd, forks=forks, connect=FakeNetwork().connect)
