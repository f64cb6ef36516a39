"""The fleet view: statistics, the robust outlier rule, telemetry explanations, and the
report's console, JSON and baseline comparison on archived multi-host runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from llmfleet import compare, fleet, report
from llmfleet.telemetry import Energy

from .fleet_runs import host_names, make_run

RULE = fleet.Rule(mads=3.5, min_delta_pct=10, min_hosts=3, metrics={"output_throughput": None, "median_ttft_ms": 25},
                  gsm8k_metrics={"accuracy": 5})


def test_stat_median_min_max_spread() -> None:
    s = fleet.stat("m", "M", {"a": 100, "b": 110, "c": 90, "d": None, "e": float("nan")})
    assert s is not None and (s.median, s.min, s.max, s.mad) == (100, 90, 110, 10)
    assert s.spread_pct == pytest.approx(20.0) and (s.min_host, s.max_host) == ("c", "b")
    assert fleet.stat("m", "M", {"a": "x"}) is None


def test_one_slow_host_among_four_is_the_only_outlier() -> None:
    s = fleet.stat("output_throughput", "tok/s", {"lab1": 1140, "lab2": 1151, "lab3": 956, "lab4": 1135})
    assert s is not None
    (o,) = fleet.outliers_of(s, "medium", RULE)
    assert o.host == "lab3" and o.delta_pct == pytest.approx((956 - s.median) / s.median * 100)
    assert o.robust_z is not None and o.robust_z < -3.5


def test_noise_is_not_an_outlier_and_both_parts_of_the_rule_are_needed() -> None:
    noisy = fleet.stat("output_throughput", "", {f"h{i}": 1000 * (1 + d) for i, d in enumerate((0, .02, -.03, .01, -.01))})
    assert noisy is not None and fleet.outliers_of(noisy, "medium", RULE) == []
    # far in MADs (a very tight fleet) but only 3% off: not an outlier
    tight = fleet.stat("output_throughput", "", {"a": 1000, "b": 1000.1, "c": 999.9, "d": 970})
    assert tight is not None and fleet.outliers_of(tight, "medium", RULE) == []
    # 12% off, and a metric with its own 25% minimum: not an outlier for it
    ttft = fleet.stat("median_ttft_ms", "", {"a": 100, "b": 101, "c": 99, "d": 112})
    assert ttft is not None and fleet.outliers_of(ttft, "medium", RULE) == []


def test_three_hosts_the_sick_one_is_measured_by_the_other_two() -> None:
    """A CI run's TPOT medians (ms) with lab3's GPUs 20% slower: lab1 and lab2 4% apart. The fleet's MAD (0.54,
    lab2's distance to lab1) put lab3 2.8 MADs out, not flagged; the other two's MAD puts it 5.5 out."""
    rule = fleet.Rule(mads=3.5, min_delta_pct=10, min_hosts=3, metrics={"median_tpot_ms": None})
    tpot = fleet.stat("median_tpot_ms", "", {"lab1": 13.663634881183185, "lab2": 14.199659172789081, "lab3": 16.39453190669178})
    assert tpot is not None and (tpot.mad * fleet.MAD_SCALE) == pytest.approx(0.795, abs=1e-3)
    (o,) = fleet.outliers_of(tpot, "medium", rule)
    assert o.host == "lab3" and o.delta_pct == pytest.approx(15.46, abs=0.01) and o.robust_z == pytest.approx(5.52, abs=0.01)
    # the same healthy pair with a third host 6% off: within the minimum difference, not flagged
    healthy = fleet.stat("median_tpot_ms", "", {"lab1": 13.66, "lab2": 14.20, "lab3": 15.05})
    assert healthy is not None and fleet.outliers_of(healthy, "medium", rule) == []


def test_a_tail_is_compared_only_over_enough_requests() -> None:
    """A restored lab fleet's p99 TPOT over 48 requests (the slowest one) put a healthy host 44% off."""
    rule = fleet.Rule(mads=3.5, min_delta_pct=10, min_hosts=3, metrics={"p99_tpot_ms": 25, "median_tpot_ms": None})
    hosts = {"lab1": 14.1, "lab2": 20.3, "lab3": 14.0}

    def built(completed: int) -> fleet.Fleet:
        bench = {h: {"medium": {"p99_tpot_ms": v, "median_tpot_ms": 13.6, "completed": completed}} for h, v in hosts.items()}
        return fleet.build(bench, {}, {}, {}, rule, ["medium"])

    few = built(48)
    assert few.outliers == [] and "p99_tpot_ms" not in few.stats["medium"]
    many = built(1000)
    assert [(o.host, o.metric) for o in many.outliers] == [("lab2", "p99_tpot_ms")]
    assert rule.compares_tail("median_tpot_ms", None) and not rule.compares_tail("p99_itl_ms", None)
    assert fleet.build({}, {}, {}, {}, rule, []).as_json()["rule"]["tail_min_requests"] == 100


def test_identical_hosts_mad_zero_and_too_few_hosts() -> None:
    same = fleet.stat("output_throughput", "", {"a": 1000, "b": 1000, "c": 1000, "d": 800})
    assert same is not None and [o.host for o in fleet.outliers_of(same, "p", RULE)] == ["d"]
    two = fleet.stat("output_throughput", "", {"a": 1000, "b": 500})
    assert two is not None and fleet.outliers_of(two, "p", RULE) == []


