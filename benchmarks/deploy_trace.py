"""What one llmfleet run costs each host: every remote operation, its kind and time, and the phases of the run.

Runs a playbook in-process (as `invoke deploy` would) with a connect function that records every
operation a session performs (command, file put/get, HTTP request through the connection), then prints
per host: connect time, number of operations and round trips, and the operations in order. Also cProfiles
the whole process when ``--profile FILE`` is given. Needs the lab (run it under the lab lock).

    python3 benchmarks/deploy_trace.py --hosts lab --model scout --json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmfleet import playbook_run, runner  # noqa: E402
from llmfleet.transport import Endpoint, Session, SessionLike  # noqa: E402

# remote operations a session can perform, and how many round trips each costs at least
ROUND_TRIPS = {"run": 1, "put_bytes": 4, "get_bytes": 3, "http_get": 1, "listdir_recursive": 2}


class Traced:
    """A session that logs each operation (name, first words, seconds) before handing it to the real one."""

    def __init__(self, inner: SessionLike, log: list[dict[str, Any]]):
        self.inner = inner
        self.log = log
        self.endpoint = getattr(inner, "endpoint", None)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in ROUND_TRIPS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return attr(*args, **kwargs)
            finally:
                what = str(args[0] if name != "http_get" else f"{args[0]}{args[1]}")[:90]
                self.log.append({"op": name, "what": what, "s": round(time.monotonic() - start, 4)})

        return call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="lab")
    ap.add_argument("--model", default="scout")
    ap.add_argument("--playbook", default="deploy")
    ap.add_argument("--profile", help="write a cProfile of the run to this file")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_TOKEN", "hf_benchmarkDummy")
    logs: dict[str, list[dict[str, Any]]] = {}
    connects: dict[str, float] = {}
    lock = threading.Lock()

    def connect(ep: Endpoint) -> SessionLike:
        start = time.monotonic()
        session = Session(ep).open()
        with lock:
            connects[ep.name] = round(time.monotonic() - start, 4)
            logs[ep.name] = []
        return Traced(session, logs[ep.name])

    req = playbook_run.Request(playbook=args.playbook, hosts=args.hosts, cli_vars={"model": args.model},
                               forks=runner.DEFAULT_FORKS)  # fmt: skip
    prof = cProfile.Profile() if args.profile else None
    start = time.monotonic()
    if prof:
        prof.enable()
    report = playbook_run.execute(req, lambda e: None, lambda t: None, connect=connect)
    if prof:
        prof.disable()
        prof.dump_stats(args.profile)
    took = time.monotonic() - start
    per_host = {h: {"connect_s": connects.get(h), "ops": len(ops), "round_trips": sum(ROUND_TRIPS[o["op"]] for o in ops),
                    "remote_s": round(sum(o["s"] for o in ops), 3), "trace": ops} for h, ops in logs.items()}  # fmt: skip
    out = {"playbook": args.playbook, "hosts": len(per_host), "success": report.success, "run_s": round(took, 3),
           "steps_s": {f"{r.host}:{r.step}": round(r.duration_s, 3) for r in report.results[: len(report.results) // max(1, len(per_host))]},
           "per_host": per_host}  # fmt: skip
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
