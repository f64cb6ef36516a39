"""The latency model: interpolation of the cookbook's seeds (catalog/lab-sim.yml)."""

from __future__ import annotations

import pytest

from llmfleet import paths
from llmfleet.lab.sim.latency import interpolate, load_config

CONFIG = load_config(paths.catalog_dir() / "lab-sim.yml")


def test_interpolate_between_and_beyond_points():
    pts = [(1, 10.0), (11, 20.0), (21, 40.0)]
    assert interpolate(pts, 1) == 10.0
    assert interpolate(pts, 6) == 15.0
    assert interpolate(pts, 16) == 30.0
    assert interpolate(pts, 31) == 60.0  # past the last point: the last slope goes on
    assert interpolate(pts, -1000) == 5.0  # never below half the first value
    assert interpolate([(4, 7.0)], 100) == 7.0


@pytest.mark.parametrize(
    "model, expected",
    [("scout", {1: 7.40, 16: 12.00, 100: 42.90}), ("maverick", {1: 5.96, 16: 10.22, 100: 35.37})],
)
def test_tpot_hits_the_cookbook_medians_at_their_concurrency(model, expected):
    m = CONFIG.models[model]
    for running, tpot in expected.items():
        assert m.tpot_ms(running) == pytest.approx(tpot)
    assert m.tpot_ms(0) == m.tpot_ms(1)
    assert m.tpot_ms(1) < m.tpot_ms(8) < m.tpot_ms(16) < m.tpot_ms(50) < m.tpot_ms(100) < m.tpot_ms(150)


def test_ttft_grows_with_prompt_and_load_and_matches_seeds_at_mean_prompt():
    m = CONFIG.models["scout"]
    for seed in m.seeds:
        assert m.ttft_ms(round(seed.mean_prompt_tokens), seed.max_concurrency) == pytest.approx(
            seed.median_ttft_ms, rel=0.01
        )
    assert m.ttft_ms(100, 1) < m.ttft_ms(1000, 1) < m.ttft_ms(4000, 1)
    assert 60 <= m.ttft_ms(1000, 1) <= 90  # the brief's "60-90 ms for 1000 tokens at low load"
    assert m.ttft_ms(1000, 1) < m.ttft_ms(1000, 16) < m.ttft_ms(1000, 100)


def test_config_states_accuracy_and_a_short_load():
    assert CONFIG.models["scout"].gsm8k_accuracy == 0.945
    assert CONFIG.models["maverick"].gsm8k_accuracy == 0.895
    assert 0 < CONFIG.load_seconds <= 10
    assert CONFIG.default_max_new_tokens == 128
