"""The fleet view end to end on the lab: one host's GPUs made slower with `lab.fault --slow-gpu`,
the real bench_serving on every host, `invoke report --json` names that host alone as the
outlier, every host's archive holds telemetry covering the profile's window, and no
telemetry sampler survives a run, a restored run or a failed one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfleet import telemetry
from llmfleet.lab.layout import REMOTE_DIR
from tests.helpers import cli

pytestmark = [pytest.mark.lab, pytest.mark.alone]  # measures timing: no other test at the same time

ENV = {"HF_TOKEN": "hf_fleetSecretToken0123456789"}
# The medium profile's concurrency with fewer and shorter requests: every stream still runs
# in a batch of ~16 for many steps (the TPOT signal), in ~15 s instead of ~40 s per run. Not
# shorter: with 32 requests of 200 tokens a healthy host's TPOT once varied by 15% (CI).
# Every host's client at once (as the product does by default): on the lab's two cores, one host measured while
# the others still stage files and start samplers is slowed by them (a healthy first host once read +12% TPOT).
BENCH = ("--profile", "medium", "--num-prompts", "48", "--max-concurrency", "16", "--output-len", "400",
         "--set", "bench_forks=3")
SLOW_PCT = 20
# What a slower GPU moves (ms per token up, tokens per second down); the other flagged
# metrics of a sick host may add to these, never replace them.
SLOW_GPU_METRICS = {"median_tpot_ms", "median_itl_ms", "output_throughput", "total_throughput", "median_e2e_ms"}
# A sampler is a `sh -c` whose $0 is "sampler" (llmfleet.telemetry); "[s]" keeps grep from finding itself.
SAMPLERS = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c ' [s]ampler '"


@pytest.fixture(scope="module")
def victim(serving):
    """The third host, its GPUs SLOW_PCT% slower until the module ends."""
    host = serving.hosts[2]
    r = cli("lab.fault", "--host", host.name, "--slow-gpu", str(SLOW_PCT))
    assert r.code == 0, r.stderr
    yield host
    assert cli("lab.fault", "--host", host.name, "--restore").code == 0


def bench_and_report(*extra: str) -> tuple[Path, dict]:
    """One bench of every host, then its report (JSON)."""
    r = cli("bench", "--hosts", "lab", "--model", "scout", *BENCH, *extra, "--json", env=ENV, timeout=900)
    assert r.code == 0, r.stderr[-3000:]
    run_dir = Path(r.json["archive"])
    rep = cli("report", "--run", run_dir.name, "--json")
    assert rep.code == 0, rep.stderr[-2000:]
    medium = rep.json["fleet"]["profiles"].get("medium", {})
    print(f"fleet medium (-s shows it): {json.dumps({m: medium.get(m) for m in ('median_tpot_ms', 'output_throughput')})}"
          f" outliers {json.dumps(rep.json['fleet']['outliers'])}")
    return run_dir, rep.json


def samplers_left(lab_ssh, hosts) -> dict[str, int]:
    """Sampler processes still alive, per host."""
    counts = {}
    for host in hosts:
        out = lab_ssh(host.address, SAMPLERS)
        counts[host.name] = int(out.stdout.strip() or 0)
    return counts


@pytest.fixture(scope="module")
def sick_run(victim):
    return bench_and_report()


def test_the_slow_host_is_the_only_outlier(serving, victim, sick_run):
    _, rep = sick_run
    outliers = rep["fleet"]["outliers"]
    assert {o["host"] for o in outliers} == {victim.name}, outliers
    flagged = {o["metric"] for o in outliers}
    # on TPOT/throughput (issue 9), whatever else a slower GPU moves. (A CI run once missed TPOT at +15%:
    # measured with the fleet's MAD, 2.8 MADs; with the other two hosts' MAD, as now, 5.5.)
    assert flagged & {"median_tpot_ms", "output_throughput"}, flagged
    assert flagged <= SLOW_GPU_METRICS | {"median_ttft_ms", "p99_tpot_ms"}, flagged
    for o in outliers:
        if o["metric"] in ("median_tpot_ms", "median_itl_ms"):  # slower by about the fault's factor, never faster
            assert 0.5 * SLOW_PCT <= o["delta_pct"] <= 2 * SLOW_PCT, o


def test_every_host_has_telemetry_covering_the_profile(serving, victim, sick_run):
    run_dir, rep = sick_run
    for host in serving.hosts:
        window, samples = telemetry.loads((run_dir / host.name / "telemetry" / "medium.jsonl").read_text())
        assert window is not None and window["name"] == "medium"
        times = [s["t"] for s in samples]
        assert min(times) <= window["start"] and max(times) >= window["end"], (host.name, window)
        energy = rep["energy"][host.name]["medium"]
        assert energy["valid"] is True, energy
        assert energy["j_per_output_token"] > 0 and energy["avg_power_w"] > 0
    sick = rep["energy"][victim.name]["medium"]
    assert sick["throttled_pct"] > 0  # the telemetry says why the host is slow
    healthy = [rep["energy"][h.name]["medium"] for h in serving.hosts if h.name != victim.name]
    assert all(e["throttled_pct"] == 0 for e in healthy)


def test_no_sampler_outlives_the_run(serving, lab_ssh, sick_run):
    assert samplers_left(lab_ssh, serving.hosts) == {h.name: 0 for h in serving.hosts}


def test_restored_fleet_has_no_outlier(serving, victim, sick_run, lab_ssh):
    assert cli("lab.fault", "--host", victim.name, "--restore").code == 0
    run_dir, rep = bench_and_report()
    assert rep["fleet"]["outliers"] == [], rep["fleet"]["outliers"]
    assert all(rep["energy"][h.name]["medium"]["valid"] for h in serving.hosts)
    assert samplers_left(lab_ssh, serving.hosts) == {h.name: 0 for h in serving.hosts}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "ok"


def test_a_failed_bench_leaves_no_sampler(serving, lab_ssh):
    r = cli("bench", "--hosts", "lab", "--model", "scout", *BENCH, "--set", "bench_timeout=3", "--json",
            env=ENV, timeout=600)
    assert r.code != 0  # the client was stopped by its deadline on every host
    assert samplers_left(lab_ssh, serving.hosts) == {h.name: 0 for h in serving.hosts}
    run_id = Path(r.json["archive"]).name
    for host in serving.hosts:  # the run's sampler folder is gone too
        left = lab_ssh(host.address, f"test -e {REMOTE_DIR}/work/telemetry/{run_id} && echo left || echo gone")
        assert left.stdout.strip() == "gone", host.name
