"""The lab's simulated GPUs end to end: telemetry that follows the served load, --slow-gpu,
--hold-gpu-memory, the out-of-memory start at an over-committed --mem-fraction-static, the
capped control link, and the real bench_serving at the low profile's concurrency against the cookbook
(the high profile's calibration is measured by benchmarks/lab_calibration.py).

Everything is measured from outside, as an operator would: amd-smi/rocm-smi over ssh,
HTTP to the served port, `invoke deploy/bench/report`. Run under the lab lock.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from llmfleet.lab import lab_fault
from tests.helpers import cli

pytestmark = pytest.mark.lab

ENV = {"HF_TOKEN": "hf_gpuLabTestToken0123456789"}
PORT = 8000  # roles/sglang_server/defaults.yml


@pytest.fixture(scope="module")
def serving(lab):
    r = cli("deploy", "--hosts", "lab", "--model", "scout", "--json", env=ENV, timeout=1200)
    assert r.code == 0, r.stderr[-3000:]
    yield lab
    for host in lab.hosts:
        lab_fault(host.name, "restore")
    lab_fault("control", "restore")


def _metric(lab_ssh, address: str) -> list[dict]:
    out = lab_ssh(address, "amd-smi metric --json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert "simulated" in doc
    return doc["gpu_data"]


def _generate(address: str, tokens: int) -> float:
    """Seconds for one request of `tokens` output tokens (the simulated decode paces them)."""
    body = json.dumps({"text": "hello", "sampling_params": {"max_new_tokens": tokens, "ignore_eos": True}}).encode()
    req = urllib.request.Request(f"http://{address}:{PORT}/generate", data=body,
                                 headers={"Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert json.loads(resp.read())["meta_info"]["completion_tokens"] == tokens
    return time.monotonic() - started


def test_telemetry_follows_the_load(serving, lab_ssh):
    host = serving.hosts[0]
    # the deploy's own gate (or an earlier module's requests) may still be finishing: an idle GPU reads 0 within a
    # few heartbeats of the last request, and stays there
    deadline = time.monotonic() + 15
    idle = _metric(lab_ssh, host.address)[0]
    while idle["usage"]["gfx_activity"]["value"] != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        idle = _metric(lab_ssh, host.address)[0]
    assert idle["mem_usage"]["used_vram"]["value"] > 0.8 * idle["mem_usage"]["total_vram"]["value"]  # a server holds it
    assert idle["usage"]["gfx_activity"]["value"] == 0
    load = [threading.Thread(target=_generate, args=(host.address, 600)) for _ in range(24)]
    for t in load:
        t.start()
    time.sleep(2.0)
    busy = _metric(lab_ssh, host.address)[0]
    rocm = json.loads(lab_ssh(host.address, "rocm-smi --showpower --showuse --showmeminfo vram --showtemp --json").stdout)
    for t in load:
        t.join()
    assert busy["usage"]["gfx_activity"]["value"] > 50
    assert busy["power"]["socket_power"]["value"] > idle["power"]["socket_power"]["value"] + 100
    assert busy["temperature"]["hotspot"]["value"] > idle["temperature"]["hotspot"]["value"]
    assert int(rocm["card0"]["GPU use (%)"]) > 50 and "Simulated" in rocm["card0"]


@pytest.mark.alone  # measures timing
def test_slow_gpu_makes_a_running_server_slower_and_says_why(serving, lab_ssh):
    host = serving.hosts[-1]
    fast = min(_generate(host.address, 200) for _ in range(2))
    r = cli("lab.fault", "--host", host.name, "--slow-gpu", "40")
    assert r.code == 0, r.stderr
    time.sleep(1.0)  # the server re-reads the fault every 0.5 s
    slow = min(_generate(host.address, 200) for _ in range(2))
    assert 1.25 <= slow / fast <= 1.6, (fast, slow)
    load = threading.Thread(target=_generate, args=(host.address, 400))
    load.start()
    time.sleep(1.0)
    gpu = _metric(lab_ssh, host.address)[0]
    load.join()
    assert gpu["power"]["throttle_status"] == "THROTTLED" and gpu["temperature"]["hotspot"]["value"] >= 95
    assert cli("lab.fault", "--host", host.name, "--restore").code == 0
    time.sleep(1.0)
    assert min(_generate(host.address, 200) for _ in range(2)) < 1.15 * fast


def test_memory_is_freed_on_stop_unless_held(serving, lab_ssh):
    host = serving.hosts[-1]
    used = lambda: _metric(lab_ssh, host.address)[0]["mem_usage"]["used_vram"]["value"]
    name = "$(docker ps -q --filter label=org.llmfleet.config)"
    assert used() > 100_000
    assert lab_ssh(host.address, f"docker stop -t 5 {name}").returncode == 0
    time.sleep(0.5)
    assert used() < 1000  # stopped: freed
    assert lab_ssh(host.address, "docker start $(docker ps -aq --filter label=org.llmfleet.config)").returncode == 0
    deadline = time.monotonic() + 60
    while used() < 100_000 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cli("lab.fault", "--host", host.name, "--hold-gpu-memory").code == 0
    time.sleep(3.0)  # the new server is up and serving
    assert lab_ssh(host.address, f"docker stop -t 5 {name}").returncode == 0
    time.sleep(4.0)  # longer than a heartbeat: the server is gone, its memory is not
    assert used() > 100_000
    assert cli("lab.fault", "--host", host.name, "--restore").code == 0
    assert used() < 1000


def test_overcommitted_memory_fraction_dies_in_graph_capture(serving, lab_ssh):
    host = serving.hosts[-1]
    r = cli("deploy", "--hosts", host.name, "--model", "scout", "--set",
            "extra_server_args=--mem-fraction-static 0.96", env=ENV, timeout=600)
    assert r.code != 0
    logs = lab_ssh(host.address, "docker logs $(docker ps -aq --filter label=org.llmfleet.config | head -1) 2>&1").stdout
    assert "Capture cuda graph failed: HIP out of memory" in logs
    assert "set --mem-fraction-static to a smaller value" in logs
    r = cli("deploy", "--hosts", host.name, "--model", "scout", "--set", "extra_server_args=--mem-fraction-static 0.85",
            env=ENV, timeout=600)
    assert r.code == 0, r.stderr[-3000:]


@pytest.mark.alone  # measures timing
def test_control_link_cap_is_shared_by_every_host(serving, lab_ssh):
    mbit, size = 80, 10 * 1024 * 1024
    assert cli("lab.fault", "--host", "control", "--slow", str(mbit)).code == 0
    try:
        took: dict[str, float] = {}

        def push(address: str) -> None:
            started = time.monotonic()
            out = lab_ssh(address, "cat > /dev/null", input=b"\x5a" * size, timeout=120)
            assert out.returncode == 0
            took[address] = time.monotonic() - started

        pushers = [threading.Thread(target=push, args=(h.address,)) for h in serving.hosts[:2]]
        started = time.monotonic()
        for t in pushers:
            t.start()
        for t in pushers:
            t.join()
        wall = time.monotonic() - started
    finally:
        assert cli("lab.fault", "--host", "control", "--restore").code == 0
    predicted = 2 * size * 8 / (mbit * 1e6)  # both pushes through one capped uplink
    assert 0.85 * predicted <= wall <= 1.5 * predicted, (wall, predicted, took)


@pytest.mark.alone  # measures timing
def test_low_profile_with_the_real_client_answers_like_sglang(serving):
    """The real bench_serving through `invoke bench` and `invoke report`, a few short requests at the low
    profile's concurrency: the per-token figures (one decode step per token at concurrency 1) are the
    cookbook's. The high profile's calibration is a measurement, not a test: benchmarks/lab_calibration.py."""
    host = serving.hosts[0]
    r = cli("bench", "--hosts", host.name, "--model", "scout", "--profile", "low", "--num-prompts", "4",
            "--output-len", "200", "--json", env=ENV, timeout=600)  # fmt: skip
    assert r.code == 0, r.stderr[-3000:]
    run_id = Path(r.json["archive"]).name
    rep = cli("report", "--run", run_id, "--json").json
    rows = [row for row in rep["rows"] if row["profile"] == "low"]
    print(json.dumps([{k: row[k] for k in ("metric", "value", "baseline", "delta_pct", "verdict")} for row in rows]))
    by = {row["metric"]: row for row in rows}
    assert by["median_tpot_ms"]["baseline"] == 7.4  # cookbook 5.1.1
    for metric in ("median_tpot_ms", "median_itl_ms"):  # what does not depend on the request lengths
        assert by[metric]["verdict"] == "ok", by[metric]
    # a lone prompt of <= 1000 tokens is prefilled in one pass (cookbook: 68.57 ms for ~610 tokens)
    assert by["median_ttft_ms"]["verdict"] in ("ok", "better"), by["median_ttft_ms"]
    assert by["median_ttft_ms"]["value"] > 40, by["median_ttft_ms"]
