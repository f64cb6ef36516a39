"""`invoke router.up --on HOST` / `router.down`: sglang-router as a container on a host.

Why a container from the server's image: the host already has that image (no pull, no
registry), its Python runs the router, and docker gives the process a name, a restart
policy, logs (`docker logs llmfleet-router`) and a config label, like the server. The
router itself is the control node's pinned package (llmfleet.router.bundle), unpacked
once into ``<remote_dir>/router/`` and mounted read-only, so every host runs the same
version whatever its image ships. Idempotent: a running container whose label matches
the wanted config (image, port, policy, version) is left alone; workers are added by the
control node through the router's API. Every start and removal goes to the host's audit log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import hostlock, router
from ..commands import docker
from ..steps import CHANGED, OK, HostContext, StepFailed, spec

CONTAINER = "llmfleet-router"
CONFIG_LABEL = "llmfleet.router.config"
MOUNT = "/opt/sglang-router"


def config_hash(image: str, port: int, policy: str, version: str) -> str:
    """What the container is (workers change at run time through the API, so they are not part of it)."""
    doc = {"image": image, "port": port, "policy": policy, "version": version}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def run_argv(image: str, site: str, port: int, policy: str, wanted: str) -> list[str]:
    """`docker run -d` of the router: host network, the bundle on PYTHONPATH, no Hub traffic."""
    command = ["python3", "-m", "sglang_router.launch_router", "--host", "0.0.0.0", "--port", str(port),
               "--policy", policy, "--prometheus-host", "127.0.0.1", "--prometheus-port", str(port + 1),
               "--log-level", "info"]  # fmt: skip
    if "," in site or "=" in site:
        raise StepFailed(f"remote_dir for the router bundle must not hold ',' or '=': {site}")
    mount = ["--mount", f"type=bind,source={site},target={MOUNT},readonly"]
    return docker.run(CONTAINER, image, command, device_flags=["--network", "host", *mount],
                      env={"PYTHONPATH": MOUNT, **router.QUIET_ENV}, labels={CONFIG_LABEL: wanted},
                      restart="unless-stopped")  # fmt: skip


def state_argv() -> list[str]:
    return ["docker", "inspect", "--format", '{{.State.Status}} {{index .Config.Labels "' + CONFIG_LABEL + '"}}', CONTAINER]


def _audit(ctx: HostContext, detail: str) -> None:
    line = hostlock.audit_line(ctx.run.playbook.name, ctx.run.run_id, "change", detail)
    ctx.change(hostlock.audit(ctx.settings.remote_root, line), timeout=30)


def server_image(ctx: HostContext) -> str:
    """`router_image`, else the image of the host's server container."""
    if ctx.settings.router_image:
        return ctx.settings.router_image
    if ctx.mode == "dry-run":
        return "<the server container's image>"
    got = ctx.probe(["docker", "inspect", "--format", "{{.Config.Image}}", ctx.settings.container_name], timeout=30)
    if not got.ok or not got.stdout.strip():
        raise StepFailed(f"no {ctx.settings.container_name} container to take the router's image from: "
                         "deploy first, or set router_image")  # fmt: skip
    return got.stdout.strip()


def ensure_bundle(ctx: HostContext) -> str:
    """The router's package folder on the host, unpacked from the control node's bundle once."""
    local = ctx.settings.router_bundle
    if not local:
        raise StepFailed("router_bundle is not set (invoke router.up --on HOST builds and sets it)")
    name = Path(local).name.removesuffix(".tar.gz")
    folder = f"{ctx.settings.remote_root}/router"
    site = f"{folder}/{name}"
    if ctx.mode != "dry-run" and ctx.probe(["test", "-f", f"{site}/sglang_router/__init__.py"], timeout=30).ok:
        return site
    data = Path(local).read_bytes()
    ctx.change(["install", "-d", "-m", "755", folder])
    ctx.put(data, f"{site}.tar.gz", 0o644, display=f"upload {Path(local).name} ({len(data)} bytes) to {folder}")
    ctx.change(["tar", "-xzf", f"{site}.tar.gz", "-C", folder], timeout=300)
    ctx.change(["rm", "-f", f"{site}.tar.gz"])
    return site


def router_container(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    s = ctx.settings
    image = server_image(ctx)
    wanted = config_hash(image, s.router_port, s.router_policy, router.version())
    if ctx.mode != "dry-run":
        status, _, label = ctx.probe(state_argv(), timeout=30).stdout.strip().partition(" ")
        if status == "running" and label == wanted:
            return OK, f"{CONTAINER} up to date ({wanted}) on :{s.router_port}"
        exists = bool(status)
    else:
        exists = True
    site = ensure_bundle(ctx)
    if exists:
        ctx.change(docker.remove(CONTAINER))
    ctx.change(run_argv(image, site, s.router_port, s.router_policy, wanted))
    if ctx.mode == "apply":
        _audit(ctx, f"router start {CONTAINER} :{s.router_port} policy {s.router_policy} config {wanted} image {image}")
    return CHANGED, f"{CONTAINER} started on :{s.router_port} ({s.router_policy}, sglang-router {router.version()}, config {wanted})"


def router_remove(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    if ctx.mode != "dry-run" and not ctx.probe(state_argv(), timeout=30).ok:
        return OK, f"no {CONTAINER} container"
    ctx.change(docker.stop(CONTAINER, 10), check=False)
    ctx.change(docker.remove(CONTAINER))
    if ctx.mode == "apply":
        _audit(ctx, f"router stop {CONTAINER}")
    return CHANGED, f"{CONTAINER} stopped and removed"


ACTIONS = {
    "router_container": spec(router_container),
    "router_remove": spec(router_remove),
}
