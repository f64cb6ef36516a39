"""One lab host: its files, namespaces and daemons (sshd, dockerd), up and down.

A host is a network namespace (``ip netns``) plus a private mount and UTS
namespace held by a long-lived init process (``sleep infinity`` under
``unshare``). sshd and dockerd are started inside with ``nsenter --target INIT``;
every PID is recorded in the lab state before anything else happens, so lab.down
can undo a crash at any point.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import configs, hostfs, netns, procs, registry, smi
from . import topology as topo
from .layout import DEFAULT_PATH, HostFiles, Layout
from .state import State
from .topology import HostNet

FILES = Path(__file__).resolve().parent / "files"
NSAPPLY = Path(__file__).resolve().parent / "nsapply.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # the host's view may lack the toolkit's own python
OVERLAYFS_TYPES = {"overlay", "aufs"}


PROC_KEYS = ("init", "sshd", "dockerd", "containerd")  # what a host's state records, by PID and start time


class HostError(RuntimeError):
    pass


@dataclass(frozen=True)
class Machine:
    """Facts about the real machine that decide how hosts are built (gathered once per lab.up)."""

    proc_modules: str | None  # None when the kernel has no module support
    has_numa_balancing: bool
    storage_driver: str

    @classmethod
    def probe(cls, data_root: Path) -> "Machine":
        try:
            modules: str | None = Path("/proc/modules").read_text()
        except FileNotFoundError:
            modules = None
        mountinfo = Path("/proc/self/mountinfo").read_text()
        fstype = fs_type_of(str(data_root), mountinfo)
        return cls(
            proc_modules=modules,
            has_numa_balancing=Path("/proc/sys/kernel/numa_balancing").exists(),
            storage_driver="vfs" if fstype in OVERLAYFS_TYPES else "overlay2",
        )


def fs_type_of(path: str, mountinfo: str) -> str:
    """The filesystem type of the mount that holds ``path`` (longest mount-point prefix wins)."""
    best, fstype = "", ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4]
        after = line.split(" - ", 1)[1].split()
        inside = path == point or path.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and len(point) >= len(best):
            best, fstype = point, after[0]
    return fstype


# -- files ------------------------------------------------------------------------------------

def write_files(layout: Layout, h: HostNet, client_pubkey: str, machine: Machine) -> HostFiles:
    """Everything the host needs on disk before its namespaces exist. Idempotent."""
    hf = HostFiles(layout.host_dir(h.name))
    ssh_dir = hf.path(HostFiles.HOME, ".ssh")
    ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(hf.path(HostFiles.HOME), 0o700)
    os.chmod(ssh_dir, 0o700)
    write_file(ssh_dir / "authorized_keys", client_pubkey.strip() + "\n", 0o600)
    hf.hf_home.mkdir(parents=True, exist_ok=True)
    hf.path(HostFiles.TMP).mkdir(exist_ok=True)
    os.chmod(hf.path(HostFiles.TMP), 0o1777)

    rocm_bin = hf.path(HostFiles.OPT, "rocm", "bin")
    rocm_bin.mkdir(parents=True, exist_ok=True)
    for tool in ("amd-smi", "rocm-smi"):
        write_file(rocm_bin / tool, (FILES / tool).read_text(), 0o755)
    data_dir = hf.path(HostFiles.OPT, "rocm", "share", "llmfleet-lab")
    data_dir.mkdir(parents=True, exist_ok=True)
    spec = smi.load_specs()["mi300x"]
    write_file(data_dir / "gpus.json", json.dumps(smi.render(spec, h.name), indent=1) + "\n", 0o644)
    if not (data_dir / "settings.json").exists():
        write_file(data_dir / "settings.json", json.dumps(smi.settings()) + "\n", 0o644)
    write_file(data_dir / "labgpu.py", (FILES / "labgpu.py").read_text(), 0o644)
    live = data_dir / smi.LIVE_DIR  # the simulated servers' GPU state (labrunc mounts it into containers)
    live.mkdir(exist_ok=True)
    os.chmod(live, 0o1777)

    for rel, text in hostfs.sysmodule_files().items():
        target = hf.path(HostFiles.SYSMODULE, *rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, text, 0o444)
    proc = hf.path(HostFiles.PROC)
    proc.mkdir(parents=True, exist_ok=True)
    write_file(proc / "modules", hostfs.proc_modules(machine.proc_modules), 0o444)
    write_file(proc / "numa_balancing", "0\n", 0o644)

    hf.path(HostFiles.SSH).mkdir(parents=True, exist_ok=True)
    if not hf.host_key.exists():
        run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{h.name}", "-f", str(hf.host_key)])
    write_file(hf.sshd_config, configs.sshd_config(h.name, h.address), 0o644)
    hf.path(HostFiles.DOCKER).mkdir(parents=True, exist_ok=True)
    daemon = configs.daemon_json(HostFiles.inside("docker-key.json"), registry.ADDRESS, mirror=True)
    write_file(hf.path("daemon.json"), daemon, 0o644)
    hf.path(HostFiles.BIN).mkdir(parents=True, exist_ok=True)
    write_file(hf.path(HostFiles.BIN, "labrunc"), (FILES / "labrunc").read_text(), 0o755)
    hf.path(HostFiles.LOG).mkdir(parents=True, exist_ok=True)
    return hf


def host_pubkey(layout: Layout, name: str) -> str:
    return HostFiles(layout.host_dir(name)).host_key.with_suffix(".pub").read_text().strip()


def write_file(path: Path, text: str, mode: int) -> None:
    """Write only when the content differs (a no-op lab.up leaves mtimes alone)."""
    try:
        if path.read_text() == text:
            if (path.stat().st_mode & 0o7777) != mode:
                os.chmod(path, mode)
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def run_checked(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess:
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60, **kw)
    if out.returncode != 0:
        raise HostError(f"{argv[0]} failed: {out.stderr.strip() or out.stdout.strip()}")
    return out


# -- namespaces and daemons -------------------------------------------------------------------

def enter(init_pid: int, argv: Sequence[str], *, net: bool = True) -> list[str]:
    """argv run inside a host (or the control engine) through its init process's namespaces."""
    flags = ["--mount", "--uts", "--net"] if net else ["--mount"]
    return ["nsenter", f"--target={init_pid}", *flags, "--", *argv]


