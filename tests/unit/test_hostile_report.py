"""Hostile results: logs, JSONL and manifests that try to crash `parse`/`report` or rewrite the terminal.

Issue 7 classes 2, 3 and 8 on the results side: fixed probes (each failed on the
old code) and property-based tests: arbitrary text and values never raise, JSON
output is always valid JSON, archive values are never rich markup and never
reach the terminal as control characters.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from llmfleet import archive, metrics, report
from llmfleet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
BLOCK = (ROOT / "tests/fixtures/bench_logs/seed_cookbook057_scout_low.txt").read_text()
META = {"kind": "bench", "model": "scout", "hosts": {"lab1": {"hardware": "mi300x", "sglang_version": "0.5.9"}}}
HOSTILE_TEXT = ["[/x]", "[bold", "[/]", "[link=file:///etc/passwd]x[/link]", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07",
                "\u202eevil", "a\\", "\\[/x]", "\r\n", "\0"]


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN/Infinity, as every non-Python reader does."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def make_run(root: Path, meta: dict[str, Any] | None = None, **files: str) -> archive.RunWriter:
    with archive.new_run(meta or META, root=root) as run:
        for rel, text in files.items():
            run.write(rel, text)
    return run


def rendered(rep: report.Report) -> str:
    out = io.StringIO()
    report.render_console(rep, Console(file=out, width=200, force_terminal=True, color_system=None))
    return out.getvalue()


def invoke(*args: str, archive_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMFLEET_ARCHIVE": str(archive_dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


NON_NUMERIC = ('{"completed": 10, "output_throughput": "fast", "total_throughput": {"a": 1}, "median_ttft_ms": [1, 2],'
               ' "median_tpot_ms": true, "p99_itl_ms": Infinity, "median_itl_ms": NaN, "request_rate": Infinity}\n')


# --- class 8: report and parse ----------------------------------------------------------


def test_html_to_a_folder_or_an_unwritable_path_is_an_input_error(tmp_path: Path) -> None:
    make_run(tmp_path / "a", **{"lab1/bench/low.log": BLOCK})
    rep = report.build_report(None, root=tmp_path / "a")
    with pytest.raises(InputError, match="names a folder"):
        report.write_html(rep, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write the HTML report") as exc:
        report.write_html(rep, tmp_path / "file" / "r.html")  # parent is a file: no folder can be made there
    assert exc.value.path == str(tmp_path / "file" / "r.html")


def test_non_numeric_metric_values_are_shown_invalid_in_every_output(tmp_path: Path) -> None:
    make_run(tmp_path, **{"lab1/bench/low.log": BLOCK, "lab1/bench/low.jsonl": NON_NUMERIC})
    rep = report.build_report(None, root=tmp_path)
    by = {r.metric: r for r in rep.rows if r.profile == "low"}
    for metric in ("output_throughput", "median_tpot_ms", "p99_itl_ms", "median_itl_ms"):
        assert by[metric].verdict == "missing", metric  # a string, a bool, inf, NaN: no figure
    text_block = metrics.parse_text(BLOCK)
    for metric in ("total_throughput", "median_ttft_ms"):  # an object or a list: the text log's figure stands
        assert by[metric].value == text_block[metric] and by[metric].verdict == "ok", metric
    html = report.render_html(rep)
    assert "invalid" in html and "no value" in html
    text = rendered(rep)
    assert "invalid" in text and "Output tok/s" in text
    data = strict_json(json.dumps(report.report_json(rep)))
    low = data["results"]["lab1"]["bench"]["low"]
    assert low["request_rate"] == "inf" and low["p99_itl_ms"] is None and low["median_itl_ms"] is None
    assert low["median_ttft_ms"] == text_block["median_ttft_ms"]  # the JSONL's list is no metric


def test_parse_never_prints_infinity_or_nan_and_keeps_request_rate_inf() -> None:
    (record,) = metrics.parse_jsonl(NON_NUMERIC)
    safe = strict_json(json.dumps(metrics.json_safe(record)))
    assert safe["request_rate"] == "inf" and safe["p99_itl_ms"] is None and safe["output_throughput"] == "fast"
    assert strict_json(json.dumps(metrics.json_safe({"x": -math.inf, "request_rate": -math.inf}))) == {
        "x": None, "request_rate": None}


def test_deep_nesting_and_huge_numbers_do_not_crash_the_parser() -> None:
    deep = '{"completed": ' + "[" * 200_000 + "]" * 200_000 + "}\n"
    assert metrics.parse_jsonl(deep + '{"completed": 5}\n') == [{"completed": 5}]
    assert metrics.parse_text("Successful requests: " + "9" * 5000 + "\n") == {}
    assert metrics.parse_number("1" * 5000) is None


def test_cli_parse_exit_codes_and_valid_json(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("nothing to see\n")
    p = invoke("parse", str(empty), "--json", archive_dir=tmp_path)
    assert p.returncode == 1 and strict_json(p.stdout) == {} and "Traceback" not in p.stderr
    p = invoke("parse", str(empty), archive_dir=tmp_path)
    assert p.returncode == 1 and "no metrics found" in p.stderr
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text(NON_NUMERIC)
    p = invoke("parse", str(jsonl), "--json", archive_dir=tmp_path)
    assert p.returncode == 0 and strict_json(p.stdout)["request_rate"] == "inf"
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"completed": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    p = invoke("parse", str(deep), "--json", archive_dir=tmp_path)
    assert p.returncode == 1 and strict_json(p.stdout) == {} and "RecursionError" not in p.stderr
    p = invoke("parse", str(tmp_path), archive_dir=tmp_path)
    assert p.returncode == 2 and "not a regular file" in p.stderr


def test_cli_report_html_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    make_run(tmp_path, **{"lab1/bench/low.log": BLOCK, "lab1/bench/low.jsonl": NON_NUMERIC})
    p = invoke("report", "--html", str(tmp_path), archive_dir=tmp_path)
    assert p.returncode == 2 and "names a folder" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "f").write_text("x")
    p = invoke("report", "--html", str(tmp_path / "f" / "r.html"), archive_dir=tmp_path)
    assert p.returncode == 2 and "cannot write the HTML report" in p.stderr and "Traceback" not in p.stderr
    p = invoke("report", "--html", str(tmp_path / "ok.html"), archive_dir=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "invalid" in (tmp_path / "ok.html").read_text()


# --- class 2: markup and control characters ------------------------------------------------


@pytest.mark.parametrize("evil", HOSTILE_TEXT)
def test_hostile_manifest_values_are_printed_as_text(tmp_path: Path, evil: str) -> None:
    host = evil if archive.safe_name(evil) else "lab1"
    meta = {"kind": "bench", "model": evil, "status": evil, "sglang_version": evil,
            "hosts": {host: {"hardware": evil}}}
    make_run(tmp_path, meta, **{f"{host}/bench/low.log": BLOCK.replace("sglang", evil)})
    rep = report.build_report(None, root=tmp_path)
    text = rendered(rep)
    assert "\x1b" not in text  # no colour system: any escape here came from the run
    assert "\x07" not in text and "\u202e" not in text and "\0" not in text
    assert report.plain(evil) in text  # shown, literally
    rows = report.runs_table(tmp_path)
    assert rows[0]["model"] == evil and rows[0]["verified"] is True
    html = report.render_html(rep)
    assert "<script" not in html


def test_cli_runs_and_report_survive_hostile_manifests(tmp_path: Path) -> None:
    for evil in ("[/x]", "[bold", "\x1b[31mred"):
        make_run(tmp_path, {"kind": "bench", "model": evil, "status": evil, "hosts": {"lab1": {}, evil: {}}},
                 **{"lab1/bench/low.log": BLOCK})
    p = invoke("runs", archive_dir=tmp_path)
    assert p.returncode == 0 and "MarkupError" not in p.stderr and "Traceback" not in p.stderr
    assert "[/x]" in p.stderr and "[bold" in p.stderr and "\x1b[31m" not in p.stderr
    assert "is not a safe folder name" in p.stderr  # '[/x]' holds a '/': a host name no folder may have
    p = invoke("report", archive_dir=tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr and "\x1b[31m" not in p.stderr


def test_a_run_with_a_broken_manifest_is_listed_with_its_reason(tmp_path: Path) -> None:
    good = make_run(tmp_path, **{"lab1/bench/low.log": BLOCK})
    bad = tmp_path / "20200101T000000Z-badbad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"format": 1, "run_id": "[/x]", "complete": True,
                                                   "files": [1], "model": "[/x]", "hosts": "lab1"}))
    p = invoke("runs", archive_dir=tmp_path)
    assert p.returncode == 0 and good.run_id in p.stderr and bad.name in p.stderr and "Traceback" not in p.stderr
    p = invoke("runs", "--json", archive_dir=tmp_path)
    rows = {r["run_id"]: r for r in strict_json(p.stdout)}
    assert rows[good.run_id]["verified"] is True and rows[bad.name]["verified"] is False
    assert rows[bad.name]["problems"] and rows[bad.name]["hosts"] == []
    p = invoke("report", "--run", bad.name, archive_dir=tmp_path)
    assert p.returncode == 2 and "manifest.json" in p.stderr and "Traceback" not in p.stderr


# --- property-based -------------------------------------------------------------------------

LABELS = ["Successful requests", "Benchmark duration (s)", "Output token throughput (tok/s)", "Median TTFT (ms)",
          "P99 ITL (ms)", "Traffic request rate", "Max request concurrency", "Backend", "Accuracy", "Invalid"]
log_lines = st.one_of(
    st.builds(lambda label, value: f"{label}: {value}", st.sampled_from(LABELS),
              st.one_of(st.text(max_size=20), st.integers().map(str), st.floats().map(str),
                        st.sampled_from(["inf", "nan", "-inf", "1e999", "9" * 5000, "not set"]))),
    st.sampled_from(["=" * 50, "============ Serving Benchmark Result ============", "-" * 50]),
    st.text(max_size=60),
)
logs = st.lists(log_lines, max_size=40).map("\n".join)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=15),
                         st.sampled_from(HOSTILE_TEXT))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
METRIC_KEYS = ["completed", "output_throughput", "total_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms",
               "p99_itl_ms", "median_itl_ms", "request_rate", "max_concurrency", "backend", "duration", "accept_length"]
records = st.dictionaries(st.one_of(st.sampled_from(METRIC_KEYS), st.text(max_size=10)), json_values, max_size=8)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])


@PROPERTY
@given(text=st.one_of(logs, st.text(max_size=400)))
def test_any_log_text_parses_to_valid_json(text: str) -> None:
    for result in (metrics.parse_text(text), metrics.parse_blocks(text), metrics.parse_jsonl(text)):
        strict_json(json.dumps(metrics.json_safe(result)))


@PROPERTY
@given(lines=st.lists(st.one_of(records.map(json.dumps), st.text(max_size=40)), max_size=5))
def test_any_jsonl_parses_to_scalar_metrics_and_valid_json(lines: list[str]) -> None:
    for record in metrics.parse_jsonl("\n".join(lines)):
        assert all(isinstance(v, metrics.SCALARS) for v in record.values())
        strict_json(json.dumps(metrics.json_safe(record)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(record=records, log=logs, model=st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE_TEXT)))
def test_any_results_render_in_every_output(tmp_path_factory: pytest.TempPathFactory, record: dict, log: str,
                                            model: str) -> None:
    root = tmp_path_factory.mktemp("rep")
    make_run(root, {**META, "model": model},
             **{"lab1/bench/low.jsonl": json.dumps(record) + "\n", "lab1/bench/low.log": log,
                "lab1/accuracy/gsm8k.log": log})
    rep = report.build_report(None, root=root)
    text = rendered(rep)
    assert "\x1b[31m" not in text and "\x07" not in text
    assert report.render_html(rep).startswith("<!DOCTYPE html>")
    strict_json(json.dumps(report.report_json(rep)))
