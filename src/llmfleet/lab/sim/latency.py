"""The latency model: TPOT and TTFT from the cookbook's seed numbers (catalog/lab-sim.yml).

Pure functions; the YAML's comment states the model in words.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


def interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    """Piecewise-linear through sorted (x, y) points; linear extrapolation past both ends
    (never below half the first point's y, so a silly x cannot give a negative latency)."""
    if not points:
        raise ValueError("no points")
    if len(points) == 1:
        return points[0][1]
    xs = [p[0] for p in points]
    i = bisect_right(xs, x)
    if i <= 0:
        (x0, y0), (x1, y1) = points[0], points[1]
    elif i >= len(points):
        (x0, y0), (x1, y1) = points[-2], points[-1]
    else:
        (x0, y0), (x1, y1) = points[i - 1], points[i]
    y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return max(y, points[0][1] / 2)


@dataclass(frozen=True)
class Seed:
    max_concurrency: int
    num_prompts: int
    total_input_tokens: int
    median_ttft_ms: float
    median_tpot_ms: float

    @property
    def mean_prompt_tokens(self) -> float:
        return self.total_input_tokens / self.num_prompts


@dataclass(frozen=True)
class LatencyModel:
    name: str
    seeds: tuple[Seed, ...]
    ttft_fixed_fraction: float
    gsm8k_accuracy: float

    def tpot_ms(self, running: int) -> float:
        """Time of one decode step with `running` requests decoding."""
        return interpolate([(s.max_concurrency, s.median_tpot_ms) for s in self.seeds], max(running, 1))

    def ttft_ms(self, prompt_tokens: int, running: int) -> float:
        """Time to first token for a prompt arriving while `running` requests decode."""
        n = max(running, 1)
        base = interpolate([(s.max_concurrency, s.median_ttft_ms) for s in self.seeds], n)
        mean_prompt = interpolate([(s.max_concurrency, s.mean_prompt_tokens) for s in self.seeds], n)
        f = self.ttft_fixed_fraction
        return base * (f + (1 - f) * max(prompt_tokens, 1) / mean_prompt)


@dataclass(frozen=True)
class SimConfig:
    load_seconds: float
    natural_output_tokens: tuple[int, int]
    default_max_new_tokens: int
    models: dict[str, LatencyModel]
    fallback_server_args: list[dict[str, Any]]


def parse_config(doc: dict[str, Any]) -> SimConfig:
    fixed = float(doc.get("ttft_fixed_fraction", 0.5))
    models = {}
    for name, spec in (doc.get("models") or {}).items():
        seeds = tuple(
            sorted(
                (
                    Seed(
                        int(s["max_concurrency"]),
                        int(s["num_prompts"]),
                        int(s["total_input_tokens"]),
                        float(s["median_ttft_ms"]),
                        float(s["median_tpot_ms"]),
                    )
                    for s in spec["seeds"]
                ),
                key=lambda s: s.max_concurrency,
            )
        )
        models[name] = LatencyModel(name, seeds, fixed, float(spec["gsm8k_accuracy"]))
    lo, hi = doc.get("natural_output_tokens", [48, 320])
    return SimConfig(
        load_seconds=float(doc.get("load_seconds", 2)),
        natural_output_tokens=(int(lo), int(hi)),
        default_max_new_tokens=int(doc.get("default_max_new_tokens", 128)),
        models=models,
        fallback_server_args=list(doc.get("fallback_server_args") or []),
    )


def load_config(path: Path) -> SimConfig:
    import yaml

    with open(path) as fh:
        return parse_config(yaml.safe_load(fh))