def test_sixty_four_hosts_one_sick_worst_first_with_its_telemetry() -> None:
    names = host_names(64)
    bench = {h: {"medium": {"output_throughput": 1000 * (1 + ((i * 37) % 11 - 5) / 250)}} for i, h in enumerate(names)}
    bench["gpu17"]["medium"]["output_throughput"] = 780.0
    bench["gpu40"]["medium"]["output_throughput"] = 870.0
    def energy(watts: float, throttled: float, hot: float) -> Energy:
        return Energy(40, watts, watts * 40, watts * 40 / 4e4, 1.0, True, "", hot, 50.0, 90.0, 1e6, throttled)
    tele = {h: {"medium": energy(3000, 0.0, 70.0)} for h in names}
    tele["gpu17"] = {"medium": energy(2400, 100.0, 96.0)}
    f = fleet.build(bench, {}, tele, {"output_throughput": "Output tok/s"}, RULE, ["medium"])
    assert [(o.host, o.metric) for o in f.outliers] == [("gpu17", "output_throughput"), ("gpu40", "output_throughput")]
    assert "throttled in 100% of readings" in f.outliers[0].explain and "hotspot up to 96 C" in f.outliers[0].explain
    assert f.outliers[0].telemetry["fleet_avg_power_w"] == 3000
    assert f.outliers[1].explain == "telemetry looks like the fleet's"
    assert f.stats["medium"]["j_per_output_token"].median == pytest.approx(3.0)


def test_rule_comes_from_tolerances_yml() -> None:
    rule = compare.load_tolerances().fleet
    assert rule.mads > 0 and rule.min_delta_pct > 0 and "median_tpot_ms" in rule.metrics
    assert "output_throughput" in rule.metrics
    assert dict(rule.compared("gsm8k")) == {"accuracy": 5}  # GSM8K's throughput is no benchmark: not compared


@pytest.mark.parametrize("n_hosts", [4, 8])
def test_report_json_names_the_sick_host_and_only_it(tmp_path: Path, n_hosts: int) -> None:
    make_run(tmp_path, n_hosts, sick="gpu03")
    data = report.report_json(report.build_report(None, root=tmp_path))
    outliers = data["fleet"]["outliers"]
    assert {o["host"] for o in outliers} == {"gpu03"}
    assert {"output_throughput", "median_tpot_ms"} <= {o["metric"] for o in outliers}
    for o in outliers:
        assert {"host", "profile", "metric", "value", "fleet_median", "delta_pct"} <= set(o)
        assert o["profile"] == "medium" and abs(o["delta_pct"]) >= 10
    assert abs(outliers[0]["delta_pct"]) == max(abs(o["delta_pct"]) for o in outliers)  # worst first
    assert data["energy"]["gpu03"]["medium"]["valid"] is True
    assert data["energy"]["gpu01"]["medium"]["j_per_output_token"] == pytest.approx(3000 * 40 / 40000, rel=0.05)
    assert data["fleet"]["profiles"]["medium"]["j_per_output_token"]["hosts"] == n_hosts


def test_no_fault_no_outlier(tmp_path: Path) -> None:
    make_run(tmp_path, 8, sick=None)
    data = report.report_json(report.build_report(None, root=tmp_path))
    assert data["fleet"]["outliers"] == []


def test_console_shows_the_fleet_and_outliers_and_per_host_only_when_asked(tmp_path: Path) -> None:
    make_run(tmp_path, 8, sick="gpu05")
    rep = report.build_report(None, root=tmp_path)
    console = Console(record=True, width=200)
    report.render_console(rep, console)
    text = console.export_text()
    assert "fleet: 8 host(s)" in text and "outlier hosts, worst first" in text and "gpu05" in text
    assert "throttled in 100% of readings" in text and "J / output token" in text
    per_host_title = re.compile(r"^gpu02\s*$", re.MULTILINE)
    assert not per_host_title.search(text)  # no per-host tables
    console = Console(record=True, width=200)
    report.render_console(rep, console, per_host=True)
    assert per_host_title.search(console.export_text())


def test_baseline_run_compares_two_sessions(tmp_path: Path) -> None:
    old = make_run(tmp_path, 4, sick=None, gsm8k=True)
    new = make_run(tmp_path, 4, sick="gpu02", slow_pct=30, gsm8k=True)
    rep = report.build_report(new.name, baseline=old.name, root=tmp_path)  # both made in the same second
    data = report.report_json(rep)
    medians = data["fleet"]["baseline"]["medians"]
    assert medians["medium"]["output_throughput"]["baseline_median"] > 0
    assert "gsm8k" in data["fleet"]["profiles"] and "accuracy" in data["fleet"]["profiles"]["gsm8k"]
    assert next(r for r in data["rows"] if r["host"] == "gpu02" and r["metric"] == "output_throughput")["verdict"] == "regression"
    console = Console(record=True, width=220)
    report.render_console(rep, console)
    assert "Baseline" in console.export_text()
