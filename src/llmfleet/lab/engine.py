"""lab.up / lab.down / lab.status / lab.fault: the lab as a whole.

lab.up is idempotent: it checks what the state file records, repairs or creates
only what is missing, and removes hosts beyond the requested count. lab.down
undoes everything the state file records, whatever state a crash left it in.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .. import paths
from . import configs, control, faults, hostfs, hosts, netns, procs, registry, smi
from . import topology as topo
from .layout import REMOTE_DIR, HostFiles, Layout
from .state import State, locked


def model_ids() -> list[str]:
    """Every repo a lab server may load: the catalog's models and their EAGLE3 drafts."""
    from ..catalog import load

    ids: list[str] = []
    for model in load().models.values():
        ids += [model.hf_id] + ([model.eagle3_draft] if model.eagle3_draft else [])
    return ids

NETNS_DIR = "/run/netns"
# What a lab made that every lab instance uses (/run/netns, the remote_dir mount point): recorded
# here, not in one instance's state, and removed by the last instance to go down.
SHARED_MADE = Path("/run/llmfleet-lab-made.json")
INVENTORY_HEADER = "# Written by `invoke lab.up`"

# (program, Debian package): what the lab runs on the control machine.
REQUIRED = [
    ("ip", "iproute2"), ("tc", "iproute2"), ("nsenter", "util-linux"), ("unshare", "util-linux"),
    ("nft", "nftables"), ("/usr/sbin/sshd", "openssh-server"), ("ssh-keygen", "openssh-client"),
    ("/usr/sbin/dockerd", "docker.io"), ("containerd", "containerd"), ("/usr/sbin/runc", "runc"),
    ("/usr/bin/python3", "python3"), ("sleep", "coreutils"), (registry.BINARY, "docker-registry"),
]

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """The lab could not be brought up, changed or taken down; the message says why."""


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    netns: str


@dataclass
class LabInfo:
    hosts: list[LabHost]
    inventory_path: Path
    state_dir: Path
    ssh_key: Path
    known_hosts: Path
    control_docker_host: str
    images: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)


def _layout() -> Layout:
    return Layout(paths.lab_state_dir().resolve())


def _inventory_path() -> Path:
    return paths.default_inventory() / "lab.yml"


def _quiet(_: str) -> None:
    pass


def missing_tools() -> list[str]:
    """Programs the lab needs that this machine lacks, with the Debian package to install."""
    out = []
    for prog, pkg in REQUIRED:
        found = os.access(prog, os.X_OK) if prog.startswith("/") else shutil.which(prog)
        if not found:
            out.append(f"{prog} (apt package {pkg})")
    return out


