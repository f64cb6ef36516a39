"""The rolling replacement's state machine on a scripted host (llmfleet.testing), and the
runner's staged batches: image on every host first, a canary, a stop after a failed batch.

The lab (tests/e2e/test_rollout_lab.py) is the end-to-end truth with the real router.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import pytest

from llmfleet import catalog, deployment, runner, settings
from llmfleet.actions import rollout
from llmfleet.playbook import Playbook, Role, Step
from llmfleet.steps import CHANGED, OK, HostContext, RunContext, StepFailed, spec
from llmfleet.testing import FakeNetwork
from llmfleet.transport import Endpoint

from .fake_hosts import AUDIT

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
OOM_LOG = ("[2025-01-01 00:00:00 TP0] Capture cuda graph begin.\n"
           "torch.OutOfMemoryError: HIP out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 191.98 GiB\n")
VRAM_FREE = json.dumps({"gpu_data": [{"gpu": i, "mem_usage": {"used_vram": {"value": 283, "unit": "MB"}}} for i in range(8)]})
VRAM_HELD = json.dumps({"gpu_data": [{"gpu": i, "mem_usage": {"used_vram": {"value": 150000, "unit": "MB"}}} for i in range(8)]})


def _ctx(net: FakeNetwork, sets: dict[str, Any] | None = None) -> HostContext:
    pb = Playbook(name="deploy", path=Path("deploy.yml"), roles=[], vars={})
    run = RunContext(playbook=pb, catalog=catalog.load(), mode="apply", run_id="run-1")
    s = settings.for_host(None, {}, {"model": "scout", "hardware": "mi300x", "health_interval": 0.01,
                                     "drain_timeout": 5, **(sets or {})})  # fmt: skip
    host = SimpleNamespace(name="h1", address="198.51.100.7", vars={})
    ctx = HostContext(run, host, s.settings, s.resolved, net.connect(Endpoint("h1", "198.51.100.7")))
    ctx.state.container_changed = True
    ctx.state.deployment = deployment.build(run.catalog, s.settings, None, False)
    return ctx


def _serving_host(net: FakeNetwork, new_server_dies: bool) -> Any:
    h = net.host("h1")
    h.on_http(8000, "/health", 200).on_http(8000, "/v1/models", 200, json.dumps({"data": [{"id": SCOUT}]}))
    h.on(r"--format '\{\{\.Image\}\}' llmfleet-sglang$", "sha256:old\n")
    h.on(r"get_load", json.dumps([[200, json.dumps([{"num_reqs": 0}])]]) + "\n")
    h.on(r"^docker stop -t 60 llmfleet-sglang$", 0)
    h.on(r"State.Status.* llmfleet-sglang-previous$", "exited 0\n")
    h.on(r"^docker (rm -f|rename|start) ", 0)
    h.on(r"amd-smi metric", VRAM_FREE)
    h.on(r"ls -A", "aiter\n")
    h.on(r"^docker run -d --name llmfleet-sglang ", 0)
    if new_server_dies:
        h.on(r"State.Status.* llmfleet-sglang$", "exited 1\n", times=2)
        h.on(r"^docker logs --tail \d+ llmfleet-sglang$", OOM_LOG, times=2)
    h.on(r"State.Status.* llmfleet-sglang$", "running 0\n")
    generated = json.dumps({"text": " Paris", "meta_info": {"completion_tokens": 8}})
    h.on(r"health_generate", json.dumps([[200, ""], [200, generated]]))
    h.on(AUDIT, 0)
    return h


def test_replace_keeps_the_previous_and_gates_the_new():
    net = FakeNetwork()
    h = _serving_host(net, new_server_dies=False)
    ctx = _ctx(net)
    status, message = rollout.replace(ctx, ctx.deployment, ["docker", "run", "-d", "--name", "llmfleet-sglang", "img"], "config changed")
    assert status == CHANGED and "previous kept as llmfleet-sglang-previous" in message
    order = [c for c in h.commands if c.startswith(("docker stop", "docker rename", "docker rm", "docker run", "sh -c 'amd-smi"))]
    assert order == ["docker stop -t 60 llmfleet-sglang", "docker rm -f llmfleet-sglang-previous",
                     "docker rename llmfleet-sglang llmfleet-sglang-previous", order[3],
                     "docker run -d --name llmfleet-sglang img"]  # fmt: skip
    assert "amd-smi" in order[3]  # GPU memory checked before the new server starts
    assert ctx.outcome == "upgraded"
    assert ctx.run.host_meta["h1"]["rollout"]["image_before"] == "sha256:old"
    assert any("deploy upgraded image sha256:old" in c for c in h.ran(AUDIT))


def test_failed_gate_rolls_back_to_the_previous_container_with_the_cause():
    net = FakeNetwork()
    h = _serving_host(net, new_server_dies=True)
    ctx = _ctx(net)
    with pytest.raises(StepFailed, match="rolled back"):
        rollout.replace(ctx, ctx.deployment, ["docker", "run", "-d", "--name", "llmfleet-sglang", "img"], "config changed")
    assert ctx.outcome.startswith("rolled back (out of GPU memory; fix: ") and "mem-fraction-static" in ctx.outcome
    after_run = h.commands[h.commands.index("docker run -d --name llmfleet-sglang img"):]
    assert [c for c in after_run if c.startswith(("docker rm", "docker rename", "docker start", "docker pull"))] == [
        "docker rm -f llmfleet-sglang", "docker rename llmfleet-sglang-previous llmfleet-sglang", "docker start llmfleet-sglang"]
    assert any("health_generate" in c for c in after_run)  # the restored server is gated again


def test_no_rollback_leaves_the_failed_host_as_it_is():
    net = FakeNetwork()
    h = _serving_host(net, new_server_dies=True)
    ctx = _ctx(net, {"rollback": False})
    with pytest.raises(StepFailed, match="rollback off"):
        rollout.replace(ctx, ctx.deployment, ["docker", "run", "-d", "--name", "llmfleet-sglang", "img"], "config changed")
    assert not h.ran(r"^docker start") and ctx.outcome.startswith("failed, left as is")


def test_gpu_memory_held_past_the_deadline_fails_with_the_fix():
    net = FakeNetwork()
    net.host("h1").on(r"amd-smi metric", VRAM_HELD)
    ctx = _ctx(net, {"gpu_free_timeout": 0.01})
    with pytest.raises(StepFailed, match="GPU memory still held .*amd-smi process"):
        rollout.wait_gpu_free(ctx)


def test_vram_readings_of_both_tools():
    assert rollout.parse_vram_used(VRAM_FREE) == [283.0] * 8
    assert rollout.parse_vram_used(json.dumps([{"mem_usage": {"used_vram": 12}}])) == [12.0]
    rocm = {"card0": {"VRAM Total Memory (B)": "206141652992", "VRAM Total Used Memory (B)": "283000000"}}
    assert rollout.parse_vram_used(json.dumps(rocm)) == [283.0]
    assert rollout.parse_vram_used("N/A") is None
    assert rollout.parse_vram_used(json.dumps([{"mem_usage": {"used_vram": "N/A"}}])) is None


# ------------------------------------------------------------------ the runner's staged batches


def _mark(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    ctx.probe(["stage", ctx.name])
    return OK, ""


def _replace(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    ctx.probe(["replace", ctx.name])
    if ctx.name in args.get("fail_on", []):
        ctx.outcome = "rolled back (test)"
        raise StepFailed("gate failed")
    ctx.outcome = "upgraded"
    return CHANGED, ""


ACTIONS = {"mark": spec(_mark), "replace": spec(_replace, args=["fail_on"])}


def _staged(fail_on: list[str], names: list[str], serial: str, max_fail: float | None = None):
    roles = [Role("image", [Step("stage", "mark", "image")]),
             Role("server", [Step("replace", "replace", "server", args={"fail_on": fail_on})])]  # fmt: skip
    pb = Playbook(name="deploy", path=Path("deploy.yml"), roles=roles, vars={}, serial_from="server")
    net = FakeNetwork()
    order: list[str] = []
    for n in names:
        net.host(n).on(r"^(stage|replace) ", lambda c: (order.append(c), 0)[1])
    ctx = RunContext(playbook=pb, catalog=catalog.load(), mode="apply", run_id="run-1")
    plans = [runner.HostPlan(SimpleNamespace(name=n, address="198.51.100.1", vars={}), Endpoint(n, "198.51.100.1"),
                             settings=None, resolved={}) for n in names]  # fmt: skip
    return runner.run(ctx, plans, ACTIONS, serial=serial, connect=net.connect, max_fail_percentage=max_fail), order


def test_every_host_is_staged_before_the_canary_is_replaced():
    names = ["h1", "h2", "h3", "h4"]
    report, order = _staged([], names, "1,50%")
    assert sorted(order[:4]) == [f"stage {n}" for n in names]
    # batches [h1], [h2, h3], [h4]: in order, the hosts of one batch in parallel
    assert order[4] == "replace h1" and sorted(order[5:7]) == ["replace h2", "replace h3"] and order[7:] == ["replace h4"]
    assert {n: r.message for n, r in report.recap.items()} == {n: "upgraded" for n in names}


def test_a_failed_canary_stops_the_rollout():
    report, order = _staged(["h1"], ["h1", "h2", "h3"], "1")
    assert [o for o in order if o.startswith("replace")] == ["replace h1"]
    assert report.recap["h1"].message == "rolled back (test)" and not report.recap["h1"].success
    assert report.recap["h2"].message == report.recap["h3"].message == "untouched (rollout stopped)"
    assert not report.success


def test_max_fail_percentage_lets_the_rollout_go_on():
    report, order = _staged(["h1"], ["h1", "h2", "h3"], "1", max_fail=100)
    assert [o for o in order if o.startswith("replace")] == ["replace h1", "replace h2", "replace h3"]
    assert report.recap["h3"].message == "upgraded"


def test_forks_bound_the_hosts_working_at_once_before_and_after_the_split():
    """`--forks 1 --serial 2`: one host at a time stages the image, and one at a time is replaced."""
    busy: list[str] = []
    overlap: list[tuple[str, ...]] = []
    guard = threading.Lock()

    def slow(c: str) -> int:
        with guard:
            busy.append(c)
            overlap.append(tuple(busy))
        time.sleep(0.05)
        with guard:
            busy.remove(c)
        return 0

    roles = [Role("image", [Step("stage", "mark", "image")]),
             Role("server", [Step("replace", "replace", "server", args={"fail_on": []})])]  # fmt: skip
    pb = Playbook(name="deploy", path=Path("deploy.yml"), roles=roles, vars={}, serial_from="server")
    net = FakeNetwork()
    names = ["h1", "h2", "h3", "h4"]
    for n in names:
        net.host(n).on(r"^(stage|replace) ", slow)
    ctx = RunContext(playbook=pb, catalog=catalog.load(), mode="apply", run_id="run-1")
    plans = [runner.HostPlan(SimpleNamespace(name=n, address="198.51.100.1", vars={}), Endpoint(n, "198.51.100.1"),
                             settings=None, resolved={}) for n in names]  # fmt: skip
    report = runner.run(ctx, plans, ACTIONS, forks=1, serial="2", connect=net.connect)
    assert report.success and len(overlap) == 8
    assert max(len(o) for o in overlap) == 1, overlap


def test_serial_lists_ramp_up():
    hosts = list(range(9))
    assert runner.batches(hosts, "1,25%") == [[0], [1, 2], [3, 4], [5, 6], [7, 8]]
    assert runner.batches(hosts, "1,3") == [[0], [1, 2, 3], [4, 5, 6], [7, 8]]
    assert runner.too_many_failed(1, 4, 25) is False and runner.too_many_failed(2, 4, 25) is True


# ------------------------------------------------------------------ the GSM8K gate

GATE_LOG_ON_HOST = "/var/lib/llmfleet/work/runs/run-1/gate/gsm8k.log"


def _gsm8k_host(net: FakeNetwork, tmp_path: Path, accuracy: float) -> tuple[Any, dict[str, Any]]:
    """A serving host whose new server answers `accuracy` of the gate's GSM8K questions."""
    h = _serving_host(net, new_server_dies=False)
    h.on(r"sglang\.test\.few_shot_gsm8k", 0)
    h.on(r"^test -f ", 1)
    h.on(r"^install -d ", 0)
    h.files[GATE_LOG_ON_HOST] = f"Accuracy: {accuracy:.3f}\nInvalid: 0.000\nLatency: 2.1 s\n".encode()
    data = tmp_path / "gsm8k.jsonl"
    data.write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    return h, {"gate_gsm8k": 5, "gate_min_accuracy": 0.9, "gsm8k_file": str(data)}


