"""Deltas and verdicts against the cookbook or another run."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet import compare
from llmfleet.archive import HostResults
from llmfleet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
TOL = compare.load_tolerances(ROOT / "catalog" / "tolerances.yml")
REF = compare.load_reference(ROOT / "catalog" / "reference.yml")
HIGHER = compare.Tolerance("output_throughput", "higher", pct=10)
LOWER = compare.Tolerance("median_tpot_ms", "lower", pct=10)
ACC = compare.Tolerance("accuracy", "higher", abs=0.02)


@pytest.mark.parametrize(
    "tol,value,base,delta,verdict",
    [
        (HIGHER, 100.0, 100.0, 0.0, "ok"),
        (HIGHER, 91.0, 100.0, -9.0, "ok"),
        (HIGHER, 90.0, 100.0, -10.0, "ok"),  # the edge is still ok
        (HIGHER, 89.0, 100.0, -11.0, "regression"),
        (HIGHER, 111.0, 100.0, 11.0, "better"),
        (LOWER, 11.0, 10.0, 10.0, "ok"),
        (LOWER, 11.5, 10.0, 15.0, "regression"),
        (LOWER, 8.0, 10.0, -20.0, "better"),
        (ACC, 0.93, 0.945, pytest.approx(-1.587, abs=1e-3), "ok"),
        (ACC, 0.92, 0.945, pytest.approx(-2.646, abs=1e-3), "regression"),
        (ACC, 0.97, 0.945, pytest.approx(2.646, abs=1e-3), "better"),
        (HIGHER, None, 100.0, None, "missing"),
        (HIGHER, 5.0, None, None, "missing"),
        (HIGHER, "n/a", 1.0, None, "missing"),
        (LOWER, 0.0, 0.0, 0.0, "ok"),
        (LOWER, 1.0, 0.0, None, "regression"),
    ],
)
def test_judge(tol, value, base, delta, verdict) -> None:
    d, v = compare.judge(value, base, tol)
    assert v == verdict
    assert d == (pytest.approx(delta) if isinstance(delta, float) else delta)


def test_tolerances_file_covers_the_compared_metrics() -> None:
    assert set(TOL.bench) >= {"output_throughput", "total_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms",
                              "p99_tpot_ms", "median_itl_ms", "p99_itl_ms", "median_e2e_ms"}
    assert TOL.gsm8k["accuracy"].abs == 0.02 and TOL.gsm8k["accuracy"].direction == "higher"
    assert TOL.bench["median_ttft_ms"].direction == "lower"
    assert "p99_ttft_ms" in TOL.skips["low"]


def test_bad_tolerances_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "t.yml"
    p.write_text("bench:\n  output_throughput: {direction: up, tolerance_pct: 10}\n")
    with pytest.raises(InputError) as e:
        compare.load_tolerances(p)
    assert e.value.line == 2 and "direction" in str(e.value)
    p.write_text("bench:\n  x: {direction: higher}\n")
    with pytest.raises(InputError, match="exactly one"):
        compare.load_tolerances(p)
    p.write_text("bench:\n  x: {direction: higher, tolerance_pct: 1, tolerence: 2}\n")
    with pytest.raises(InputError, match="did you mean"):
        compare.load_tolerances(p)


@pytest.mark.parametrize(
    "version,expected",
    [("0.5.9", "0.5.9"), ("0.5.7", "0.5.7"), ("0.5.8", "0.5.7"), ("0.5.23", "0.5.9"), ("0.5.5", "0.5.7"), (None, "0.5.9")],
)
def test_pick_entry_by_version(version, expected) -> None:
    got, ver = compare.pick_entry(REF, "scout", "mi300x", version)
    assert ver == expected and got["bench"]["low"]["max_concurrency"] == 1


def test_pick_entry_by_hf_id_and_unknown_hardware() -> None:
    got, ver = compare.pick_entry(REF, "meta-llama/Llama-4-Maverick-17B-128E-Instruct", "MI300X", "0.5.9")
    assert ver == "0.5.9" and got["bench"]["high"]["metrics"]["output_throughput"] == 2777.9
    assert compare.pick_entry(REF, "scout", "mi355x", "0.5.9") == (None, None)


def test_cookbook_baseline_per_host_with_notes() -> None:
    meta = {"model": "scout", "hosts": {"a": {"hardware": "mi300x", "image": "lmsysorg/sglang:v0.5.7-rocm700-mi30x"},
                                        "b": {"hardware": "mi355x"}}}
    base = compare.cookbook_baseline(REF, meta)
    a, b = base.for_host("a"), base.for_host("b")
    assert a.label == "cookbook mi300x sglang 0.5.7"
    assert a.bench["medium"]["output_throughput"] == 1152.47
    assert a.gsm8k["accuracy"] == 0.945  # from the 0.5.9 revision
    assert "GSM8K figures from the sglang 0.5.9 revision" in a.note
    assert b.bench == {} and "no cookbook figures" in b.note
    assert base.for_host("zzz") is None


def results(**profiles) -> dict[str, HostResults]:
    return {"h1": HostResults(bench=profiles)}


def test_compare_rows_verdicts_and_skips() -> None:
    meta = {"model": "scout", "hardware": "mi300x", "sglang_version": "0.5.9", "hosts": ["h1"]}
    base = compare.cookbook_baseline(REF, meta)
    low = {"output_throughput": 57.42 * 0.8, "median_ttft_ms": 68.57, "p99_ttft_ms": 900.0, "median_tpot_ms": 7.4 * 0.5}
    res = results(low=low)
    res["h1"].gsm8k = {"accuracy": 0.90, "invalid": 0.0}
    rows = compare.compare(res, base, TOL)
    by = {(r.profile, r.metric): r for r in rows}
    assert by[("low", "output_throughput")].verdict == "regression"
    assert by[("low", "output_throughput")].delta_pct == pytest.approx(-20.0)
    assert by[("low", "median_ttft_ms")].verdict == "ok"
    assert by[("low", "p99_ttft_ms")].verdict == "skipped" and "cold start" in by[("low", "p99_ttft_ms")].note
    assert by[("low", "median_tpot_ms")].verdict == "better"
    assert by[("low", "total_throughput")].verdict == "missing"  # the run lacks it, the cookbook has it
    assert by[("gsm8k", "accuracy")].verdict == "regression"
    assert by[("gsm8k", "invalid")].verdict == "ok"
    assert ("gsm8k", "output_throughput") in by and by[("gsm8k", "output_throughput")].verdict == "missing"
    assert [r.profile for r in rows][0] == "low"
    s = compare.summary(rows)
    assert s["regression"] == 2 and s["skipped"] == 1 and sum(s.values()) == len(rows)
    assert len(compare.regressions(rows)) == 2


def test_compare_against_another_run_host_by_host() -> None:
    old = {"h1": HostResults(bench={"high": {"output_throughput": 3000.0, "p99_itl_ms": 80.0}}),
           "h2": HostResults(bench={"high": {"output_throughput": 3000.0}})}
    new = {"h1": HostResults(bench={"high": {"output_throughput": 2400.0, "p99_itl_ms": 80.0}}),
           "h3": HostResults(bench={"high": {"output_throughput": 3100.0}})}
    rows = compare.compare(new, compare.run_baseline(old, "run X"), TOL)
    by = {(r.host, r.metric): r for r in rows}
    assert by[("h1", "output_throughput")].verdict == "regression"
    assert by[("h1", "p99_itl_ms")].verdict == "ok"
    assert by[("h3", "output_throughput")].verdict == "missing"  # h3 was not in the baseline run
    assert by[("h3", "output_throughput")].note == "no baseline for this profile"


def test_profiles_in_cookbook_order() -> None:
    assert sorted(["high", "custom", "low", "medium"], key=compare.profile_key) == ["low", "medium", "high", "custom"]
    assert compare.version_tuple("v0.5.10.post1") == (0, 5, 10)
    assert compare.version_from_image("lmsysorg/sglang:v0.5.9-rocm720-mi30x") == "0.5.9"
    assert compare.version_from_image(None) is None


def test_override_note_names_what_changed_the_workload():
    from llmfleet.compare import override_note

    assert override_note({"profile": "all", "warmup": None}) is None
    assert override_note({"dataset": "random"}) is None
    assert override_note({"num_prompts": 12, "output_len": 48, "profile": "low"}) == (
        "this run changed the cookbook's workload (num_prompts=12, output_len=48): compare with care"
    )
