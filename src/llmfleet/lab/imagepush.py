"""The engine's image step, alone, against lab hosts: for the image-push benchmark and the relay's lab tests.

Builds a payload image in the lab's control engine, runs ``actions.image`` through the real
runner (real SSH, real Docker engines on the hosts), and reads back what the relay may leave.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import subprocess
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import catalog, inventory, paths, playbook_run, runner, settings
from ..actions import image as image_action
from ..playbook import Playbook, Role, Step
from ..steps import HostContext, RunContext, spec
from ..transport import Session

# lab hosts share the machine's PID namespace, so processes are counted by this run's folder names only
LEFTOVERS = "grep -c llmfleet-relay ~/.ssh/authorized_keys 2>/dev/null; ls -d /tmp/llmfleet-relay.* 2>/dev/null; true"


def control_docker_host() -> str:
    return f"unix://{paths.lab_state_dir()}/control/docker.sock"


def payload(size_mb: int, compressible: bool) -> bytes:
    """Random bytes (nothing to compress, like already-compressed layers), or text-like bytes zstd shrinks."""
    if not compressible:
        return os.urandom(size_mb << 20)
    line = b"".join(b"%08d layer text that compresses like a Python/ROCm tree %s\n" % (i, os.urandom(4).hex().encode())
                    for i in range(4096))  # fmt: skip
    return (line * ((size_mb << 20) // len(line) + 1))[: size_mb << 20]


def _layer(files: Mapping[str, bytes]) -> bytes:
    """A tar of these files (a rootfs for `docker import`, a layer, or a whole `docker save` tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_image(size_mb: int, compressible: bool, name: str = "llmfleet-bench/blob") -> str:
    """`docker import` of a one-file rootfs into the control engine: an image of exactly that payload."""
    tag = f"{name}:{'text' if compressible else 'rand'}-{size_mb}mb-{int(time.time())}"
    subprocess.run(["docker", "-H", control_docker_host(), "import", "-", tag],
                   input=_layer({"blob": payload(size_mb, compressible)}), check=True, capture_output=True)  # fmt: skip
    return tag


def build_release_pair(base_mb: int, top_mb: int, name: str = "llmfleet-bench/release") -> tuple[str, str]:
    """Two images like two SGLang releases: the same base layer (random bytes, `base_mb`), each its own top
    layer (`top_mb`). Loaded into the control engine from a `docker save` tar written here (no docker build)."""
    base = _layer({"base": payload(base_mb, False)})
    stamp = int(time.time())
    tags = (f"{name}:old-{base_mb}mb-{stamp}", f"{name}:new-{base_mb}mb-{stamp}")
    for tag in tags:
        top = _layer({"top": payload(top_mb, False)})
        layers = [base, top]
        diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()  # fmt: skip
        files = {f"{d[7:]}/layer.tar": layer for d, layer in zip(diff_ids, layers)}
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": list(files)}]
        saved = _layer({**files, config_name: config, "manifest.json": json.dumps(manifest).encode()})
        subprocess.run(["docker", "-H", control_docker_host(), "load"], input=saved, check=True, capture_output=True)
    return tags


def remove_image(tag: str) -> None:
    subprocess.run(["docker", "-H", control_docker_host(), "rmi", "-f", tag], capture_output=True, check=False)


def _push_step(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    return image_action._push(ctx, str(args["tag"]))


ACTIONS = {"push": spec(_push_step, args=["tag"])}


def push(names: list[str], tag: str, relay: bool, extra_vars: Mapping[str, Any] | None = None,
         ctx: RunContext | None = None) -> tuple[float, runner.RunReport]:  # fmt: skip
    """The image step on these hosts, as a deploy runs it (locks and all); (seconds, report)."""
    pb = Playbook(name="image_push", path=Path("image_push.yml"), roles=[Role("image", [Step(
        name="push", action="push", role="image", args={"tag": tag}, where="image_push.yml:1")])], vars={}, lock=True)  # fmt: skip
    hosts = inventory.load_inventory(paths.default_inventory()).select(",".join(names))
    cli_vars = {"image_relay": relay, "image_source": "push", **(extra_vars or {})}
    plans = playbook_run.plan_hosts(hosts, pb, catalog.load(), cli_vars)
    ctx = ctx or RunContext(playbook=pb, catalog=catalog.load(), mode="apply")
    ctx.playbook, ctx.run_id = pb, ctx.run_id or f"imagepush-{int(time.time())}"
    start = time.monotonic()
    report = runner.run(ctx, plans, ACTIONS, forks=len(plans))
    return time.monotonic() - start, report


def on_hosts(names: list[str], command: str) -> dict[str, str]:
    """One command on each host (in turn); its stdout."""
    out = {}
    for h in inventory.load_inventory(paths.default_inventory()).select(",".join(names)):
        hs = settings.for_host(h, {}, {})
        with Session(playbook_run.endpoint(h, hs.settings, hs.resolved)) as s:
            out[h.name] = s.run(command, timeout=120).stdout.strip()
    return out


def drop_image(names: list[str], tag: str) -> None:
    on_hosts(names, f"docker rmi -f {shlex.quote(tag)} >/dev/null 2>&1; true")


def image_ids(names: list[str], tag: str) -> dict[str, str]:
    return on_hosts(names, f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(tag)} 2>/dev/null; true")


def leftovers(names: list[str]) -> dict[str, str]:
    """What the relay left on each host (relay key lines counted, relay folders listed); empty: nothing."""
    return {h: v for h, v in on_hosts(names, LEFTOVERS).items() if v not in ("", "0")}


def relay_processes() -> list[str]:
    """Processes on this lab's hosts still working in a relay folder (another lab instance's are not counted)."""
    from . import engine, procs

    nets = {procs.ns_inode_of_netns(h.netns) for h in engine.lab_info().hosts} - {None}
    proc = subprocess.run(["pgrep", "-af", "llmfleet-relay[.]"], capture_output=True, text=True, check=False)
    return [ln for ln in proc.stdout.splitlines()
            if "pgrep" not in ln and procs.ns_inode(ln.split()[0], "net") in nets]
