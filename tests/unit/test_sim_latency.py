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
    [("scout", {1: 7.49, 16: 10.54, 100: 24.46}), ("maverick", {1: 5.96, 16: 9.10, 100: 27.66})],
)
def test_a_decode_step_is_the_cookbooks_median_itl_at_its_concurrency(model, expected):
    m = CONFIG.models[model]
    for running, itl in expected.items():
        assert m.step_ms(running) == pytest.approx(itl)
    assert m.step_ms(0) == m.step_ms(1)
    assert m.step_ms(1) < m.step_ms(8) < m.step_ms(16) < m.step_ms(50) < m.step_ms(100) < m.step_ms(150)


def test_prefill_grows_with_the_prompt():
    m = CONFIG.models["scout"]
    assert m.prefill_ms(100) < m.prefill_ms(1000) < m.prefill_ms(4000)
    assert 60 <= m.ttft_ms(1000) <= 90  # an idle server: 60-90 ms for 1000 tokens
    low = CONFIG.models["scout"].seeds[0]
    assert m.ttft_ms(round(low.mean_prompt_tokens)) == pytest.approx(low.median_ttft_ms, rel=0.15)


def test_config_states_accuracy_memory_and_a_short_load():
    assert CONFIG.models["scout"].gsm8k_accuracy == 0.945
    assert CONFIG.models["maverick"].gsm8k_accuracy == 0.895
    assert 0 < CONFIG.load_seconds <= 10
    assert CONFIG.default_max_new_tokens == 128
    assert CONFIG.gpu_memory_gb == 192 and 0.9 <= CONFIG.max_mem_fraction_static < 0.95
