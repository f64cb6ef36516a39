"""Latency of commands on one reused SSH connection, and of a full fact gathering (lab host 1)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmfleet import facts, inventory, paths, playbook_run, settings  # noqa: E402
from llmfleet.transport import Session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--host", default="lab")
    args = ap.parse_args()
    host = inventory.load_inventory(paths.default_inventory()).select(args.host)[0]
    t0 = time.monotonic()
    hs = settings.for_host(host, {}, {})
    session = Session(playbook_run.endpoint(host, hs.settings, hs.resolved)).open()
    connect_s = time.monotonic() - t0
    lat = []
    for _ in range(args.count):
        start = time.perf_counter()
        session.run("true")
        lat.append((time.perf_counter() - start) * 1000)
    query = facts.FactQuery("lmsysorg/sglang:v0.5.9-rocm720-mi30x", "llmfleet-sglang", "/var/lib/llmfleet/hf",
                            "meta-llama/Llama-4-Scout-17B-16E-Instruct")  # fmt: skip
    gathers = []
    for _ in range(10):
        start = time.perf_counter()
        facts.parse(session.run(facts.gather_command(query)).stdout)
        gathers.append((time.perf_counter() - start) * 1000)
    session.close()
    print(json.dumps({
        "benchmark": "ssh_commands",
        "host": host.name,
        "connect_ms": round(connect_s * 1000, 1),
        "commands": args.count,
        "command_median_ms": round(statistics.median(lat), 2),
        "command_p99_ms": round(sorted(lat)[int(len(lat) * 0.99) - 1], 2),
        "fact_gather_median_ms": round(statistics.median(gathers), 1),
    }))


if __name__ == "__main__":
    main()
