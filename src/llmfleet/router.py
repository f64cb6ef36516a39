"""The cluster's front door: the real sglang-router (PyPI's Rust binary) as a managed process on the control node,
or (``router.up --on HOST``) as a container on a host (llmfleet.actions.router_host).

One router per state folder (``$LLMFLEET_ROUTER_STATE``, default ``<project>/.router``):
``router.json`` holds its PID, URL, policy and config hash, ``router.log`` its output,
``audit.log`` one line per start, stop and worker change. :func:`start` is idempotent: the
same config with the process alive changes nothing (workers are reconciled at run time
through the router's own API); another config replaces the process. A router on a host is
recorded in the same ``router.json`` with ``on: HOST`` (its liveness is its /health).

On a host the router runs from the host's server image with the pinned package and its
dependencies as a plain ``--target`` folder (:func:`bundle`: built once on the control node
from PyPI's wheels for the image's Python, pushed over SFTP, mounted read-only): hosts need
no network and no pip, and the version is the control node's pinned one.

Worker API of the pinned version (0.3.2): ``GET /workers``, ``POST /workers`` with
``{"url": ...}`` (queued, applied in the background), ``DELETE /workers/<id>``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import paths

PACKAGE = "sglang-router"
DEFAULT_PORT = 30000
POLICIES = ("cache_aware", "round_robin", "random", "power_of_two")
# In HTTP mode the router forwards text and needs no tokenizer; left alone it fetches one from the
# Hugging Face Hub at every worker registration. A closed loopback endpoint keeps it off the network.
QUIET_ENV = {"HF_ENDPOINT": "http://127.0.0.1:9"}


class RouterError(Exception):
    """The router could not be started, reached or changed; the message says what to do."""


def state_dir() -> Path:
    env = os.environ.get("LLMFLEET_ROUTER_STATE")
    return Path(env) if env else paths.project_root() / ".router"


def version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def address_towards(remote: str) -> str:
    """The control node's own address on the route to `remote` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((remote, 9))
        return str(s.getsockname()[0])


