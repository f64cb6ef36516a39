"""`invoke bench`, `accuracy`, `report` end to end on the lab: the real SGLang clients in each container."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfleet import archive, metrics
from tests.helpers import cli

pytestmark = pytest.mark.lab

TOKEN = "hf_benchSecretToken0123456789"
ENV = {"HF_TOKEN": TOKEN}
PROMPTS = 12
# The product's default, every host's client at once (the lab inventory runs them one host at a time for the
# README demo's numbers; these tests check the clients, the archive and the report, not the numbers)
ALL_AT_ONCE = ("--set", "bench_forks=3")


@pytest.fixture(scope="module")
def bench_run(serving):
    r = cli("bench", "--hosts", "lab", "--model", "scout", "--profile", "low,medium", "--num-prompts", str(PROMPTS),
            "--input-len", "200", "--output-len", "48", *ALL_AT_ONCE, "--json", env=ENV, timeout=1200)  # fmt: skip
    assert r.code == 0, r.stderr[-3000:]
    return r


def test_bench_runs_the_real_client_on_every_host_and_archives_its_logs(serving, bench_run):
    run_dir = Path(bench_run.json["archive"])
    assert archive.verify_run(run_dir) == []
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "bench" and manifest["status"] == "ok"
    assert manifest["sglang_version"] == "0.5.9"
    for host in serving.hosts:
        assert manifest["hosts"][host.name]["image_id"].startswith("sha256:")
        for profile in ("low", "medium"):
            log = (run_dir / host.name / "bench" / f"{profile}.log").read_text()
            assert "Serving Benchmark Result" in log  # the real bench_serving's own block
            m = metrics.parse_text(log)
            assert m["completed"] == PROMPTS and m.get("failed", 0) == 0
            assert m["backend"] == "sglang" and m["total_output_tokens"] > 0
            records = (run_dir / host.name / "bench" / f"{profile}.jsonl").read_text().splitlines()
            assert json.loads(records[-1])["completed"] == PROMPTS
        assert (run_dir / host.name / "warmup" / "low.log").is_file()  # warm-up kept, apart from the profiles
        assert "ready to roll" in (run_dir / host.name / "server" / "docker.log").read_text()
        facts = json.loads((run_dir / host.name / "facts.json").read_text())
        assert len(facts["gpus"]) == 8
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    # concurrency shapes the simulated latency the way the cookbook's tables do
    low = metrics.parse_text((run_dir / serving.hosts[0].name / "bench" / "low.log").read_text())
    medium = metrics.parse_text((run_dir / serving.hosts[0].name / "bench" / "medium.log").read_text())
    assert low["median_tpot_ms"] < medium["median_tpot_ms"]


def test_accuracy_runs_gsm8k_on_every_host(serving):
    r = cli("accuracy", "--hosts", "lab", "--model", "scout", "--num-questions", "40", *ALL_AT_ONCE, "--json", env=ENV,
            timeout=900)  # fmt: skip
    assert r.code == 0, r.stderr[-3000:]
    run_dir = Path(r.json["archive"])
    for host in serving.hosts:
        m = metrics.parse_text((run_dir / host.name / "accuracy" / "gsm8k.log").read_text())
        assert 0.85 <= m["accuracy"] <= 1.0 and m["invalid"] == 0.0


def test_report_compares_every_host_with_the_cookbook(serving, bench_run, tmp_path):
    run_id = Path(bench_run.json["archive"]).name
    r = cli("report", "--run", run_id, "--json")
    assert r.code == 0, r.stderr[-2000:]
    rep = r.json
    assert rep["baseline"].startswith("cookbook mi300x") and rep["verified"] is True
    assert rep["simulated"] is True  # a lab run never passes for a hardware result
    seen = {(row["host"], row["profile"]) for row in rep["rows"]}
    assert seen == {(h.name, p) for h in serving.hosts for p in ("low", "medium")}
    tpot = [row for row in rep["rows"] if row["metric"] == "median_tpot_ms" and row["profile"] == "low"]
    assert all(row["baseline"] == 7.4 and row["verdict"] in ("ok", "better", "regression") for row in tpot)
    html = tmp_path / "report.html"
    assert cli("report", "--run", run_id, "--html", str(html)).code == 0
    assert all(h.name in html.read_text() for h in serving.hosts)


def test_runs_lists_the_bench_run(bench_run):
    r = cli("runs")
    assert r.code == 0 and Path(bench_run.json["archive"]).name[:18] in r.stdout + r.stderr
