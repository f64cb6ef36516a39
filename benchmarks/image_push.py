"""Image push through a capped control uplink: to one host, to N hosts from the control node, to N hosts by relay.

Needs root and the lab (run it under `flock /tmp/llmfleet-lab.lock`). Builds an S MB image in the lab's
control engine (random bytes: compression cannot help; `--compressible`: a text-like payload, to show what
zstd adds), caps the control node's link at M Mbit/s, and times the engine's own image step
(llmfleet.actions.image, through llmfleet.lab.imagepush) on fresh hosts each time. Also checks that nothing of the relay is left on any host.
``cpu_busy_pct``: how busy this machine's cores were during each push. The lab's hosts share them, so
near 100% the lab's CPU, not the capped link, set the time (a real host loads its image on its own cores).

    python3 benchmarks/image_push.py --hosts 8 --uplink-mbit 200 --size-mb 256 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmfleet.actions import image as image_action  # noqa: E402
from llmfleet.lab import imagepush  # noqa: E402


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of every core of this machine, which the lab's hosts share."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measure(names: list[str], tag: str, relay: bool) -> tuple[float, dict[str, Any], float]:
    """(seconds, each host's message, % of the machine's CPU busy meanwhile): on the lab every host's sshd,
    docker load and relay pipe run on these cores, so a busy machine says the lab, not the link, set the time."""
    imagepush.drop_image(names, tag)
    busy0, total0 = cpu_times()
    took, report = imagepush.push(names, tag, relay)
    busy1, total1 = cpu_times()
    if not report.success:
        bad = {h: r.message for h, r in report.recap.items() if not r.success}
        raise SystemExit(f"push failed: {bad}")
    return took, {r.host: r.message for r in report.results}, round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--uplink-mbit", type=float, default=200)
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--compressible", action="store_true", help="a payload zstd can shrink (default: random bytes)")
    ap.add_argument("--only", choices=["all", "relay"], default="all", help="relay: skip the single and naive pushes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from llmfleet.lab import lab_fault, lab_up

    lab_up(args.hosts)
    names = [f"lab{i}" for i in range(1, args.hosts + 1)]
    tag = imagepush.build_image(args.size_mb, args.compressible)
    saved = image_action.ControlImages(imagepush.control_docker_host()).tar(tag)  # saved once, outside the timings
    ratio = image_action.compression_ratio(saved.tar) if saved.tar else None
    if ratio and ratio >= image_action.MIN_RATIO:
        image_action._zstd_tar(saved.tar)  # compressed once too (cached between runs, as in real use)
    lab_fault("control", "slow", args.uplink_mbit)
    out: dict[str, Any] = {"benchmark": "image_push", "hosts": args.hosts, "uplink_mbit": args.uplink_mbit,
                           "size_mb": args.size_mb, "payload": "compressible" if args.compressible else "random",
                           "sample_ratio": round(ratio or 1.0, 2)}  # fmt: skip
    busy: dict[str, float] = {}
    try:
        if args.only == "all":
            single_s, _, busy["single"] = measure(names[:1], tag, relay=False)
            naive_s, _, busy["naive"] = measure(names, tag, relay=False)
            out["single_s"], out["naive_s"] = round(single_s, 2), round(naive_s, 2)
        relay_s, messages, busy["relay"] = measure(names, tag, relay=True)
        out["relay_s"] = round(relay_s, 2)
        out["cpu_busy_pct"] = busy
        out["relay_sources"] = messages
    finally:
        lab_fault("control", "restore")
        imagepush.drop_image(names, tag)
        imagepush.remove_image(tag)
    if "single_s" in out:
        out["relay_over_single"] = round(out["relay_s"] / out["single_s"], 2)
    out["leftovers"] = imagepush.leftovers(names)
    out["relay_processes"] = imagepush.relay_processes()
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
