"""Wall time of a first deploy and of a no-op redeploy on the lab (root; uses or brings up the lab)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def llmfleet(*args: str) -> tuple[float, dict]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "llmfleet", *args, "--json"], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, "HF_TOKEN": os.environ.get("HF_TOKEN", "hf_benchmarkDummy")})  # fmt: skip
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"llmfleet {' '.join(args)} exited {proc.returncode}")
    return elapsed, json.loads(proc.stdout) if proc.stdout.strip() else {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--model", default="scout")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from llmfleet.lab import lab_up

    t0 = time.monotonic()
    lab_up(args.hosts)
    lab_s = time.monotonic() - t0
    # start from hosts without the container (and, on a fresh lab, without the image)
    stop_s, _ = llmfleet("stop", "--hosts", "lab")
    first_s, first = llmfleet("deploy", "--hosts", "lab", "--model", args.model)
    noop_s, noop = llmfleet("deploy", "--hosts", "lab", "--model", args.model)
    print(json.dumps({
        "benchmark": "deploy_lab",
        "hosts": args.hosts,
        "lab_up_s": round(lab_s, 2),
        "first_deploy_s": round(first_s, 2),
        "first_deploy_changed": sum(r["changed"] for r in first["recap"].values()),
        "noop_redeploy_s": round(noop_s, 2),
        "noop_redeploy_changed": sum(r["changed"] for r in noop["recap"].values()),
        "noop_engine_s": noop.get("duration_s"),
    }))


if __name__ == "__main__":
    main()
