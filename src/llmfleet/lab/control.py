"""The control side's own Docker engine: where the lab's images are built and kept.

It runs in the root network namespace but in a private mount namespace with its
own /run (exec root, containerd socket), listens on ``<state>/control/docker.sock``
and keeps its data root in the user's cache directory, so built images survive
lab.down (``lab.down --purge`` removes them). The toolkit's push path
(``docker save`` here, ``docker load`` on a host over SSH) starts from this engine.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import configs, hostfs, hosts, procs, registry
from . import topology as topo
from .hosts import HostError, Machine
from .layout import Layout, control_cache_dir
from .state import State

UNIX_PATH_MAX = 107


def socket_path_ok(path: Path) -> bool:
    return len(str(path).encode()) <= UNIX_PATH_MAX


def running(state: State) -> bool:
    c = state.data["control"]
    return procs.alive(c.get("init")) and procs.alive(c.get("dockerd"))


def start(layout: Layout, state: State) -> None:
    """Start the control engine unless it already answers; restart it when half of it is gone."""
    if running(state) and hosts.docker_ping(str(layout.control_socket)):
        return
    if state.data["control"]:
        stop(state)
    sock = layout.control_socket
    if not socket_path_ok(sock):
        raise HostError(f"{sock}: path too long for a unix socket; set LLMFLEET_LAB_STATE to a shorter directory")
    cdir = layout.control_dir
    for sub in ("bin", "log"):
        (cdir / sub).mkdir(parents=True, exist_ok=True)
    data_root = control_cache_dir()
    data_root.mkdir(parents=True, exist_ok=True)
    hosts.write_file(cdir / "bin" / "labrunc", (hosts.FILES / "labrunc").read_text(), 0o755)
    daemon = configs.daemon_json(str(cdir / "docker-key.json"), registry.ADDRESS)
    hosts.write_file(cdir / "daemon.json", daemon, 0o644)
    (cdir / "opt").mkdir(exist_ok=True)
    if sock.exists():
        sock.unlink()  # left by an engine that died without cleaning up
    machine = Machine.probe(data_root)

    init = hosts.spawn_init(cdir / "log" / "init.log", None)
    with state.update() as data:
        data["control"] = {"init": init}
    mnt = hosts.wait_init(init)
    with state.update() as data:
        data["control"]["mntns"] = mnt
    hosts.apply_plan(init["pid"], hostfs.control_plan(str(cdir / "opt")), net=False)
    argv = configs.dockerd_argv(
        data_root=str(data_root),
        config_file=str(cdir / "daemon.json"),
        runtime=str(cdir / "bin" / "labrunc"),
        cgroup_parent=f"/{topo.CGROUP_ROOT}/control",
        host_socket=str(sock),
        storage_driver=machine.storage_driver,
    )
    log = cdir / "log" / "dockerd.log"
    proc = procs.spawn(hosts.enter(init["pid"], argv, net=False), log)
    with state.update() as data:
        data["control"]["dockerd"] = proc
    hosts.wait_for(lambda: hosts.docker_ping(str(sock)), "control dockerd", 60, proc, log)
    with state.update() as data:
        data["control"]["containerd"] = hosts.containerd_of(init["pid"])


def stop(state: State) -> None:
    c = state.data["control"]
    mnts = procs.live_namespaces([c.get(k) for k in ("init", "dockerd", "containerd")], "mnt")
    registry.stop(state)
    procs.stop([c.get("dockerd")], timeout=20)
    procs.stop([c.get("containerd"), c.get("init")], timeout=10)
    procs.stop(procs.in_namespaces(mnts=mnts), timeout=5)
    hosts.remove_cgroups(f"{topo.CGROUP_ROOT}/control")
    with state.update() as data:
        data["control"] = {}


def purge_cache() -> None:
    """Remove the control engine's data root (its images); only when the engine is stopped."""
    path = control_cache_dir()
    for tree in (path, registry.storage_dir()):
        if tree.exists():
            hosts.remove_tree(tree)
    parent = path.parent
    if parent.exists() and not os.listdir(parent):
        parent.rmdir()