def unavailable_reason() -> str | None:
    """Why the lab cannot run here (not root, no namespaces, missing programs), or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, mounts, Docker engines)"
    if not os.path.exists("/proc/self/ns/net") or not os.path.exists("/proc/self/ns/mnt"):
        return "this kernel has no network/mount namespaces"
    missing = missing_tools()
    if missing:
        return "missing programs: " + ", ".join(missing)
    probe = subprocess.run(["unshare", "--mount", "--net", "--uts", "true"], capture_output=True, text=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        return f"cannot create namespaces here: {probe.stderr.strip()}"
    return None


def _require() -> None:
    reason = unavailable_reason()
    if reason:
        raise LabError(reason)


# -- up ---------------------------------------------------------------------------------------

def lab_up(n: int = 4, images: bool = True, *, progress: Progress | None = None) -> LabInfo:
    """Bring the lab to exactly n hosts (plus the control engine) and write inventory/lab.yml."""
    say = progress or _quiet
    topo.check_count(n)
    _require()
    layout = _layout()
    with locked(layout.lock_file):
        state = State.load(layout.state_file)
        overlaps = netns.foreign_overlaps()
        if overlaps:
            raise LabError(f"the lab subnet {topo.SUBNET} is already routed here: {'; '.join(overlaps)}")
        _ensure_client_key(layout)
        _ensure_network(state)
        _ensure_remote_dir(state)
        wanted = {h.name: h for h in topo.hosts(n)}

        extra = sorted(set(state.hosts) - set(wanted), key=topo.host_index)
        if extra:
            say(f"removing {', '.join(extra)}")
            _parallel(lambda name: hosts.destroy(layout, state, name), extra)

        machine = hosts.Machine.probe(layout.state_dir)
        pubkey = layout.ssh_key.with_suffix(".pub").read_text()
        repair: list[str] = []
        create: list[topo.HostNet] = []
        for name, h in wanted.items():
            rec = state.hosts.get(name)
            if rec is None:
                create.append(h)
                continue
            problems = hosts.healthy(rec)
            if not problems:
                continue
            say(f"{name}: {', '.join(problems)}")
            if {"namespace holder gone", "network namespace gone", "link gone"} & set(problems):
                hosts.destroy(layout, state, name, keep_files=True)
                create.append(h)
            else:
                repair.append(name)

        for h in create:
            hosts.write_files(layout, h, pubkey, machine)
        for h in create:  # network first, one at a time (ip netns add is not safe to race)
            _create_net(state, h)
        jobs: list[Callable[[], None]] = [lambda: control.start(layout, state)]
        jobs += [functools.partial(_create_procs, layout, state, h, machine) for h in create]
        jobs += [functools.partial(_repair, layout, state, name, machine) for name in repair]
        if create:
            say(f"starting {', '.join(h.name for h in create)}")
        _parallel(lambda job: job(), jobs)

        _write_known_hosts(layout, wanted)
        _ensure_datasets(layout, state, say)
        _ensure_snapshots(layout, state, wanted, say)
        if images:
            _ensure_images(layout, state, say)
        _write_inventory(layout, state, wanted)
        return _info(layout, state, images)


def _create_net(state: State, h: topo.HostNet) -> None:
    with state.update():
        state.hosts[h.name] = {"index": h.index, "address": h.address, "netns": h.netns, "faults": {}}
    for argv in netns.host_cmds(h):
        netns.run(argv)
    with state.update():
        state.hosts[h.name]["netns_ino"] = os.stat(f"{NETNS_DIR}/{h.netns}").st_ino


def _create_procs(layout: Layout, state: State, h: topo.HostNet, machine: hosts.Machine) -> None:
    hf = HostFiles(layout.host_dir(h.name))
    init = hosts.spawn_init(hf.log("init.log"), h.netns)
    with state.update():
        state.hosts[h.name]["init"] = init
    mnt = hosts.wait_init(init)
    with state.update():
        state.hosts[h.name]["mntns"] = mnt
    plan = hostfs.mount_plan(
        name=h.name, host_dir=str(hf.real), has_proc_modules=machine.proc_modules is not None,
        has_numa_balancing=machine.has_numa_balancing,
    )
    hosts.apply_plan(init["pid"], plan)
    hosts.start_sshd(state, h, hf)
    hosts.start_dockerd(state, h, hf, machine)


def _repair(layout: Layout, state: State, name: str, machine: hosts.Machine) -> None:
    rec = state.hosts[name]
    h = topo.host_net(rec["index"])
    hf = HostFiles(layout.host_dir(name))
    if not rec.get("faults", {}).get("cut") and not netns.link_up(h.veth_root):
        netns.run(netns.cut_cmd(h, False))
    if not rec.get("faults", {}).get("stop_ssh") and not procs.alive(rec.get("sshd")):
        hosts.start_sshd(state, h, hf)
    if not rec.get("faults", {}).get("stop_docker") and not procs.alive(rec.get("dockerd")):
        procs.stop([rec.get("containerd")], timeout=10)
        hosts.start_dockerd(state, h, hf, machine)


def _parallel(fn: Callable[[Any], None], items: Sequence[Any]) -> None:
    """Run fn over items on threads; raise the first failure (as LabError) after all finish."""
    if not items:
        return
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        for fut in [pool.submit(fn, item) for item in items]:
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(str(exc))
    if errors:
        raise LabError("; ".join(errors) + "\n(the lab state is recorded: `invoke lab.down` removes what was made)")


def _ensure_client_key(layout: Layout) -> None:
    if layout.ssh_key.exists() and layout.ssh_key.with_suffix(".pub").exists():
        return
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    for p in (layout.ssh_key, layout.ssh_key.with_suffix(".pub")):
        if p.exists():
            p.unlink()
    hosts.run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llmfleet-lab", "-f", str(layout.ssh_key)])


def _ensure_network(state: State) -> None:
    """The bridge, the guard table and /run/netns, each recorded as made by us."""
    if not os.path.isdir(NETNS_DIR):
        _mark_shared("netns_dir")
    if not netns.link_exists(topo.BRIDGE):
        with state.update():
            state.made["bridge"] = True
        for argv in netns.bridge_cmds():
            netns.run(argv)
    else:
        with state.update():
            state.made["bridge"] = True  # only the lab makes an interface called labbr0
        if not netns.link_up(topo.BRIDGE):
            netns.run(["ip", "link", "set", topo.BRIDGE, "up"])
    if not netns.nft_table_exists(None, topo.GUARD_TABLE):
        with state.update():
            state.made["guard"] = True
        netns.run(["nft", "-f", "-"], input=netns.guard_ruleset())


def _ensure_remote_dir(state: State) -> None:
    """The mount point for each host's /var/lib/llmfleet (an empty directory on the real machine)."""
    if not os.path.isdir(REMOTE_DIR):
        _mark_shared("remote_dir")
        os.makedirs(REMOTE_DIR, mode=0o755, exist_ok=True)


