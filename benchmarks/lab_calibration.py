"""The lab's simulated server against the cookbook, measured with the real bench_serving: `invoke bench`
of the given profiles (default: high, 500 prompts at concurrency 100) on one lab host, then
`invoke report --json`; prints each metric's value, cookbook baseline, delta and verdict.

Root, lab; run under the lab lock. Uses the lab if it is up (else brings one host up and takes it
down at the end), deploys Scout on its first host (a no-op when it already serves).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("output_throughput", "total_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms",
           "median_itl_ms", "p99_itl_ms", "median_e2e_ms")  # fmt: skip


def llmfleet(*args: str, timeout: float = 3600) -> dict:
    env = {**os.environ, "HF_TOKEN": os.environ.get("HF_TOKEN", "hf_benchmarkDummy")}
    proc = subprocess.run([sys.executable, "-m", "llmfleet", *args, "--json"], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"llmfleet {' '.join(args)} exited {proc.returncode}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="high", help="low | medium | high | a comma list (catalog/profiles.yml)")
    ap.add_argument("--model", default="scout")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from llmfleet.lab import lab_down, lab_status, lab_up

    up = len(lab_status())
    brought_up = up == 0
    try:
        host = lab_up(up or 1).hosts[0].name
        llmfleet("deploy", "--hosts", host, "--model", args.model)
        start = time.monotonic()
        run = llmfleet("bench", "--hosts", host, "--model", args.model, "--profile", args.profile)
        bench_s = time.monotonic() - start
        report = llmfleet("report", "--run", Path(run["archive"]).name)
    finally:
        if brought_up:
            lab_down()
    rows = {}
    for row in report["rows"]:
        if row["host"] == host and row["metric"] in METRICS:
            rows.setdefault(row["profile"], {})[row["metric"]] = {
                k: row[k] for k in ("value", "baseline", "delta_pct", "verdict")
            }
    print(json.dumps({"model": args.model, "host": host, "bench_s": round(bench_s, 1), "simulated": report["simulated"],
                      "baseline": report["baseline"], "profiles": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