def test_gsm8k_gate_below_the_threshold_rolls_back_with_the_accuracy_as_cause(tmp_path):
    net = FakeNetwork()
    h, sets = _gsm8k_host(net, tmp_path, 0.6)
    ctx = _ctx(net, sets)
    with pytest.raises(StepFailed, match="rolled back"):
        rollout.replace(ctx, ctx.deployment, ["docker", "run", "-d", "--name", "llmfleet-sglang", "img"], "config changed")
    assert ctx.outcome == "rolled back (accuracy 0.6 below 0.9 on 5 questions)"
    quiz = h.ran(r"few_shot_gsm8k")
    assert len(quiz) == 1  # the restored server is gated on health and generation, not quizzed again
    assert "--num-questions 5" in quiz[0] and "--data-path /llmfleet/data/gsm8k-" in quiz[0]
    staged = [p for p in h.files if "/data/gsm8k-" in p]
    assert staged and h.commands.index(h.ran(r"^docker stop")[0]) > h.commands.index(h.ran(r"^test -f ")[0])
    assert ctx.run.host_files["h1"][rollout.GATE_LOG].startswith(b"Accuracy: 0.600")


def test_gsm8k_gate_at_the_threshold_upgrades(tmp_path):
    net = FakeNetwork()
    h, sets = _gsm8k_host(net, tmp_path, 0.9)
    ctx = _ctx(net, sets)
    status, message = rollout.replace(ctx, ctx.deployment, ["docker", "run", "-d", "--name", "llmfleet-sglang", "img"], "v")
    assert status == CHANGED and ctx.outcome == "upgraded"
    assert "GSM8K 0.9 on 5 questions (>= 0.9)" in message