def shared_made() -> dict[str, bool]:
    """What the labs made that they share (``netns_dir``, ``remote_dir``); {} when nothing."""
    try:
        data = json.loads(SHARED_MADE.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, bool)} if isinstance(data, dict) else {}


def _mark_shared(what: str) -> None:
    with _shared_lock():
        made = shared_made()
        made[what] = True
        hosts.write_file(SHARED_MADE, json.dumps(made) + "\n", 0o644)


def _write_known_hosts(layout: Layout, wanted: dict[str, topo.HostNet]) -> None:
    entries = [(h.name, h.address, hosts.host_pubkey(layout, h.name)) for h in wanted.values()]
    hosts.write_file(layout.known_hosts, configs.known_hosts(entries), 0o644)


def _ensure_datasets(layout: Layout, state: State, say: Progress) -> None:
    recorded = state.data.get("datasets") or {}
    if recorded and all(Path(p).exists() for p in recorded.values()):
        return
    try:
        from .datasets import write_datasets
    except ImportError:
        say("llmfleet.lab.datasets is not available: no datasets staged")
        return
    layout.datasets_dir.mkdir(parents=True, exist_ok=True)
    written = write_datasets(layout.datasets_dir)
    with state.update() as data:
        data["datasets"] = {k: str(Path(v).resolve()) for k, v in written.items()}


def _ensure_snapshots(layout: Layout, state: State, wanted: dict[str, topo.HostNet], say: Progress) -> None:
    ids = model_ids()
    todo = [n for n in wanted if state.hosts[n].get("snapshots") != ids]
    if not todo:
        return
    try:
        from .model_files import write_snapshot
    except ImportError:
        say("llmfleet.lab.model_files is not available: no model snapshots staged")
        return
    for name in todo:
        hf_home = HostFiles(layout.host_dir(name)).hf_home
        for model_id in ids:
            write_snapshot(hf_home, model_id)
        with state.update():
            state.hosts[name]["snapshots"] = ids


def _ensure_images(layout: Layout, state: State, say: Progress) -> None:
    try:
        from .image import ensure_images
    except ImportError as exc:
        raise LabError(f"cannot build the lab images ({exc}); run `invoke lab.up --no-images`") from None
    say("images: checking the control engine's cache")
    built = ensure_images(layout.control_docker_host)
    if state.data.get("registry_images") != built:
        say(f"images: publishing to the lab registry at {registry.ADDRESS} (for --image-source pull)")
    registry.start(layout, state)
    if state.data.get("registry_images") != built or not registry.has_tags(list(built)):
        registry.publish(layout.control_docker_host, list(built))
    with state.update() as data:
        data["images"] = dict(built)
        data["registry_images"] = dict(built)


def _write_inventory(layout: Layout, state: State, wanted: dict[str, topo.HostNet]) -> None:
    text = configs.inventory_yaml(
        [(h.name, h.address) for h in wanted.values()],
        ssh_key=str(layout.ssh_key),
        known_hosts_file=str(layout.known_hosts),
        control_docker_host=layout.control_docker_host,
        datasets=state.data.get("datasets") or {},
    )
    path = _inventory_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_file(path, text, 0o644)


