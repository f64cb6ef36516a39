"""A Docker registry on the lab's bridge, so `--image-source pull` is real in the lab too.

Nothing can be pulled from Docker Hub here. The lab runs Debian's `docker-registry`
(the CNCF distribution registry) on the control side at the bridge address, pushes
the lab images into it from the control engine, and every host engine has it as its
registry mirror: `docker pull lmsysorg/sglang:...` on a host then fetches from it,
exactly as a host behind a pull-through cache would. Its storage lives in the cache
directory next to the control engine's, so a second lab reuses the pushed layers.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import procs, topology
from .layout import Layout, control_cache_dir
from .state import State

PORT = 5000
ADDRESS = f"{topology.BRIDGE_ADDRESS}:{PORT}"
BINARY = "/usr/bin/docker-registry"


def storage_dir() -> Path:
    return control_cache_dir().parent / f"registry{topology.SUFFIX}"


def config_yaml(storage: Path, address: str = ADDRESS) -> str:
    """No auth, no TLS: it listens only on the lab bridge, which has no route anywhere else."""
    return json.dumps(
        {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": address},
        },
        indent=2,
    )  # JSON is YAML


def answers(address: str = ADDRESS, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(layout: Layout, state: State) -> None:
    """Start the registry unless it already answers (the bridge must exist)."""
    rec = state.data["control"].get("registry")
    if procs.alive(rec) and answers():
        return
    if rec:
        procs.stop([rec], timeout=10)
    storage = storage_dir()
    storage.mkdir(parents=True, exist_ok=True)
    config = layout.control_dir / "registry.yml"
    config.write_text(config_yaml(storage))
    proc = procs.spawn([BINARY, "serve", str(config)], layout.control_dir / "log" / "registry.log")
    with state.update() as data:
        data["control"]["registry"] = proc
    deadline = time.monotonic() + 30
    while not answers():
        if not procs.alive(proc) or time.monotonic() > deadline:
            log = (layout.control_dir / "log" / "registry.log").read_text(errors="replace")[-800:]
            raise RuntimeError(f"the lab registry did not start on {ADDRESS}: {log}")
        time.sleep(0.2)


def stop(state: State) -> None:
    procs.stop([state.data["control"].get("registry")], timeout=10)


def publish(docker_host: str, tags: list[str]) -> None:
    """Push the control engine's images into the registry (layers already there are skipped)."""
    for tag in tags:
        mirrored = f"{ADDRESS}/{tag}"
        for argv in (["docker", "-H", docker_host, "tag", tag, mirrored], ["docker", "-H", docker_host, "push", mirrored]):
            out = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
            if out.returncode != 0:
                raise RuntimeError(f"{' '.join(argv[3:])} failed: {(out.stderr or out.stdout).strip()[-400:]}")


def has_tags(tags: list[str], address: str = ADDRESS) -> bool:
    """True when the registry serves a manifest for every tag (its storage may have been purged)."""
    for tag in tags:
        repo, _, ref = tag.rpartition(":")
        request = urllib.request.Request(
            f"http://{address}/v2/{repo}/manifests/{ref}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                if resp.status != 200:
                    return False
        except (urllib.error.URLError, OSError):
            return False
    return True