def test_gsm8k_gate_without_a_data_file_fails_before_anything_stops():
    net = FakeNetwork()
    h = _serving_host(net, new_server_dies=False)
    ctx = _ctx(net, {"gate_gsm8k": 5})
    with pytest.raises(StepFailed, match="set gsm8k_file"):
        rollout.replace(ctx, ctx.deployment, ["docker", "run", "-d", "--name", "llmfleet-sglang", "img"], "v")
    assert not h.ran(r"^docker (stop|rename|run)")


def test_accuracy_verdict():
    assert rollout.accuracy_verdict("Accuracy: 0.950\n", 20, 1.0) == (0.95, "accuracy 0.95 below 1 on 20 questions")
    assert rollout.accuracy_verdict("Accuracy: 1.000\n", 5, 1.0) == (1.0, None)
    assert rollout.accuracy_verdict("Traceback ...\n", 5, 0.5)[1] == "few_shot_gsm8k printed no accuracy on 5 questions"


@pytest.mark.parametrize("n, a, error", [
    ("5", "1.01", "0 < A <= 1"), ("5", "0", "0 < A <= 1"), ("5", "x", "0 < A <= 1"),
    (None, "0.8", "needs --gate-gsm8k"), ("0", None, "1 or more"),
])  # fmt: skip
def test_gate_flags_are_checked(n, a, error):
    from llmfleet.cli.deploy import gate_vars
    from llmfleet.errors import InputError

    with pytest.raises(InputError, match=error):
        gate_vars(n, a)


def test_gate_flags_become_settings():
    from llmfleet.cli.deploy import gate_vars

    assert gate_vars("20", "1.0") == {"gate_gsm8k": 20, "gate_min_accuracy": 1.0}
    assert gate_vars(None, None) == {"gate_gsm8k": None}