def spawn_init(log: Path, netns_name: str | None) -> procs.Proc:
    """The holder of a private mount (+UTS) namespace: ``sleep infinity`` under ``unshare``."""
    argv = ["unshare", "--mount", "--propagation", "private"]
    if netns_name:
        argv = ["nsenter", f"--net=/run/netns/{netns_name}", "--", *argv, "--uts"]
    return procs.spawn([*argv, "--", "sleep", "infinity"], log)


def wait_init(init: procs.Proc, timeout: float = 10.0) -> int:
    """Wait until the init runs sleep in its own mount namespace; return that namespace's inode."""
    own = procs.ns_inode("self", "mnt")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.alive(init):
            raise HostError(f"namespace holder {init['pid']} exited at start")
        exe, mnt = procs.exe(init["pid"]), procs.ns_inode(init["pid"], "mnt")
        if exe and os.path.basename(exe) == "sleep" and mnt and mnt != own:
            return mnt
        time.sleep(0.01)
    raise HostError(f"namespace holder {init['pid']} did not start within {timeout:.0f}s")


def apply_plan(init_pid: int, plan: list[dict], *, net: bool = True) -> None:
    run_checked(enter(init_pid, [SYSTEM_PYTHON, "-I", str(NSAPPLY)], net=net), input=json.dumps(plan))


