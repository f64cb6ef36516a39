"""Image push through a capped control uplink: to one host, to N hosts from the control node, to N hosts by relay.

Needs root and the lab (run it under `flock /tmp/llmfleet-lab.lock`). Builds an S MB image in the lab's
control engine (random bytes: compression cannot help; `--compressible`: a text-like payload, to show what
zstd adds), caps the control node's link at M Mbit/s, and times the engine's own image step
(llmfleet.actions.image) on fresh hosts each time. Also checks that nothing of the relay is left on any host.

    python3 benchmarks/image_push.py --hosts 8 --uplink-mbit 200 --size-mb 256 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmfleet import catalog, inventory, paths, playbook_run, runner, settings  # noqa: E402
from llmfleet.actions import image as image_action  # noqa: E402
from llmfleet.playbook import Playbook, Role, Step  # noqa: E402
from llmfleet.steps import HostContext, RunContext, spec  # noqa: E402
from llmfleet.transport import Session  # noqa: E402

# lab hosts share the machine's PID namespace, so processes are not checked here (a pgrep would see every host's)
LEFTOVERS = "grep -c llmfleet-relay ~/.ssh/authorized_keys 2>/dev/null; ls -d /tmp/llmfleet-relay.* 2>/dev/null; true"


def payload(size_mb: int, compressible: bool) -> bytes:
    if not compressible:
        return os.urandom(size_mb << 20)
    line = b"".join(b"%08d layer text that compresses like a Python/ROCm tree %s\n" % (i, os.urandom(4).hex().encode())
                    for i in range(4096))  # fmt: skip
    return (line * ((size_mb << 20) // len(line) + 1))[: size_mb << 20]


def build_image(docker_host: str, size_mb: int, compressible: bool) -> str:
    """`docker import` of a one-file rootfs into the control engine: an image of exactly that payload."""
    tag = f"llmfleet-bench/blob:{'text' if compressible else 'rand'}-{size_mb}mb-{int(time.time())}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = payload(size_mb, compressible)
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    subprocess.run(["docker", "-H", docker_host, "import", "-", tag], input=buf.getvalue(), check=True, capture_output=True)
    return tag


def _push_step(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    return image_action._push(ctx, str(args["tag"]))


ACTIONS = {"push": spec(_push_step, args=["tag"])}


def push(names: list[str], tag: str, relay: bool) -> tuple[float, runner.RunReport]:
    pb = Playbook(name="image_push", path=Path("image_push.yml"), roles=[Role("image", [Step(
        name="push", action="push", role="image", args={"tag": tag}, where="image_push.yml:1")])], vars={}, lock=False)  # fmt: skip
    inv = inventory.load_inventory(paths.default_inventory())
    hosts = inv.select(",".join(names))
    plans = playbook_run.plan_hosts(hosts, pb, catalog.load(), {"image_relay": relay, "image_source": "push"})
    ctx = RunContext(playbook=pb, catalog=catalog.load(), mode="apply", run_id=f"bench-{int(time.time())}")
    start = time.monotonic()
    report = runner.run(ctx, plans, ACTIONS, forks=len(plans))
    return time.monotonic() - start, report


def on_hosts(names: list[str], command: str) -> dict[str, str]:
    inv = inventory.load_inventory(paths.default_inventory())
    out = {}
    for h in inv.select(",".join(names)):
        hs = settings.for_host(h, {}, {})
        with Session(playbook_run.endpoint(h, hs.settings, hs.resolved)) as s:
            out[h.name] = s.run(command, timeout=120).stdout.strip()
    return out


def measure(names: list[str], tag: str, relay: bool) -> tuple[float, dict[str, Any]]:
    on_hosts(names, f"docker rmi -f {tag} >/dev/null 2>&1; true")
    took, report = push(names, tag, relay)
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
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from llmfleet.lab import lab_fault, lab_up

    lab_up(args.hosts)
    names = [f"lab{i}" for i in range(1, args.hosts + 1)]
    docker_host = f"unix://{paths.lab_state_dir()}/control/docker.sock"
    tag = build_image(docker_host, args.size_mb, args.compressible)
    saved = image_action.ControlImages(docker_host).tar(tag)  # saved (and compressed) once, outside the timings
    image_action._zstd_tar(saved)
    lab_fault("control", "slow", args.uplink_mbit)
    try:
        single_s, _ = measure(names[:1], tag, relay=False)
        naive_s, _ = measure(names, tag, relay=False)
        relay_s, messages = measure(names, tag, relay=True)
    finally:
        lab_fault("control", "restore")
        on_hosts(names, f"docker rmi -f {tag} >/dev/null 2>&1; true")
        subprocess.run(["docker", "-H", docker_host, "rmi", "-f", tag], capture_output=True, check=False)
    left = {h: v for h, v in on_hosts(names, LEFTOVERS).items() if v not in ("", "0")}
    print(json.dumps({
        "benchmark": "image_push", "hosts": args.hosts, "uplink_mbit": args.uplink_mbit, "size_mb": args.size_mb,
        "payload": "compressible" if args.compressible else "random",
        "single_s": round(single_s, 2), "naive_s": round(naive_s, 2), "relay_s": round(relay_s, 2),
        "relay_over_single": round(relay_s / single_s, 2), "relay_sources": messages, "leftovers": left,
    }, indent=None if args.json else 2))  # fmt: skip


if __name__ == "__main__":
    main()
