"""Zero-downtime rolling upgrades behind the real sglang-router, on the lab (run under the lab lock).

Under constant load through the router (a bounded client loop, no pause between requests):
an upgrade 0.5.9 -> 0.5.7 with `--serial 1` fails no request; an over-committed
`mem_fraction_static=0.99` fails the canary's gate, rolls it back, stops the rollout, fails
no request and exits non-zero with the memory cause in the recap. Then `invoke rollback`,
`invoke restart`, `router.status` and `router.down`, and a cut host during a rollout.
Figures (requests, wall time) are printed for the closing note.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import pytest

from llmfleet.lab import lab_fault
from tests.helpers import cli

pytestmark = pytest.mark.lab

ENV = {"HF_TOKEN": "hf_rolloutLabTestToken0123456789"}
ROUTER_PORT = 30300


class Load:
    """A client loop sending /generate through the router without pause, counting answers."""

    def __init__(self, url: str, seconds_max: float = 1800) -> None:
        self.url, self.deadline = url, time.monotonic() + seconds_max
        self.ok = self.failed = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        body = json.dumps({"text": "Count to five:", "sampling_params": {"max_new_tokens": 12, "ignore_eos": True}}).encode()
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            req = urllib.request.Request(f"{self.url}/generate", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    doc = json.loads(r.read())
                assert doc["meta_info"]["completion_tokens"] == 12
                self.ok += 1
            except (OSError, urllib.error.URLError, AssertionError, ValueError, KeyError) as exc:
                self.failed += 1
                self.errors.append(f"{time.strftime('%H:%M:%S')} {exc}")

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=120)


def _recap(stdout: str) -> dict:
    return json.loads(stdout)["recap"]


@pytest.fixture(scope="module")
def fleet(lab):
    r = cli("deploy", "--hosts", "lab", "--model", "scout", "--json", env=ENV, timeout=1500)
    assert r.code == 0, r.stderr[-3000:]
    up = cli("router.up", "--hosts", "lab", "--port", str(ROUTER_PORT), "--policy", "round_robin", "--json", timeout=120)
    assert up.code == 0, up.stderr[-2000:]
    doc = json.loads(up.stdout)
    assert len(doc["workers"]) == len(lab.hosts) and all(w["healthy"] for w in doc["workers"])
    again = cli("router.up", "--hosts", "lab", "--port", str(ROUTER_PORT), "--policy", "round_robin", "--json", timeout=120)
    assert again.code == 0 and json.loads(again.stdout)["changed"] is False  # idempotent
    yield lab, doc["url"]
    for host in lab.hosts:
        lab_fault(host.name, "restore")
    cli("router.down", timeout=60)


def test_upgrade_under_load_fails_no_request(fleet):
    lab, url = fleet
    start = time.monotonic()
    with Load(url) as load:
        r = cli("deploy", "--hosts", "lab", "--model", "scout", "--serial", "1", "--set", "sglang_version=0.5.7",
                "--json", env=ENV, timeout=1800)  # fmt: skip
    wall = time.monotonic() - start
    print(f"\nFIGURES upgrade: {load.ok} requests ok, {load.failed} failed, rollout wall time {wall:.1f}s")
    assert r.code == 0, r.stderr[-4000:]
    assert load.failed == 0, load.errors[:10]
    assert load.ok > 50
    recap = _recap(r.stdout)
    assert all(v["message"] == "upgraded" for v in recap.values()), recap
    status = json.loads(cli("router.status", "--json", timeout=60).stdout)
    assert len(status["workers"]) == len(lab.hosts) and all(w["healthy"] for w in status["workers"])
    # the new release's image shares its base layer with the old one: only its own layer is sent
    pushed = [s for s in json.loads(r.stdout)["steps"] if s["step"] == "SGLang image on the host"]
    assert len(pushed) == len(lab.hosts) and all(s["status"] == "changed" for s in pushed), pushed
    for step in pushed:
        sent_mb = float(re.search(r"\((\d+) MB in", step["message"]).group(1))
        print(f"FIGURES upgrade image on {step['host']}: {step['message']}")
        assert "1 of 2 layers were there" in step["message"] or "from lab" in step["message"], step
        assert sent_mb < 100, step  # the whole image is ~540 MB (~160 MB with zstd)


def test_overcommitted_memory_canary_rolls_back_and_stops(fleet, lab_ssh):
    lab, url = fleet
    start = time.monotonic()
    with Load(url) as load:
        r = cli("deploy", "--hosts", "lab", "--model", "scout", "--serial", "1", "--set", "sglang_version=0.5.7",
                "--set", "mem_fraction_static=0.99", "--json", env=ENV, timeout=1800)  # fmt: skip
    wall = time.monotonic() - start
    print(f"\nFIGURES canary: {load.ok} requests ok, {load.failed} failed, wall time {wall:.1f}s, exit {r.code}")
    assert r.code != 0
    assert load.failed == 0, load.errors[:10]
    recap = _recap(r.stdout)
    first, *rest = [h.name for h in lab.hosts]
    assert recap[first]["message"].startswith("rolled back (") and "mem-fraction-static" in recap[first]["message"], recap
    assert all(recap[h]["message"] == "untouched (rollout stopped)" for h in rest), recap
    for host in lab.hosts:  # every host still serves its previous configuration
        out = lab_ssh(host.address, "docker inspect --format '{{json .Config.Cmd}}' llmfleet-sglang")
        assert out.returncode == 0 and "0.99" not in out.stdout
        assert "python3" in out.stdout  # 0.5.7 images launch with `python3 -m sglang.launch_server`
    status = json.loads(cli("router.status", "--json", timeout=60).stdout)
    assert len(status["workers"]) == len(lab.hosts) and all(w["healthy"] for w in status["workers"])


def test_rollback_and_restart_on_demand(fleet, lab_ssh):
    lab, url = fleet
    host = lab.hosts[1]
    with Load(url) as load:
        rb = cli("rollback", "--hosts", host.name, "--json", env=ENV, timeout=900)
        rs = cli("restart", "--hosts", host.name, "--json", env=ENV, timeout=900)
    assert rb.code == 0, rb.stderr[-3000:]
    assert rs.code == 0, rs.stderr[-3000:]
    assert load.failed == 0, load.errors[:10]
    assert _recap(rb.stdout)[host.name]["message"] == "rolled back (on request)"
    assert _recap(rs.stdout)[host.name]["message"] == "restarted"
    out = lab_ssh(host.address, "docker inspect --format '{{json .Config.Cmd}}' llmfleet-sglang")
    assert "sglang serve" in out.stdout.replace('","', " ")  # back on 0.5.9 (`sglang serve`)
    audit = lab_ssh(host.address, "cat /var/lib/llmfleet/audit.log").stdout
    assert "rollback rolled back (on request) image sha256:" in audit and "restart restarted" in audit


def test_cut_host_during_rollout_is_unreachable_others_finish(fleet):
    lab, _ = fleet
    cut = lab.hosts[-1].name
    lab_fault(cut, "cut")
    try:
        r = cli("deploy", "--hosts", "lab", "--model", "scout", "--serial", "1", "--max-fail-percentage", "100",
                "--json", env=ENV, timeout=1800)  # fmt: skip
    finally:
        lab_fault(cut, "restore")
    assert r.code != 0
    recap = _recap(r.stdout)
    assert recap[cut]["unreachable"] is True
    assert all(recap[h.name]["message"] in ("upgraded", "") and recap[h.name]["failed"] == 0
               for h in lab.hosts if h.name != cut), recap  # fmt: skip