@dataclass(frozen=True)
class RouterConfig:
    bind: str
    port: int = DEFAULT_PORT
    policy: str = "cache_aware"
    workers: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "sglang_router.launch_router", "--host", self.bind, "--port", str(self.port),
                "--policy", self.policy, "--prometheus-host", "127.0.0.1", "--prometheus-port", str(self.port + 1),
                "--log-level", "info"]  # fmt: skip
        return argv + (["--worker-urls", *self.workers] if self.workers else [])

    def config_hash(self) -> str:
        """What the process is (workers change at run time through the API, so they are not part of it)."""
        doc = {"bind": self.bind, "port": self.port, "policy": self.policy, "version": version()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class RouterState:
    pid: int
    url: str
    policy: str
    config_hash: str
    version: str
    started_at: str
    log: str
    workers: list[str] = field(default_factory=list)
    on: str = "control"  # or the inventory host whose llmfleet-router container it is


def _state_file() -> Path:
    return state_dir() / "router.json"


def audit(line: str) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(state_dir() / "audit.log", "a", encoding="utf-8") as f:
        f.write(f"{stamp} {line}\n")


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"sglang" in cmdline  # the router retitles itself "sglang::router"


def recorded() -> RouterState | None:
    """The router this state folder started, alive or not."""
    try:
        doc = json.loads(_state_file().read_text())
        return RouterState(**doc)
    except (OSError, ValueError, TypeError):
        return None


def current() -> RouterState | None:
    """The router this state folder started, if it is alive (its process here, its /health on a host)."""
    st = recorded()
    if st is None:
        return None
    if st.on != "control":
        return st if Client(st.url).healthy() else None
    return st if _alive(st.pid) else None


def forget(st: RouterState, why: str) -> None:
    """Drop the record of a router on a host (its container is gone)."""
    _state_file().unlink(missing_ok=True)
    audit(f"stop {st.url} on {st.on} ({why})")


def save(st: RouterState) -> None:
    """Record a router (one on a host: router.up --on HOST)."""
    _save(st)


# ------------------------------------------------------------------ HTTP


def _call(url: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


class Client:
    """The router's worker API."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def healthy(self) -> bool:
        try:
            _call(f"{self.url}/health", timeout=3)
            return True
        except (OSError, urllib.error.URLError):
            return False

    def workers(self) -> list[dict[str, Any]]:
        doc = _call(f"{self.url}/workers")
        return list(doc.get("workers", [])) if isinstance(doc, dict) else []

    def find(self, worker: str) -> dict[str, Any] | None:
        return next((w for w in self.workers() if w.get("url") == worker), None)

    def add(self, worker: str, timeout: float = 60) -> None:
        """Register a worker and wait until the router lists it healthy."""
        posted = self.find(worker) is None
        if posted:
            _call(f"{self.url}/workers", "POST", {"url": worker})
        self._wait(worker, lambda w: w is not None and bool(w.get("is_healthy")), timeout, "listed healthy")
        if posted:
            audit(f"add {worker}")

    def remove(self, worker: str, timeout: float = 60) -> bool:
        """Take a worker out of rotation; False when the router did not list it."""
        found = self.find(worker)
        if found is None:
            return False
        _call(f"{self.url}/workers/{found['id']}", "DELETE")
        self._wait(worker, lambda w: w is None, timeout, "gone")
        audit(f"remove {worker}")
        return True

    def _wait(self, worker: str, done: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if done(self.find(worker)):
                return
            if time.monotonic() > deadline:
                raise RouterError(f"router {self.url}: worker {worker} not {what} after {timeout:.0f}s")
            time.sleep(0.25)


def worker_health(worker: str, timeout: float = 3) -> int:
    """A server's /health status seen from the control node (0: no answer)."""
    try:
        with urllib.request.urlopen(f"{worker}/health", timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0


# ------------------------------------------------------------------ process


def start(cfg: RouterConfig, wait_s: float = 60) -> tuple[RouterState, bool]:
    """(state, changed): start the router, or keep the one running with the same config."""
    running = current()
    if running is not None and running.on != "control":
        raise RouterError(f"a router already runs on {running.on} ({running.url}): `invoke router.down` first")
    wanted = cfg.config_hash()
    if running is not None and running.config_hash == wanted:
        client = Client(running.url)
        for w in cfg.workers:
            client.add(w)
        running.workers = [w["url"] for w in client.workers()]
        _save(running)
        return running, False
    if running is not None:
        stop()
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "router.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cfg.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **QUIET_ENV})  # fmt: skip
    st = RouterState(proc.pid, cfg.url, cfg.policy, wanted, version(),
                     datetime.now(timezone.utc).isoformat(timespec="seconds"), str(log_path), list(cfg.workers))  # fmt: skip
    _save(st)
    audit(f"start pid {proc.pid} {cfg.url} policy {cfg.policy} config {wanted} workers {' '.join(cfg.workers) or '-'}")
    client = Client(cfg.url)
    deadline = time.monotonic() + wait_s
    while not client.healthy() or proc.poll() is not None:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            raise RouterError(f"sglang-router exited {proc.returncode}: " + " | ".join(tail))
        if time.monotonic() > deadline:
            raise RouterError(f"sglang-router not answering on {cfg.url} after {wait_s:.0f}s; see {log_path}")
        time.sleep(0.2)
    for w in cfg.workers:
        client._wait(w, lambda x: x is not None and bool(x.get("is_healthy")), wait_s, "listed healthy")
    return st, True


def wait_up(url: str, wait_s: float = 60) -> None:
    """Wait until the router at `url` answers /health."""
    client = Client(url)
    deadline = time.monotonic() + wait_s
    while not client.healthy():
        if time.monotonic() > deadline:
            raise RouterError(f"sglang-router not answering on {url} after {wait_s:.0f}s")
        time.sleep(0.5)


# ------------------------------------------------------------------ the bundle for hosts


def bundle_name(python: str) -> str:
    """The pushed archive's name: the pinned version and the image's Python (binary wheels depend on it)."""
    return f"sglang-router-{version()}-py{python}"


def bundle_cache() -> Path:
    return Path(os.environ.get("LLMFLEET_CACHE", Path.home() / ".cache" / "llmfleet")) / "router"


def pip_target_argv(python: str, wheels: Path, target: Path) -> list[list[str]]:
    """pip download (once; pip's own cache) then an offline --target install, for `python` on manylinux x86_64."""
    pinned = f"{PACKAGE}=={version()}"
    where = ["--only-binary=:all:", "--python-version", python, "--platform", "manylinux2014_x86_64"]
    return [[sys.executable, "-m", "pip", "download", "-q", *where, "-d", str(wheels), pinned],
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), *where,
             "--target", str(target), pinned]]  # fmt: skip


def bundle(python: str) -> Path:
    """A .tar.gz of the pinned sglang-router and its dependencies for `python`, built once and cached."""
    if version() == "not installed":
        raise RouterError(f"{PACKAGE} is not installed on the control node: run scripts/setup.sh")
    name = bundle_name(python)
    out = bundle_cache() / f"{name}.tar.gz"
    if out.is_file():
        return out
    work = bundle_cache() / f"{name}.build"
    shutil.rmtree(work, ignore_errors=True)
    for argv in pip_target_argv(python, bundle_cache() / "wheels", work / name):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise RouterError(f"could not bundle {PACKAGE} {version()} for Python {python}: "
                              f"{(done.stderr or done.stdout).strip()[-400:]} -> put its wheels in {bundle_cache() / 'wheels'}")  # fmt: skip
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(work / name, arcname=name)
    tmp.replace(out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def stop(timeout_s: float = 15) -> RouterState | None:
    """Stop the router this state folder started (SIGTERM, then SIGKILL); None when none runs."""
    st = current()
    if st is not None and st.on != "control":
        raise RouterError(f"the router runs on {st.on}, not here: `invoke router.down` removes its container")
    if st is None:
        _state_file().unlink(missing_ok=True)
        return None
    os.kill(st.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(st.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(st.pid):
        os.kill(st.pid, signal.SIGKILL)
    try:
        os.waitpid(st.pid, os.WNOHANG)
    except ChildProcessError:
        pass
    _state_file().unlink(missing_ok=True)
    audit(f"stop pid {st.pid} {st.url}")
    return st


def _save(st: RouterState) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(st), indent=1, sort_keys=True))
    tmp.replace(_state_file())