def _info(layout: Layout, state: State, images: bool) -> LabInfo:
    recs = sorted(state.hosts.values(), key=lambda r: r["index"])
    return LabInfo(
        hosts=[LabHost(topo.host_name(r["index"]), r["address"], r["netns"]) for r in recs],
        inventory_path=_inventory_path(),
        state_dir=layout.state_dir,
        ssh_key=layout.ssh_key,
        known_hosts=layout.known_hosts,
        control_docker_host=layout.control_docker_host,
        images=dict(state.data.get("images") or {}) if images else {},
        datasets=dict(state.data.get("datasets") or {}),
    )


def lab_info() -> LabInfo:
    """The running lab as lab.up last left it (LabError when there is none)."""
    layout = _layout()
    state = State.load(layout.state_file)
    if not state.hosts:
        raise LabError("no lab is up (run `invoke lab.up`)")
    return _info(layout, state, True)


# -- down -------------------------------------------------------------------------------------

def lab_down(purge: bool = False, *, progress: Progress | None = None) -> None:
    """Remove every host, the control engine and everything else the lab made; idempotent."""
    say = progress or _quiet
    _require()
    layout = _layout()
    with locked(layout.lock_file):
        state = State.load(layout.state_file)
        names = sorted(state.hosts, key=topo.host_index)
        _close_shared_connections()
        jobs: list[Callable[[], None]] = [functools.partial(hosts.destroy, layout, state, name) for name in names]
        if state.data["control"]:
            jobs.append(lambda: control.stop(state))
        if jobs:
            say(f"stopping {', '.join(names + (['the control engine'] if state.data['control'] else []))}")
        _parallel(lambda job: job(), jobs)
        _remove_made(state)
        inv = _inventory_path()
        if inv.exists() and inv.read_text().startswith(INVENTORY_HEADER):
            inv.unlink()
        for child in layout.state_dir.iterdir() if layout.state_dir.exists() else []:
            if child == layout.lock_file:
                continue
            if child.is_dir() and not child.is_symlink():
                hosts.remove_tree(child)
            else:
                child.unlink()
    if purge:
        say("removing the control engine's image cache")
        control.purge_cache()


def _close_shared_connections() -> None:
    """`invoke exec` keeps ssh connections open for a while (ssh_control_persist): close those to the lab's hosts."""
    from .. import settings, sshcli
    from ..endpoint import host_endpoint
    from ..inventory import load_inventory

    where = sshcli.control_dir()
    inv = _inventory_path()
    if where is None or not inv.exists() or not any(Path(where).iterdir()):
        return
    for h in load_inventory(inv).select("all"):
        hs = settings.for_host(h, {}, {})
        sshcli.stop_shared(host_endpoint(h, hs.settings.known_hosts_file, hs.resolved))


def _remove_made(state: State) -> None:
    made = state.made
    if made.get("guard") and netns.nft_table_exists(None, topo.GUARD_TABLE):
        netns.run(["nft", "-f", "-"], input=netns.guard_ruleset(add=False))
    if made.get("bridge") and netns.link_exists(topo.BRIDGE):
        netns.run(["ip", "link", "del", topo.BRIDGE])
    with state.update():
        state.made.clear()
    _remove_shared()


def _remove_shared() -> None:
    """The last lab instance to go down removes what the labs share (another one's hosts still mount it)."""
    with _shared_lock():
        if os.path.isdir(NETNS_DIR) and any(n.startswith(topo.PREFIX) for n in os.listdir(NETNS_DIR)):
            return
        made = shared_made()
        if made.get("remote_dir") and os.path.isdir(REMOTE_DIR) and not _is_mountpoint(REMOTE_DIR):
            try:
                os.rmdir(REMOTE_DIR)  # only when empty: something else may have put files there
            except OSError:
                pass
        if made.get("netns_dir") and os.path.isdir(NETNS_DIR) and not os.listdir(NETNS_DIR):
            for _ in range(4):  # ip netns stacks a self bind mount on /run/netns
                if not _is_mountpoint(NETNS_DIR):
                    break
                netns.run(["umount", NETNS_DIR], check=False)
            if not _is_mountpoint(NETNS_DIR):
                os.rmdir(NETNS_DIR)
        SHARED_MADE.unlink(missing_ok=True)


