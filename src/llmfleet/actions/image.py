"""Get the SGLang image onto a host: `docker pull` there, or push it from the control node.

Push streams `docker save` output (saved once per run on the control node, whatever
the number of hosts) over each host's SSH connection into `docker load`, with a
progress bar per host. Either way the step is skipped when the host already has
the image (the same image ID, for a push).
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from .. import shell
from ..commands import docker
from ..steps import CHANGED, OK, HostContext, StepFailed, spec

CHUNK = 1 << 20
KEEP_TARS = 2  # saved images kept on the control node (the current one and the one before)


@dataclass
class ControlImage:
    tag: str
    image_id: str
    size: int
    tar: Path | None = None


def _control_env(docker_host: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return env


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmfleet" / "images"


class ControlImages:
    """The control node's images, inspected and saved once per run for all hosts."""

    def __init__(self, docker_host: str | None):
        self.docker_host = docker_host
        self._lock = threading.Lock()
        self._images: dict[str, ControlImage] = {}

    def inspect(self, tag: str) -> ControlImage:
        with self._lock:
            if tag not in self._images:
                argv = docker.image_id(tag)  # DOCKER_HOST picks the engine
                proc = subprocess.run(argv, capture_output=True, text=True, env=_control_env(self.docker_host))
                if proc.returncode != 0:
                    where = self.docker_host or "the control node's default engine"
                    raise StepFailed(f"image {tag} is not on the control node ({where}): {proc.stderr.strip()[:200]}")
                image_id, size = proc.stdout.split()
                self._images[tag] = ControlImage(tag, image_id, int(size))
            return self._images[tag]

    def tar(self, tag: str) -> ControlImage:
        """Save the image to the cache once; every host's push reads the same file."""
        image = self.inspect(tag)
        with self._lock:
            if image.tar is None:
                path = cache_dir() / f"{image.image_id.split(':')[-1]}.tar"
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".partial")
                    argv = docker.save(tag) + ["-o", str(tmp)]
                    proc = subprocess.run(argv, capture_output=True, text=True, env=_control_env(self.docker_host))
                    if proc.returncode != 0:
                        raise StepFailed(f"docker save {tag} failed on the control node: {proc.stderr.strip()[:200]}")
                    tmp.rename(path)
                    prune(path.parent, keep=KEEP_TARS)
                image.tar = path
            return image


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest saved images: each is hundreds of MB to GBs."""
    tars = sorted(directory.glob("*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in tars[keep:]:
        old.unlink(missing_ok=True)
    return tars[keep:]


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while True:
            data = fh.read(CHUNK)
            if not data:
                return
            yield data


def host_image_id(ctx: HostContext, tag: str) -> str | None:
    """The host's image ID for a tag: from the facts when they looked at this tag, else asked."""
    if ctx.state.facts_image == tag:
        return ctx.facts.image_id
    result = ctx.probe(docker.image_id(tag))
    return result.stdout.split()[0] if result.ok and result.stdout.strip() else None


def _push(ctx: HostContext, tag: str) -> tuple[str, str]:
    if ctx.mode == "dry-run":
        src = ctx.settings.control_docker_host
        save = shell.join(docker.save(tag, src))
        ctx.planned.append(f"{save} | ssh {ctx.host.address} {shell.join(docker.load())}  # on the control node")
        return CHANGED, ""
    images: ControlImages = ctx.run.shared.setdefault("control_images", ControlImages(ctx.settings.control_docker_host))
    wanted = images.inspect(tag)
    if host_image_id(ctx, tag) == wanted.image_id:
        ctx.state.image_id = wanted.image_id
        ctx.run.note(ctx.name, image_id=wanted.image_id)
        return OK, f"{tag} already there ({wanted.image_id[7:19]})"
    if ctx.mode == "check":
        ctx.planned.append(f"push {tag} ({wanted.size / 1e6:.0f} MB) from the control node, then docker load")
        return CHANGED, ""
    image = images.tar(tag)
    assert image.tar is not None
    total = image.tar.stat().st_size
    progress = ctx.run.shared.get("progress")
    task = progress.add_task(f"{ctx.name} push", total=total) if progress else None

    def sent(n: int) -> None:
        if progress is not None:
            progress.update(task, advance=n)

    display = f"docker save {tag} | docker load  # {total / 1e6:.0f} MB over SSH"
    try:
        ctx.change(docker.load(), stdin=_chunks(image.tar), on_sent=sent, timeout=None, display=display)
    finally:
        if progress is not None:
            progress.remove_task(task)
    after = ctx.probe(docker.image_id(tag))
    got = after.stdout.split()[0] if after.ok and after.stdout.strip() else None
    if got != image.image_id:
        raise StepFailed(f"after docker load the host has {got or 'no image'} for {tag}, expected {image.image_id}")
    ctx.state.image_id = got
    ctx.run.note(ctx.name, image_id=got)
    return CHANGED, f"pushed {tag} ({total / 1e6:.0f} MB)"


def _pull(ctx: HostContext, tag: str) -> tuple[str, str]:
    policy = ctx.settings.pull_policy
    before = host_image_id(ctx, tag) if ctx.mode != "dry-run" else None
    if before and policy == "missing":
        ctx.state.image_id = before
        ctx.run.note(ctx.name, image_id=before)
        return OK, f"{tag} already there ({before[7:19]})"
    result = ctx.change(docker.pull(tag), timeout=ctx.settings.pull_timeout)
    if result is None:
        return CHANGED, ""
    after = ctx.probe(docker.image_id(tag))
    if not after.ok:
        raise StepFailed(f"docker pull {tag} finished but the image is not there")
    new_id = after.stdout.split()[0]
    changed = new_id != before
    ctx.state.image_id = new_id
    ctx.run.note(ctx.name, image_id=new_id)
    return (CHANGED if changed else OK), f"{tag} {'pulled' if changed else 'up to date'} ({new_id[7:19]})"


def ensure_image(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    image = ctx.deployment.image
    return _push(ctx, image) if ctx.settings.image_source == "push" else _pull(ctx, image)


ACTIONS = {"ensure_image": spec(ensure_image, requires=["facts", "deployment"], provides=["image_id"])}
