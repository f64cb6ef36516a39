"""The router on a lab host, benchmarking through it, and the GSM8K health gate, on the lab (lab lock held).

Kept short for CI: the low profile with a few short prompts, 5 and 20 GSM8K questions, one host
replaced for the gate. Durations are printed (FIGURES) for the closing note.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT, cli

pytestmark = pytest.mark.lab

ENV = {"HF_TOKEN": "hf_routerLabTestToken0123456789"}
PORT = 30500


@pytest.fixture(scope="module")
def deployed(lab, tmp_path_factory):
    before = os.environ.get("LLMFLEET_ROUTER_STATE")
    os.environ["LLMFLEET_ROUTER_STATE"] = str(tmp_path_factory.mktemp("router-state"))
    # one host at a time from the control node: this module tests the router, not the image push
    r = cli("deploy", "--hosts", "lab", "--model", "scout", "--forks", "1", "--set", "image_relay=false", "--json",
            env=ENV, timeout=1500)  # fmt: skip
    assert r.code == 0, r.stderr[-3000:]
    yield lab
    cli("router.down", timeout=120)
    if before is None:
        os.environ.pop("LLMFLEET_ROUTER_STATE", None)
    else:
        os.environ["LLMFLEET_ROUTER_STATE"] = before


def _generate(url: str) -> int:
    body = json.dumps({"text": "Count to five:", "sampling_params": {"max_new_tokens": 6, "ignore_eos": True}}).encode()
    req = urllib.request.Request(f"{url}/generate", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return int(json.loads(r.read())["meta_info"]["completion_tokens"])


def test_router_on_a_host_benched_through_then_down(deployed, lab_ssh):
    lab = deployed
    first = lab.hosts[0]
    start = time.monotonic()
    up = cli("router.up", "--hosts", "lab", "--on", first.name, "--port", str(PORT), "--policy", "round_robin",
             "--json", timeout=600)  # fmt: skip
    assert up.code == 0, up.stderr[-3000:]
    doc = json.loads(up.stdout)
    assert doc["url"] == f"http://{first.address}:{PORT}" and doc["on"] == first.name
    assert len(doc["workers"]) == len(lab.hosts) and all(w["healthy"] for w in doc["workers"])
    up_s = time.monotonic() - start
    again = cli("router.up", "--hosts", "lab", "--on", first.name, "--port", str(PORT), "--policy", "round_robin",
                "--json", timeout=300)  # fmt: skip
    assert again.code == 0 and json.loads(again.stdout)["changed"] is False, again.stderr[-2000:]
    ps = lab_ssh(first.address, "docker ps --filter name=llmfleet-router --format '{{.Status}}'")
    assert ps.stdout.startswith("Up"), ps.stdout + ps.stderr
    status = json.loads(cli("router.status", "--json", timeout=60).stdout)
    assert status["on"] == first.name and status["version"] == "0.3.2"
    assert _generate(doc["url"]) == 6
    audit = lab_ssh(first.address, "cat /var/lib/llmfleet/audit.log").stdout
    assert "router start llmfleet-router :30500 policy round_robin" in audit

    start = time.monotonic()
    b = cli("bench", "--via-router", "--hosts", "lab", "--model", "scout", "--profile", "low", "--num-prompts", "4",
            "--output-len", "64", "--no-warmup", "--json", timeout=900)  # fmt: skip
    bench_s = time.monotonic() - start
    assert b.code == 0, b.stderr[-3000:]
    run = Path(json.loads(b.stdout)["archive"])
    log = (run / "router" / "bench" / "low.log").read_text()
    assert "Successful requests:" in log and f"{PORT}" in (run / "router" / "router.json").read_text()
    for host in lab.hosts:
        assert (run / host.name / "server" / "docker.log").stat().st_size > 0
        assert not (run / host.name / "bench").exists()  # the router's numbers are never filed under a worker
    rep = cli("report", "--run", run.name, "--json", timeout=300)
    assert rep.code == 0, rep.stderr[-2000:]
    assert "router" in json.loads(rep.stdout)["hosts"]

    down = cli("router.down", "--json", timeout=300)
    assert down.code == 0 and json.loads(down.stdout)["stopped"] is True, down.stderr[-2000:]
    assert lab_ssh(first.address, "docker ps -a --filter name=llmfleet-router -q").stdout.strip() == ""
    assert cli("router.status", timeout=60).code != 0
    print(f"\nFIGURES router on {first.name}: up {up_s:.1f}s (bundle pushed), bench via router (4 prompts) {bench_s:.1f}s")


def test_gsm8k_gate_passes_then_rolls_back_below_the_threshold(deployed):
    host = deployed.hosts[0].name
    start = time.monotonic()
    ok = cli("deploy", "--hosts", host, "--model", "scout", "--set", "mem_fraction_static=0.81", "--gate-gsm8k", "5",
             "--gate-min-accuracy", "0.2", "--json", env=ENV, timeout=900)  # fmt: skip
    assert ok.code == 0, ok.stderr[-3000:]
    doc = json.loads(ok.stdout)
    assert doc["recap"][host]["message"] == "upgraded"
    assert "Accuracy:" in (Path(doc["archive"]) / host / "gate" / "gsm8k.log").read_text()
    passed_s = time.monotonic() - start
    start = time.monotonic()
    # the simulated Scout answers the lab data set's first 30 questions right, 39 of the first 40
    bad = cli("deploy", "--hosts", host, "--model", "scout", "--set", "mem_fraction_static=0.82", "--gate-gsm8k", "40",
              "--gate-min-accuracy", "1.0", "--json", env=ENV, timeout=900)  # fmt: skip
    assert bad.code != 0
    message = json.loads(bad.stdout)["recap"][host]["message"]
    assert message.startswith("rolled back (accuracy 0.") and message.endswith(" below 1 on 40 questions)"), message
    inspect = cli("exec", "--hosts", host, "--cmd", "docker inspect --format '{{json .Config.Cmd}}' llmfleet-sglang",
                  "--json", timeout=120)  # fmt: skip
    assert "0.81" in inspect.stdout and "0.82" not in inspect.stdout  # the previous server serves again
    print(f"\nFIGURES GSM8K gate: pass (5 q) {passed_s:.1f}s, roll back (40 q) {time.monotonic() - start:.1f}s")


def test_an_invalid_threshold_is_refused_before_connecting():
    r = cli("deploy", "--hosts", "lab", "--model", "scout", "--gate-gsm8k", "5", "--gate-min-accuracy", "1.01", timeout=120)
    assert r.code == 2 and "0 < A <= 1" in r.stderr
    assert ROOT.is_dir()
