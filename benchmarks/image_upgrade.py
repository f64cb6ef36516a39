"""An upgrade's image push through a capped control uplink: every layer vs only the layers each host lacks.

Needs root and the lab (run it under `flock /tmp/llmfleet-lab.lock`). Builds two images in the lab's control
engine like two SGLang releases (a shared base layer of B MB, a top layer of T MB each; random bytes, so zstd
cannot help), puts the old one on every host, caps the control node's link at M Mbit/s, then times the new
one's image step (llmfleet.actions.image, through llmfleet.lab.imagepush) twice on the same hosts in the same
run: `image_push_layers=all` and `=missing` (the default), each after the new image is dropped again from every
host (the old one, and so the base layer, stays). Relay on for both, as by default.

    python3 benchmarks/image_upgrade.py --hosts 4 --uplink-mbit 50 --base-mb 256 --top-mb 16 --json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmfleet.lab import imagepush  # noqa: E402


def timed_push(names: list[str], tag: str, layers: str) -> dict[str, Any]:
    """The new image onto hosts that lack it: seconds, and MB sent per host (from each host's step message)."""
    imagepush.drop_image(names, tag)
    took, report = imagepush.push(names, tag, relay=True, extra_vars={"image_push_layers": layers})
    if not report.success:
        raise SystemExit(f"push failed: { {h: r.message for h, r in report.recap.items() if not r.success} }")
    sent = {r.host: float(m.group(1)) for r in report.results if (m := re.search(r"\((\d+) MB in", r.message))}
    return {"seconds": round(took, 2), "mb_sent": sent, "messages": {r.host: r.message for r in report.results}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--uplink-mbit", type=float, default=50)
    ap.add_argument("--base-mb", type=int, default=256)
    ap.add_argument("--top-mb", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from llmfleet.lab import lab_fault, lab_up

    lab_up(args.hosts)
    names = [f"lab{i}" for i in range(1, args.hosts + 1)]
    old, new = imagepush.build_release_pair(args.base_mb, args.top_mb)
    out: dict[str, Any] = {"benchmark": "image_upgrade", "hosts": args.hosts, "uplink_mbit": args.uplink_mbit,
                           "base_mb": args.base_mb, "top_mb": args.top_mb}  # fmt: skip
    try:
        imagepush.push(names, old, relay=True)  # the release the fleet runs (uncapped, not timed)
        lab_fault("control", "slow", args.uplink_mbit)
        out["all_layers"] = timed_push(names, new, "all")
        out["missing_layers"] = timed_push(names, new, "missing")
        out["speedup"] = round(out["all_layers"]["seconds"] / max(out["missing_layers"]["seconds"], 1e-3), 2)
        out["same_image"] = len(set(imagepush.image_ids(names, new).values())) == 1
    finally:
        lab_fault("control", "restore")
        for tag in (new, old):
            imagepush.drop_image(names, tag)
            imagepush.remove_image(tag)
    out["leftovers"] = imagepush.leftovers(names)
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
