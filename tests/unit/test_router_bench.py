"""`invoke bench --via-router`: the command built for the router, and the action on a scripted host
(llmfleet.testing): one host's container runs the client, the results go to the run's router/ folder.
The lab (tests/e2e/test_router_lab.py) runs the real client through the real router."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmfleet import catalog, deployment, settings
from llmfleet.actions import router_bench
from llmfleet.commands import sglang
from llmfleet.facts import Container
from llmfleet.playbook import Playbook
from llmfleet.steps import CHANGED, OK, HostContext, RunContext, StepFailed
from llmfleet.testing import FakeNetwork
from llmfleet.transport import Endpoint

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
URL = "http://10.213.0.1:30000"
BLOCK = "============ Serving Benchmark Result ============\nSuccessful requests:                     10\nOutput token throughput (tok/s):         123.4\n"


def _ctx(net: FakeNetwork, name: str, sets: dict[str, Any]) -> HostContext:
    pb = Playbook(name="bench", path=Path("bench-router.yml"), roles=[], vars={})
    run = RunContext(playbook=pb, catalog=catalog.load(), mode="apply", run_id="run-9")
    s = settings.for_host(None, {}, {"model": "scout", "hardware": "mi300x", "profile": "low", "dataset": "random-ids",
                                     "warmup": False, "telemetry": False, **sets})  # fmt: skip
    ctx = HostContext(run, SimpleNamespace(name=name, address="198.51.100.7", vars={}), s.settings, s.resolved,
                      net.connect(Endpoint(name, "198.51.100.7")))  # fmt: skip
    ctx.state.deployment = deployment.build(run.catalog, s.settings, None, False)
    ctx.state.facts = SimpleNamespace(container=Container("c1", "sha256:x", "running", 0))  # type: ignore[assignment]
    ctx.state.data = {}
    return ctx


def test_bench_serving_targets_the_router_url():
    argv = sglang.bench_serving(sglang.BenchSpec(hf_id=SCOUT, port=8000, num_prompts=10, max_concurrency=1,
                                                 dataset="random-ids", base_url=URL))  # fmt: skip
    assert argv[argv.index("--base-url") + 1] == URL
    assert "--host" not in argv and "--port" not in argv
    local = sglang.bench_serving(sglang.BenchSpec(hf_id=SCOUT, port=8000, num_prompts=10, max_concurrency=1, dataset="random-ids"))
    assert local[local.index("--host"):local.index("--host") + 4] == ["--host", "127.0.0.1", "--port", "8000"]


def test_the_client_host_benches_the_router_and_files_results_under_router():
    net = FakeNetwork()
    h = net.host("lab1")
    h.on(r"sglang\.bench_serving", 0)
    h.on(r"^rm -rf ", 0)
    h.files["/var/lib/llmfleet/work/router-runs/run-9/bench/low.log"] = BLOCK.encode()
    h.files["/var/lib/llmfleet/work/router-runs/run-9/bench/low.jsonl"] = b'{"completed": 10}\n'
    ctx = _ctx(net, "lab1", {"router_url": URL, "router_bench_host": "lab1"})
    status, message = router_bench.bench_via_router(ctx, {})
    assert status == CHANGED and message.startswith("low: 10 ok")
    [cmd] = h.ran(r"sglang\.bench_serving")
    assert f"--base-url {URL}" in cmd and "--num-prompts 10" in cmd
    assert "/llmfleet/router-runs/run-9/bench/low.log" in cmd  # outside runs/<id>/: collect never files it under lab1
    files = ctx.run.host_files["router"]
    assert files["bench/low.log"] == BLOCK.encode() and files["bench/low.jsonl"] == b'{"completed": 10}\n'
    assert json.loads(files["router.json"]) == {"url": URL, "client_host": "lab1", "profiles": ["low"], "model": SCOUT}
    assert "lab1" not in ctx.run.host_files


def test_other_hosts_only_wait_for_collect():
    net = FakeNetwork()
    ctx = _ctx(net, "lab2", {"router_url": URL, "router_bench_host": "lab1"})
    assert router_bench.bench_via_router(ctx, {}) == (OK, f"worker: the client runs on lab1 against {URL}")
    assert net.host("lab2").commands == []


def test_without_a_router_url_the_action_says_how():
    ctx = _ctx(FakeNetwork(), "lab1", {})
    with pytest.raises(StepFailed, match="invoke bench --via-router"):
        router_bench.bench_via_router(ctx, {})


def test_router_url_setting_is_checked():
    from llmfleet.errors import InputError

    with pytest.raises(InputError, match="router-url .*Expected `str` matching"):
        settings.for_host(None, {}, {"router_url": "http://x:1/path; rm -rf /"})


def test_report_shows_a_router_run_with_the_router_as_a_host(tmp_path):
    from rich.console import Console

    from llmfleet import archive, report

    fixture = next((Path(__file__).parents[1] / "fixtures" / "runs").glob("2*/lab1/bench/low.log")).read_text()
    hosts = {h: {"hardware": "mi300x", "image": "lmsysorg/sglang:v0.5.9-rocm720-mi30x"} for h in ("lab1", "lab2")}
    meta = {"kind": "bench", "model": "scout", "hf_id": SCOUT, "hosts": hosts, "sglang_version": "0.5.9",
            "flags": {"router_url": URL, "router_bench_host": "lab1", "profile": "low"}}  # fmt: skip
    with archive.new_run(meta, root=tmp_path) as run:
        run.write("router/bench/low.log", fixture)
        run.write("router/router.json", json.dumps({"url": URL}))
        for h in hosts:
            run.write(f"{h}/server/docker.log", "ready to roll\n")
    rep = report.build_report(None, root=tmp_path)
    assert "router" in rep.hosts
    assert {r.host for r in rep.rows if r.profile == "low" and r.value is not None} == {"router"}
    console = Console(record=True, width=200)
    report.render_console(rep, console)
    assert "router" in console.export_text()
    assert "router" in report.render_html(rep)
    assert "router" in report.report_json(rep)["hosts"]
