"""The calibrated latency model against the cookbook: replay.py runs the cookbook's own
bench_serving commands against the model in simulated time and judges every figure with
catalog/tolerances.yml, the way `invoke report` judges a lab run."""

from __future__ import annotations

import pytest

from llmfleet import compare, paths
from llmfleet.lab.sim import replay
from llmfleet.lab.sim.latency import join_ms, joins, load_config, next_op

pytest.importorskip("numpy")

CONFIG = load_config(paths.catalog_dir() / "lab-sim.yml")
TOLERANCES = compare.load_tolerances()
REFERENCE = compare.load_reference()
PROFILES = {"low": (10, 1), "medium": (80, 16), "high": (500, 100)}
# Verdicts that must be "ok" (within tolerance both ways), not merely "not a regression":
# the figures the cookbook states consistently (see the note in catalog/lab-sim.yml).
MUST_BE_OK = {
    "medium": ("output_throughput", "total_throughput", "median_tpot_ms", "median_itl_ms", "p99_itl_ms",
               "median_e2e_ms"),
    "high": ("output_throughput", "total_throughput", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms", "median_e2e_ms"),
    "low": ("median_ttft_ms", "median_tpot_ms", "p99_tpot_ms", "median_itl_ms", "p99_itl_ms"),
}


@pytest.fixture(scope="module")
def replays() -> dict[tuple[str, str], dict]:
    return {(m, p): replay.bench(CONFIG.models[m], n, c) for m in ("scout", "maverick") for p, (n, c) in PROFILES.items()}


def test_lengths_are_bench_servings_random_draws():
    """The cookbook's token totals are exactly bench_serving's draws with --random-range-ratio 0.0."""
    for n, total_out in ((10, 4220), (80, 40805), (500, 252662)):
        assert sum(o for _, o in replay.bench_lengths(n)) == total_out


@pytest.mark.parametrize("entry", range(2), ids=["0.5.7", "0.5.9"])
@pytest.mark.parametrize("model", ["scout", "maverick"])
def test_replay_is_within_the_cookbooks_tolerances(replays, entry, model):
    ref = REFERENCE["entries"][entry]["models"][model]["bench"]
    problems = []
    for profile in PROFILES:
        got, base = replays[(model, profile)], ref[profile]["metrics"]
        assert got["total_output_tokens"] == base["total_output_tokens"]
        for metric, tol in TOLERANCES.bench.items():
            if metric in TOLERANCES.skips.get(profile, {}):
                continue
            d, verdict = compare.judge(got[metric], base[metric], tol)
            if verdict == "regression" or (metric in MUST_BE_OK[profile] and verdict != "ok"):
                problems.append(f"{profile} {metric}: {got[metric]:.2f} vs {base[metric]} ({d:+.1f}%, {verdict})")
    assert not problems, "\n".join(problems)


def test_itl_is_a_step_and_its_tail_a_step_plus_a_prefill(replays):
    m = CONFIG.models["scout"]
    high = replays[("scout", "high")]
    assert high["median_itl_ms"] == pytest.approx(m.step_ms(100), rel=0.05)
    assert high["p99_itl_ms"] == pytest.approx(m.step_ms(100) + m.prefill_ms(1000), rel=0.15)
    assert high["median_tpot_ms"] > high["median_itl_ms"] * 1.2  # prefills stretch TPOT, not the median gap


def test_a_slower_gpu_is_slower_by_its_factor():
    fast = replay.bench(CONFIG.models["scout"], 80, 16)
    slow = replay.bench(CONFIG.models["scout"], 80, 16, slowdown=1.25)
    assert slow["median_tpot_ms"] == pytest.approx(fast["median_tpot_ms"] * 1.25, rel=0.05)
    assert slow["output_throughput"] == pytest.approx(fast["output_throughput"] / 1.25, rel=0.05)


def test_scheduler_prefills_first_in_chunks_then_decodes():
    m = CONFIG.models["scout"]
    op = next_op(m, [9000, 9000, 100], running=50)
    assert (op.kind, op.take) == ("prefill", 1)  # the second prompt would pass chunked_prefill_size
    assert op.ms == pytest.approx(m.prefill_ms(9000))
    assert next_op(m, [20000], running=0).take == 1  # a long prompt still goes (SGLang chunks it)
    assert next_op(m, [], running=50).ms == pytest.approx(m.step_ms(50))
    assert next_op(m, [], running=50, slowdown=2.0).ms == pytest.approx(2 * m.step_ms(50))
    assert next_op(m, [], running=0).kind == "idle"


@pytest.mark.parametrize("lag_ms", [5, 15, 30])
@pytest.mark.parametrize("profile", ["medium", "high"])
def test_a_late_client_does_not_change_the_verdicts(lag_ms, profile):
    """The lab's clients answer a finished stream ~15 ms late (median on two shared cores); arrivals
    that join the prefill in flight keep every figure within the cookbook's tolerances. (Far later,
    ~60 ms, the medium profile's median TTFT, which counts the lag itself, leaves its 25%.)"""
    n, c = PROFILES[profile]
    got = replay.bench(CONFIG.models["scout"], n, c, client_lag_ms=lag_ms)
    base = REFERENCE["entries"][0]["models"]["scout"]["bench"][profile]["metrics"]
    verdicts = {m: compare.judge(got[m], base[m], tol)[1] for m, tol in TOLERANCES.bench.items()}
    assert "regression" not in verdicts.values(), verdicts


def test_a_late_prompt_joins_a_pass_in_fcfs_order_within_the_chunk_budget():
    m = CONFIG.models["scout"]
    assert joins(m, 16000, 384) and not joins(m, 16000, 385)
    assert not joins(m, 100, 100, queued_behind=1)  # never ahead of a prompt still queued
    assert join_ms(m, 1000, slowdown=2.0) == pytest.approx(2 * m.prefill_ms_per_token * 1000)
