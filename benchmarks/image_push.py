"""Image push through a capped control uplink: to one host, to N hosts from the control node, to N hosts by relay.

Needs root and the lab (run it under `flock /tmp/llmfleet-lab.lock`). Builds an S MB image in the lab's
control engine (random bytes: compression cannot help; `--compressible`: a text-like payload, to show what
zstd adds), caps the control node's link at M Mbit/s, and times the engine's own image step
(llmfleet.actions.image, through llmfleet.lab.imagepush) on fresh hosts each time. Also checks that nothing of the relay is left on any host.

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


def measure(names: list[str], tag: str, relay: bool) -> tuple[float, dict[str, Any]]:
    imagepush.drop_image(names, tag)
    took, report = imagepush.push(names, tag, relay)
    if not report.success:
        bad = {h: r.message for h, r in report.recap.items() if not r.success}
        raise SystemExit(f"push failed: {bad}")
    return took, {r.host: r.message for r in report.results}


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
        image_action._zstd_tar(saved)  # compressed once too (cached between runs, as in real use)
    lab_fault("control", "slow", args.uplink_mbit)
    out: dict[str, Any] = {"benchmark": "image_push", "hosts": args.hosts, "uplink_mbit": args.uplink_mbit,
                           "size_mb": args.size_mb, "payload": "compressible" if args.compressible else "random",
                           "sample_ratio": round(ratio or 1.0, 2)}  # fmt: skip
    try:
        if args.only == "all":
            out["single_s"] = round(measure(names[:1], tag, relay=False)[0], 2)
            out["naive_s"] = round(measure(names, tag, relay=False)[0], 2)
        relay_s, messages = measure(names, tag, relay=True)
        out["relay_s"] = round(relay_s, 2)
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
