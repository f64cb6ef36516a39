"""Offline replay of `sglang.bench_serving` against the latency model, in simulated time.

The lab's claim is that the real client, run against the simulated server, reproduces
the cookbook. This module checks the model half of that claim in milliseconds, with no
server: the same schedule as engine.py (``latency.next_op``), a closed-loop client like
bench_serving's (``--max-concurrency`` requests in flight, ``--request-rate inf``), the
same request lengths (bench_serving's random dataset: ``np.random.seed(1)``, then input
and output lengths uniform in [max(1, ratio*len), len]; --random-range-ratio defaults to
0.0 in sglang 0.5.7 and 0.5.9) and bench_serving's formulas for every figure.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .latency import LatencyModel, join_ms, joins, next_op


def bench_lengths(num_prompts: int, input_len: int = 1000, output_len: int = 1000, range_ratio: float = 0.0,
                  seed: int = 1) -> list[tuple[int, int]]:
    """(input, output) lengths exactly as bench_serving draws them (compute_random_lens after np.random.seed)."""
    import numpy as np

    np.random.seed(seed)
    ins = np.random.randint(max(int(input_len * range_ratio), 1), input_len + 1, size=num_prompts)
    outs = np.random.randint(max(int(output_len * range_ratio), 1), output_len + 1, size=num_prompts)
    return [(int(i), int(o)) for i, o in zip(ins, outs)]


def percentile(values: Sequence[float], pct: float) -> float:
    """numpy.percentile's default (linear) method, which bench_serving prints."""
    xs = sorted(values)
    if not xs:
        return 0.0
    k = (len(xs) - 1) * pct / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@dataclass
class _Req:
    prompt: int
    out: int
    start: float = 0.0
    produced: int = 0
    token_times: list[float] = field(default_factory=list)


def replay(model: LatencyModel, lengths: Sequence[tuple[int, int]], max_concurrency: int,
           slowdown: float = 1.0, client_lag_ms: float = 0.0) -> list[_Req]:
    """Run the schedule to the end; every request with its start and token times (ms).

    `client_lag_ms`: how long after a slot frees its next request reaches the server (0 on
    a real machine; 10-90 ms in the lab, where client and servers share two cores). The
    client's clock starts when it sends; a request that arrives while a prefill runs may
    join it (latency.joins), as in the live engine."""
    pending = deque(_Req(p, o) for p, o in lengths)
    transit: deque[tuple[float, _Req]] = deque()  # (arrival time, request), in arrival order
    waiting: deque[_Req] = deque()
    running: list[_Req] = []
    done: list[_Req] = []
    now = 0.0

    def admit() -> None:
        while pending and len(transit) + len(waiting) + len(running) < max_concurrency:
            req = pending.popleft()
            req.start = now
            transit.append((now + client_lag_ms, req))

    admit()
    while transit or waiting or running:
        while transit and transit[0][0] <= now:
            waiting.append(transit.popleft()[1])
        if not waiting and not running:
            now = transit[0][0]
            continue
        op = next_op(model, [r.prompt for r in waiting], len(running), slowdown)
        end = now + op.ms
        if op.kind == "prefill":
            batch = [waiting.popleft() for _ in range(op.take)]
            while transit and transit[0][0] < end and joins(
                model, sum(r.prompt for r in batch), transit[0][1].prompt, len(waiting)
            ):
                late = transit.popleft()[1]
                batch.append(late)
                end += join_ms(model, late.prompt, slowdown)
            running.extend(batch)
        now = end
        for req in running if op.kind == "decode" else batch:
            req.produced += 1
            req.token_times.append(now)
        still = [r for r in running if r.produced < r.out]
        done.extend(r for r in running if r.produced >= r.out)
        running = still
        admit()
    return done


def metrics(done: Sequence[_Req]) -> dict[str, Any]:
    """bench_serving's figures for the replayed requests (keys of `invoke parse`)."""
    start = min(r.start for r in done)
    end = max(r.token_times[-1] for r in done)
    duration_s = (end - start) / 1000.0
    ttfts = [r.token_times[0] - r.start for r in done]
    e2es = [r.token_times[-1] - r.start for r in done]
    tpots = [(r.token_times[-1] - r.token_times[0]) / (r.out - 1) for r in done if r.out > 1]
    itls = [b - a for r in done for a, b in zip(r.token_times, r.token_times[1:])]
    total_out = sum(r.out for r in done)
    total_in = sum(r.prompt for r in done)
    return {
        "completed": len(done),
        "duration_s": duration_s,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "output_throughput": total_out / duration_s,
        "total_throughput": (total_in + total_out) / duration_s,
        "concurrency": sum(e2es) / 1000.0 / duration_s,
        "mean_e2e_ms": sum(e2es) / len(e2es),
        "median_e2e_ms": percentile(e2es, 50),
        "mean_ttft_ms": sum(ttfts) / len(ttfts),
        "median_ttft_ms": percentile(ttfts, 50),
        "p99_ttft_ms": percentile(ttfts, 99),
        "mean_tpot_ms": sum(tpots) / len(tpots),
        "median_tpot_ms": percentile(tpots, 50),
        "p99_tpot_ms": percentile(tpots, 99),
        "mean_itl_ms": sum(itls) / len(itls),
        "median_itl_ms": percentile(itls, 50),
        "p95_itl_ms": percentile(itls, 95),
        "p99_itl_ms": percentile(itls, 99),
        "max_itl_ms": max(itls),
    }


def bench(model: LatencyModel, num_prompts: int, max_concurrency: int, slowdown: float = 1.0,
          client_lag_ms: float = 0.0) -> dict[str, Any]:
    """The cookbook's command (random 1000/1000, rate inf) replayed: its figures."""
    return metrics(replay(model, bench_lengths(num_prompts), max_concurrency, slowdown, client_lag_ms))