@contextlib.contextmanager
def _shared_lock() -> Iterator[None]:
    """Between lab instances: a lock on /run itself, so no lock file is left behind."""
    fd = os.open(SHARED_MADE.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_mountpoint(path: str) -> bool:
    return any(line.split()[4] == path for line in Path("/proc/self/mountinfo").read_text().splitlines())


# -- status, faults, exec ---------------------------------------------------------------------

def lab_status() -> list[dict[str, Any]]:
    """One dict per recorded host: its address, daemons, faults, reachability and memory."""
    layout = _layout()
    state = State.load(layout.state_file)
    out = []
    for name in sorted(state.hosts, key=topo.host_index):
        rec = state.hosts[name]
        running = {k: procs.alive(rec.get(k)) for k in ("init", "sshd", "dockerd", "containerd")}
        out.append({
            "name": name,
            "address": rec["address"],
            "netns": rec["netns"],
            "processes": {k: (rec.get(k) or {}).get("pid") for k in running},
            "running": running,
            "ssh": hosts.ssh_banner(rec["address"], timeout=0.3) if running["sshd"] else False,
            "docker": bool(running["init"]) and hosts.docker_ping(hosts.host_docker_socket(rec["init"]["pid"]), 1.0),
            "faults": rec.get("faults", {}),
            "problems": hosts.healthy(rec),
            "rss_kib": {k: procs.rss_kib(rec[k]["pid"]) if running[k] else 0 for k in running},
        })
    return out


def control_status() -> dict[str, Any]:
    layout = _layout()
    c = State.load(layout.state_file).data["control"]
    running = {k: procs.alive(c.get(k)) for k in ("init", "dockerd", "containerd")}
    return {
        "docker_host": layout.control_docker_host,
        "running": running,
        "docker": hosts.docker_ping(str(layout.control_socket), 1.0) if running["dockerd"] else False,
        "faults": dict(c.get("faults") or {}),
        "rss_kib": {k: procs.rss_kib(c[k]["pid"]) if running[k] else 0 for k in running},
    }


def _host_record(state: State, host: str) -> dict[str, Any]:
    topo.host_index(host)  # ValueError for a name that cannot be a lab host
    if host not in state.hosts:
        known = ", ".join(sorted(state.hosts, key=topo.host_index)) or "none (run `invoke lab.up`)"
        raise ValueError(f"no lab host {host!r}; lab hosts: {known}")
    return state.hosts[host]


def lab_fault(host: str, action: str, value: float | None = None) -> dict[str, Any]:
    """Inject (or with action "restore", undo) a fault on one host; return its faults now."""
    faults.check(action, value)
    if host == faults.CONTROL:
        faults.check_control(action)
    _require()
    layout = _layout()
    with locked(layout.lock_file):
        state = State.load(layout.state_file)
        if host == faults.CONTROL:
            return faults.apply_control(state, action, value)
        _host_record(state, host)
        machine = hosts.Machine.probe(layout.state_dir)
        return faults.apply(layout, state, host, action, value, machine)


def lab_configure(host: str, amd_smi_json: str) -> None:
    """Per-host lab settings; today the JSON shape of the host's `amd-smi static --json`."""
    body = smi.settings(amd_smi_json)  # ValueError for an unknown shape
    layout = _layout()
    with locked(layout.lock_file):
        state = State.load(layout.state_file)
        _host_record(state, host)
        target = HostFiles(layout.host_dir(host)).path("opt", "rocm", "share", "llmfleet-lab", "settings.json")
        hosts.write_file(target, json.dumps(body) + "\n", 0o644)


def host_exec(name: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess:
    """Run argv inside lab host ``name`` (its mount, UTS and network namespaces), as root there.

    Keyword arguments go to subprocess.run (timeout, input, check, ...); output is
    captured as text unless the caller says otherwise (capture_output/text/stdout).
    The environment is the host's own (PATH with /opt/rocm/bin, HOME=/root), not the caller's.
    """
    if not any(k in kw for k in ("capture_output", "stdout", "stderr")):
        kw["capture_output"] = True
    if not any(k in kw for k in ("text", "universal_newlines", "encoding")):
        kw["text"] = True
    state = State.load(_layout().state_file)
    rec = _host_record(state, name)
    if not procs.alive(rec.get("init")):
        raise LabError(f"lab host {name} is not running (run `invoke lab.up`)")
    return subprocess.run(hosts.in_host_argv(rec["init"]["pid"], list(argv)), **kw)


__all__ = [
    "LabError", "LabHost", "LabInfo", "model_ids", "control_status", "host_exec", "lab_configure", "lab_down", "lab_fault", "lab_info", "lab_status", "lab_up",
    "missing_tools", "unavailable_reason",
]
