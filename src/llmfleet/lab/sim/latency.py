"""The latency model: decode steps and prefills of a continuous-batching scheduler.

Pure functions and data; catalog/lab-sim.yml states the model in words and holds its
numbers. The engine (engine.py) and the offline replay (replay.py) both ask
``next_op`` what the simulated GPU does next, so the replay that the unit tests
compare with the cookbook is the same schedule the served requests live through.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    """One cookbook run: its concurrency and the figures the model takes from it."""

    max_concurrency: int
    num_prompts: int
    total_input_tokens: int
    median_ttft_ms: float
    median_tpot_ms: float
    median_itl_ms: float

    @property
    def mean_prompt_tokens(self) -> float:
        return self.total_input_tokens / self.num_prompts


@dataclass(frozen=True)
class Op:
    """What the simulated GPU does next: a prefill of the first `take` waiting requests, or a decode step."""

    kind: str  # "prefill" | "decode" | "idle"
    ms: float
    take: int = 0


@dataclass(frozen=True)
class LatencyModel:
    name: str
    seeds: tuple[Seed, ...]
    prefill_fixed_ms: float
    prefill_ms_per_token: float
    chunked_prefill_size: int
    gsm8k_accuracy: float

    def step_ms(self, running: int) -> float:
        """One decode step with `running` requests in the batch: the cookbook's median ITL,
        interpolated between its concurrencies (every running request gets its token in the
        same step, so the gap between two tokens of a stream is one step)."""
        return interpolate([(s.max_concurrency, s.median_itl_ms) for s in self.seeds], max(running, 1))

    tpot_ms = step_ms  # the name older callers use: the time between two tokens of one stream

    def prefill_ms(self, tokens: int) -> float:
        """One prefill forward pass over `tokens` new prompt tokens (decode waits meanwhile)."""
        return self.prefill_fixed_ms + self.prefill_ms_per_token * max(tokens, 1)

    def ttft_ms(self, prompt_tokens: int, running: int = 0) -> float:
        """Time to first token of a prompt that finds the GPU idle: its prefill alone.
        Under load it also waits for the step in flight and shares its prefill batch
        (engine.py / replay.py)."""
        return self.prefill_ms(prompt_tokens)


def next_op(model: LatencyModel, waiting: Sequence[int], running: int, slowdown: float = 1.0) -> Op:
    """SGLang's default schedule (no mixed chunks): waiting prompts are prefilled first, as one
    batch up to chunked_prefill_size tokens (at least one request), while the running batch
    waits; otherwise one decode step for every running request. `slowdown` (>= 1) stretches
    both, as a throttled GPU does."""
    if waiting:
        take, tokens = 0, 0
        for n in waiting:
            if take and tokens + n > model.chunked_prefill_size:
                break
            take, tokens = take + 1, tokens + n
        return Op("prefill", model.prefill_ms(tokens) * slowdown, take)
    if running:
        return Op("decode", model.step_ms(running) * slowdown)
    return Op("idle", 0.0)


def joins(model: LatencyModel, batch_tokens: int, prompt_tokens: int, queued_behind: int = 0) -> bool:
    """Whether a prompt that arrives while a prefill pass is in flight is taken into that pass.

    SGLang's scheduler builds each prefill batch from every request received since its last
    iteration, and a client on a real machine answers a finished stream within a millisecond:
    the requests caused by one decode step's completions reach the same prefill batch. In the
    lab the clients share two loaded cores with the servers and answer 10-90 ms late, so those
    requests straggle in while the batch runs; a second prefill right after it stalls the
    running batch twice (an ITL of a step plus two prefills). So a late arrival joins the pass
    in flight, FCFS (nobody queued before it) and within chunked_prefill_size, and the pass
    lasts its per-token cost longer (join_ms): the schedule the prompt would have had on time.
    """
    return queued_behind == 0 and batch_tokens + prompt_tokens <= model.chunked_prefill_size


def join_ms(model: LatencyModel, prompt_tokens: int, slowdown: float = 1.0) -> float:
    """How much longer a prefill pass lasts for a prompt that joins it (its tokens' cost, no fixed cost)."""
    return model.prefill_ms_per_token * max(prompt_tokens, 1) * slowdown


@dataclass(frozen=True)
class SimConfig:
    load_seconds: float
    natural_output_tokens: tuple[int, int]
    default_max_new_tokens: int
    models: dict[str, LatencyModel]
    fallback_server_args: list[dict[str, Any]]
    gpu_memory_gb: float = 192.0
    max_mem_fraction_static: float = 0.94


def _seed(s: dict[str, Any]) -> Seed:
    return Seed(int(s["max_concurrency"]), int(s["num_prompts"]), int(s["total_input_tokens"]),
                float(s["median_ttft_ms"]), float(s["median_tpot_ms"]), float(s["median_itl_ms"]))


def parse_config(doc: dict[str, Any]) -> SimConfig:
    prefill = doc.get("prefill") or {}
    models = {}
    for name, spec in (doc.get("models") or {}).items():
        seeds = tuple(sorted((_seed(s) for s in spec["seeds"]), key=lambda s: s.max_concurrency))
        own = {**prefill, **(spec.get("prefill") or {})}
        models[name] = LatencyModel(
            name, seeds,
            prefill_fixed_ms=float(own.get("fixed_ms", 40.0)),
            prefill_ms_per_token=float(own.get("ms_per_token", 0.035)),
            chunked_prefill_size=int(own.get("chunked_prefill_size", 16384)),
            gsm8k_accuracy=float(spec["gsm8k_accuracy"]),
        )
    lo, hi = doc.get("natural_output_tokens", [48, 320])
    gpu = doc.get("gpu") or {}
    return SimConfig(
        load_seconds=float(doc.get("load_seconds", 2)),
        natural_output_tokens=(int(lo), int(hi)),
        default_max_new_tokens=int(doc.get("default_max_new_tokens", 128)),
        models=models,
        fallback_server_args=list(doc.get("fallback_server_args") or []),
        gpu_memory_gb=float(gpu.get("memory_gb", 192.0)),
        max_mem_fraction_static=float(gpu.get("max_mem_fraction_static", 0.94)),
    )


def load_config(path: Path) -> SimConfig:
    import yaml

    with open(path) as fh:
        return parse_config(yaml.safe_load(fh))
