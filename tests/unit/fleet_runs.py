"""Archived fleet runs for report tests: N hosts, real bench_serving logs, telemetry.

Each host's bench log is the fixture run's real log; its ``--output-file`` record
overlays the figures that differ between hosts (a deterministic spread of a few
percent, and a sick host PCT% slower), the way `invoke bench` archives them. The
telemetry files are what the bench action writes (llmfleet.telemetry): a window
record and samples a second apart, the sick host throttled and hot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmfleet import archive, telemetry

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_RUN = next((ROOT / "tests" / "fixtures" / "runs").glob("2026*"))
SPREAD = (0.0, 0.012, -0.018, 0.025, -0.008, 0.016, -0.022, 0.005)  # per host, cycled: ~ +-2.5% noise


def host_names(n: int) -> list[str]:
    return [f"gpu{i + 1:02d}" for i in range(n)]


def record(profile: str, factor: float, noise: float) -> dict[str, Any]:
    """bench_serving's --output-file record, scaled: factor > 1 is slower."""
    base = {"low": (170.0, 5.8, 60.0), "medium": (1140.0, 11.8, 150.0), "high": (3300.0, 26.0, 900.0)}[profile]
    tput, tpot, ttft = base
    slow = factor * (1 + noise)
    return {"backend": "sglang", "completed": 80, "total_output_tokens": 40000, "duration": 40000 / (tput / slow),
            "output_throughput": tput / slow, "total_throughput": 2 * tput / slow, "median_tpot_ms": tpot * slow,
            "median_itl_ms": tpot * 0.82 * slow, "median_e2e_ms": 1000 * tpot * slow / 1.8,
            "median_ttft_ms": ttft * (1 + 2 * noise), "p99_tpot_ms": tpot * 1.3 * slow}  # fmt: skip


def samples(start: float, seconds: int, watts: float, sick: bool) -> list[dict[str, Any]]:
    gpu = {"gfx_pct": 90.0, "vram_used_mb": 173000.0, "hotspot_c": 96.0 if sick else 70.0, "mem_c": 55.0,
           "throttled": sick}  # fmt: skip
    return [{"kind": "sample", "t": start + t, "source": "amd-smi",
             "gpus": [{"gpu": g, "power_w": watts / 8, **gpu} for g in range(8)]} for t in range(-2, seconds + 3)]  # fmt: skip


def make_run(root: Path, n_hosts: int, sick: str | None = None, slow_pct: float = 20.0,
             profiles: tuple[str, ...] = ("medium",), gsm8k: bool = False) -> Path:  # fmt: skip
    """An archived, verified bench (or session) run of n_hosts; ``sick`` is slow_pct% slower."""
    hosts = host_names(n_hosts)
    meta = {"kind": "session" if gsm8k else "bench", "mode": "apply", "model": "scout", "hosts": hosts,
            "simulated": True, "flags": {}}  # fmt: skip
    with archive.new_run(meta, root=root) as run:
        for i, host in enumerate(hosts):
            factor = 1 / (1 - slow_pct / 100) if host == sick else 1.0
            noise = SPREAD[i % len(SPREAD)]
            for profile in profiles:
                log = (FIXTURE_RUN / "lab1" / "bench" / f"{profile}.log").read_text()
                rec = record(profile, factor, noise)
                run.write(f"{host}/bench/{profile}.log", log)
                run.write(f"{host}/bench/{profile}.jsonl", archive_json(rec))
                t0 = 1_800_000_000.0 + 1000 * profiles.index(profile)
                window = telemetry.window_record(profile, (t0 - 20, t0 + 40), (t0, t0 + 40), 40000, "amd-smi", 1.5)
                watts = 3000.0 * (0.85 if host == sick else 1.0) * (1 + noise / 2)
                run.write(f"{host}/telemetry/{profile}.jsonl", telemetry.dumps([window, *samples(t0, 40, watts, host == sick)]))
            if gsm8k:
                run.write(f"{host}/accuracy/gsm8k.log", (FIXTURE_RUN / "lab1" / "accuracy" / "gsm8k.log").read_text())
        run.update_meta(status="ok", hosts={h: {"hardware": "mi300x", "sglang_version": "0.5.9"} for h in hosts},
                        sglang_version="0.5.9")  # fmt: skip
        return root / run.run_id


def archive_json(rec: dict[str, Any]) -> str:
    return json.dumps(rec) + "\n"