def docker_ping(socket_path: str, timeout: float = 2.0) -> bool:
    """GET /_ping on a Docker engine's unix socket."""
    try:
        conn = _UnixHTTPConnection(socket_path, timeout)
        conn.request("GET", "/_ping")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def docker_api(socket_path: str, method: str, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def kill_containers(socket_path: str) -> None:
    """SIGKILL every running container of an engine (through its API; best effort)."""
    try:
        status, body = docker_api(socket_path, "GET", "/containers/json")
        if status != 200:
            return
        for c in json.loads(body):
            docker_api(socket_path, "POST", f"/containers/{c['Id']}/kill")
    except (OSError, ValueError):
        pass


def ssh_banner(address: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def host_docker_socket(init_pid: int) -> str:
    """The host engine's socket, reached from the control side through the init's root."""
    return f"/proc/{init_pid}/root/run/docker.sock"


def wait_for(check, what: str, timeout: float, alive_proc: procs.Proc | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if alive_proc is not None and not procs.alive(alive_proc):
            raise HostError(f"{what} exited at start{_tail(log)}")
        time.sleep(0.05)
    raise HostError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")


def _tail(log: Path | None, lines: int = 8) -> str:
    if not log or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f" (last lines of {log}):\n  " + "\n  ".join(text)


def start_sshd(state: State, h: HostNet, hf: HostFiles) -> None:
    init = state.hosts[h.name]["init"]
    config = HostFiles.inside(HostFiles.SSH, "sshd_config")
    proc = procs.spawn(enter(init["pid"], configs.sshd_argv(config)), hf.log("sshd.log"))
    with state.update():
        state.hosts[h.name]["sshd"] = proc
    wait_for(lambda: ssh_banner(h.address), f"sshd of {h.name}", 15, proc, hf.log("sshd.log"))


def start_dockerd(state: State, h: HostNet, hf: HostFiles, machine: Machine) -> None:
    init = state.hosts[h.name]["init"]
    argv = configs.dockerd_argv(
        data_root=HostFiles.inside(HostFiles.DOCKER),
        config_file=HostFiles.inside("daemon.json"),
        runtime=HostFiles.inside(HostFiles.BIN, "labrunc"),
        cgroup_parent=f"/{topo.CGROUP_ROOT}/{h.name}",
        storage_driver=machine.storage_driver,
    )
    proc = procs.spawn(enter(init["pid"], argv), hf.log("dockerd.log"))
    with state.update():
        state.hosts[h.name]["dockerd"] = proc
    sock = host_docker_socket(init["pid"])
    wait_for(lambda: docker_ping(sock), f"dockerd of {h.name}", 60, proc, hf.log("dockerd.log"))
    containerd = containerd_of(init["pid"])
    with state.update():
        state.hosts[h.name]["containerd"] = containerd


def containerd_of(init_pid: int) -> procs.Proc | None:
    """dockerd's own containerd (it writes its PID in the exec root)."""
    pid_file = Path(f"/proc/{init_pid}/root/run/docker/containerd/containerd.pid")
    try:
        return procs.identify(int(pid_file.read_text().strip()))
    except (FileNotFoundError, ValueError, procs.ProcError):
        return None


def healthy(rec: dict[str, Any]) -> list[str]:
    """What is wrong with a recorded host (empty when nothing is); faults count as intended."""
    problems = []
    if not procs.alive(rec.get("init")):
        return ["namespace holder gone"]
    if not os.path.exists(f"/run/netns/{rec['netns']}"):
        problems.append("network namespace gone")
    faults = rec.get("faults", {})
    link = netns.link_info(topo.host_net(rec["index"]).veth_root)
    if not link or link.get("master") != topo.BRIDGE:
        problems.append("link gone")  # deleted, or off the bridge: the host is rebuilt
    elif not faults.get("cut") and "UP" not in link.get("flags", []):
        problems.append("link down")
    if not faults.get("stop_ssh") and not procs.alive(rec.get("sshd")):
        problems.append("sshd not running")
    if not faults.get("stop_docker") and not procs.alive(rec.get("dockerd")):
        problems.append("dockerd not running")
    return problems


def destroy(layout: Layout, state: State, name: str, *, keep_files: bool = False) -> None:
    """Stop everything the host runs, remove its network and (unless keep_files) its directory."""
    rec = state.hosts.get(name, {})
    h = topo.host_net(topo.host_index(name))
    recorded = [rec.get(k) for k in PROC_KEYS]
    mnts = procs.live_namespaces(recorded, "mnt")  # before they stop: then the inodes are certain
    net = procs.ns_inode_of_netns(h.netns)  # the netns we named is alive while /run/netns/NAME exists
    # Containers are killed first (lab.down need not wait for their stop timeouts), then dockerd.
    if procs.alive(rec.get("dockerd")) and procs.alive(rec.get("init")):
        kill_containers(host_docker_socket(rec["init"]["pid"]))
    procs.stop([rec.get("dockerd")], timeout=20)
    procs.stop([rec.get("containerd"), rec.get("sshd"), rec.get("init")], timeout=10)
    procs.stop(procs.in_namespaces(mnts=mnts, nets={net} if net else set()), timeout=5)
    for argv in netns.host_teardown_cmds(h):
        netns.run(argv, check=False)
    remove_cgroups(f"{topo.CGROUP_ROOT}/{name}")
    if not keep_files:
        remove_tree(layout.host_dir(name))
    with state.update():
        state.hosts.pop(name, None)


def remove_cgroups(rel: str) -> None:
    """rmdir the (empty) cgroup directories dockerd made under --cgroup-parent, in every hierarchy."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if " - cgroup" not in line:
            continue
        base = Path(line.split()[4]) / rel
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [base]:
            if path.is_dir():
                try:
                    path.rmdir()
                except OSError:
                    pass
        parent = base.parent
        if parent.name == topo.CGROUP_ROOT:
            try:
                parent.rmdir()
            except OSError:
                pass


def remove_tree(path: Path) -> None:
    """rm -r, refusing when a mount in our namespace lies under it (it would delete real files)."""
    if not path.exists():
        return
    real = str(path.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == real or point.startswith(real + "/"):
            raise HostError(f"refusing to remove {path}: {point} is mounted under it")
    shutil.rmtree(path)


def in_host_argv(init_pid: int, argv: Sequence[str]) -> list[str]:
    return enter(init_pid, ["env", "-i", f"PATH={DEFAULT_PATH}:/opt/rocm/bin", "HOME=/root",
                            "LANG=C.UTF-8", *argv])


