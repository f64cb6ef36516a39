"""The report of the fixture run: rows, JSON, rich tables, HTML, and the CLI tasks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from llmfleet import archive, report

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "fixtures" / "runs"
(RUN_DIR,) = [p for p in RUNS.iterdir() if archive.RUN_ID_RE.match(p.name)]


@pytest.fixture(scope="module")
def rep() -> report.Report:
    return report.build_report(None, root=RUNS)


def test_fixture_run_is_intact() -> None:
    assert archive.verify_run(RUN_DIR) == []


def test_report_rows_deltas_and_verdicts(rep: report.Report) -> None:
    assert rep.run.run_id == RUN_DIR.name and rep.verify_problems == []
    assert rep.hosts == ["lab1", "lab2"] and rep.profiles == ["low", "medium", "high"]
    assert rep.baseline.label == "cookbook mi300x sglang 0.5.9"
    by = {(r.host, r.profile, r.metric): r for r in rep.rows}
    # lab1 ran the cookbook's own Scout blocks: every compared figure equals its baseline
    lab1 = [r for r in rep.rows if r.host == "lab1"]
    assert {r.verdict for r in lab1} == {"ok", "skipped"}
    assert all(r.delta_pct == 0.0 for r in lab1)
    # lab2 printed Maverick's figures: real differences, both ways
    r = by[("lab2", "medium", "output_throughput")]
    assert (r.value, r.baseline, r.verdict) == (1328.41, 1152.47, "better")
    assert r.delta_pct == pytest.approx((1328.41 - 1152.47) / 1152.47 * 100)
    r = by[("lab2", "medium", "p99_tpot_ms")]
    assert (r.value, r.baseline, r.verdict) == (20.27, 15.49, "regression")
    assert by[("lab2", "high", "output_throughput")].verdict == "ok"  # -5.7% within 10%
    assert by[("lab2", "gsm8k", "accuracy")].verdict == "regression"  # 0.895 vs 0.945
    assert by[("lab2", "low", "p99_ttft_ms")].verdict == "skipped"
    assert rep.summary == {"ok": 46, "better": 9, "regression": 3, "missing": 0, "skipped": 2}
    assert len(rep.regressions) == 3


def test_report_against_another_run(tmp_path: Path) -> None:
    shutil.copytree(RUN_DIR, tmp_path / RUN_DIR.name)
    other = "20200101T000000Z-000000"
    shutil.copytree(RUN_DIR, tmp_path / other)
    rep = report.build_report(RUN_DIR.name, baseline=other, root=tmp_path)
    assert rep.baseline.label == f"run {other}"
    assert {r.verdict for r in rep.rows} <= {"ok", "skipped"} and rep.rows


def test_report_json(rep: report.Report) -> None:
    data = json.loads(json.dumps(report.report_json(rep)))
    assert data["run_id"] == RUN_DIR.name and data["verified"] is True
    assert data["regressions"] == 3 and data["summary"]["better"] == 9
    assert data["results"]["lab1"]["bench"]["low"]["median_ttft_ms"] == 68.57
    row = data["rows"][0]
    assert set(row) == {"host", "profile", "metric", "label", "value", "baseline", "delta_pct", "verdict", "note"}


def test_console_tables(rep: report.Report) -> None:
    console = Console(record=True, width=140)
    report.render_console(rep, console)
    text = console.export_text()
    for needle in ("lab1", "lab2", "TTFT median (ms)", "GSM8K accuracy", "regression", "+15.3%", "cold start"):
        assert needle in text
    assert "regression=3" in text


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)


def test_html_is_self_contained_and_names_every_host_and_profile(rep: report.Report) -> None:
    html = report.render_html(rep)
    parsed = _Collect()
    parsed.feed(html)
    fleet_svgs = sum(len(c) for c in report.fleet_charts(rep).values())
    assert fleet_svgs > 0 and parsed.tags.count("svg") == 2 * len(rep.profiles) + fleet_svgs
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    for name, value in parsed.attrs:
        if name in ("src", "href"):
            pytest.fail(f"external reference {name}={value}")
    for host in rep.hosts:
        for profile in rep.profiles:
            assert f'data-host="{host}" data-profile="{profile}"' in html
            assert f"{host} / {profile}" in html
    assert 'id="accuracy"' in html and "GSM8K accuracy" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_html_escapes_untrusted_text(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    with archive.new_run({"kind": "bench", "model": evil, "hosts": {"h<b>": {"hardware": "mi300x"}}}, root=tmp_path) as run:
        run.copy_in("h<b>/bench/low.log", ROOT / "tests/fixtures/bench_logs/seed_cookbook057_scout_low.txt")
    html = report.render_html(report.build_report(None, root=tmp_path))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "h&lt;b&gt;" in html and "<b>/" not in html


def test_svg_bars_scale_each_group_and_escape() -> None:
    s = [report.Series("a<1>", "#000", {"m": 10.0, "n": 1.0}), report.Series("b", "#111", {"m": 5.0, "n": None})]
    svg = str(report.svg_bars("T & t", [("m", "M"), ("n", "N"), ("zzz", "never")], s, width=400))
    widths = [float(w) for w in re.findall(r'<rect x="150" y="\d+" width="([\d.]+)"', svg)]
    assert widths[0] == pytest.approx(160.0) and widths[1] == pytest.approx(80.0)  # m: 10 vs 5
    assert widths[2] == pytest.approx(160.0)  # n: its own scale
    assert "no value" in svg and "never" not in svg
    assert "a&lt;1&gt;" in svg and "T &amp; t" in svg


def test_runs_table(tmp_path: Path) -> None:
    shutil.copytree(RUN_DIR, tmp_path / RUN_DIR.name)
    (rows,) = report.runs_table(tmp_path)
    assert rows["run_id"] == RUN_DIR.name and rows["verified"] is True and rows["hosts"] == ["lab1", "lab2"]
    (tmp_path / RUN_DIR.name / "lab1/bench/low.log").write_text("tampered")
    assert report.runs_table(tmp_path)[0]["verified"] is False


# --- the CLI: the real `invoke` program ---------------------------------------------


def invoke(*args: str, archive_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMFLEET_ARCHIVE": str(archive_dir), "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def test_cli_parse_report_runs(tmp_path: Path) -> None:
    shutil.copytree(RUN_DIR, tmp_path / RUN_DIR.name)
    log = ROOT / "tests/fixtures/bench_logs/seed_cookbook057_scout_low.txt"
    p = invoke("parse", str(log), "--json", archive_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == json.loads(log.with_name(log.stem + ".expected.json").read_text())
    p = invoke("parse", str(ROOT / "tests/fixtures/bench_logs/sglang_dlora_six_rates.txt"), "--json", "--all-blocks",
               archive_dir=tmp_path)
    assert p.returncode == 0 and len(json.loads(p.stdout)) == 6
    p = invoke("parse", str(tmp_path / "nope.log"), archive_dir=tmp_path)
    assert p.returncode == 2 and "no such file" in p.stderr

    p = invoke("report", "--json", archive_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["regressions"] == 3
    p = invoke("report", "--run", RUN_DIR.name[:8], "--json", archive_dir=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["run_id"] == RUN_DIR.name
    p = invoke("report", "--fail-on-regression", "--html", str(tmp_path / "r.html"), archive_dir=tmp_path)
    assert p.returncode == 1 and "3 regression(s)" in p.stderr and "lab2" in p.stderr
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    p = invoke("report", "--baseline", RUN_DIR.name, "--fail-on-regression", archive_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    p = invoke("report", "--run", "19990101", archive_dir=tmp_path)
    assert p.returncode == 2 and "no archived run" in p.stderr

    p = invoke("runs", "--json", archive_dir=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)[0]["run_id"] == RUN_DIR.name
    p = invoke("runs", archive_dir=tmp_path)
    assert p.returncode == 0 and RUN_DIR.name in p.stderr
