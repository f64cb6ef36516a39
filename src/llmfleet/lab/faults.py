"""Fault controls for one lab host: cut its link, slow it, lose packets, stop its sshd or dockerd,
slow its simulated GPU, hold its simulated GPU memory; and for the control node: cap its link.

Each fault is recorded in the host's state (``faults``) so lab.status shows it,
lab.up does not "repair" a daemon a fault stopped on purpose, and ``restore``
knows what to undo. GPU faults live in the host's live/faults.json, which the
simulated server re-reads while it runs and the fake amd-smi/rocm-smi read per call.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import hosts, netns, procs, smi
from . import topology as topo
from .layout import SMI_DATA, HostFiles, Layout
from .state import State

ACTIONS = ("cut", "restore", "slow", "loss", "stop-docker", "stop-ssh", "slow-gpu", "hold-gpu-memory")
NEEDS_VALUE = {"slow", "loss", "slow-gpu"}
CONTROL = "control"  # the control node: only its link can be slowed (and restored)
CONTROL_ACTIONS = ("slow", "restore")


def check(action: str, value: float | None) -> None:
    """Refuse an unknown action or a missing/extra value (ValueError: the CLI's exit 2)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown fault {action!r}; one of: {', '.join(ACTIONS)}")
    if action in NEEDS_VALUE and value is None:
        raise ValueError(f"--{action} needs a value")
    if action not in NEEDS_VALUE and value is not None:
        raise ValueError(f"--{action} takes no value")
    amount = 0.0 if value is None else float(value)
    if action == "slow":
        netns.tbf_args(amount)  # validates
    if action == "loss":
        netns.loss_ruleset(amount)  # validates
    if action == "slow-gpu":
        smi.gpu_faults({}, slow_gpu_pct=amount)  # validates


def check_control(action: str) -> None:
    if action not in CONTROL_ACTIONS:
        raise ValueError(f"--host control takes --slow MBIT or --restore, not --{action}")


def apply_control(state: State, action: str, value: float | None) -> dict:
    """Cap (or uncap) the control node's own link into the lab: a tbf on the bridge device, the
    one egress every packet from the control node to any host leaves by (host-to-host traffic is
    switched between bridge ports and never queues there), as one uplink on a real cluster."""
    check(action, value)
    check_control(action)
    faults: dict[str, Any] = {}
    if action == "slow" and value is not None:
        netns.run(netns.control_slow_cmd(value))
        faults["slow_mbit"] = float(value)
    else:
        netns.run(netns.control_unslow_cmd(), check=False)  # "no such qdisc" when it was not slowed
    with state.update():
        state.data["control"]["faults"] = faults
    return faults


def live_dir(hf: HostFiles) -> Path:
    """The host's simulated-GPU state directory (files/labgpu.py, mounted into its containers)."""
    return hf.path(*SMI_DATA.strip("/").split("/"), smi.LIVE_DIR)


def set_gpu_faults(hf: HostFiles, gpu: dict[str, Any]) -> None:
    path = live_dir(hf) / smi.FAULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_file(path, json.dumps(gpu) + "\n", 0o644)


def clear_gpu_faults(hf: HostFiles) -> None:
    """No GPU faults, and no memory held by servers that are gone (what --hold-gpu-memory kept)."""
    live = live_dir(hf)
    (live / smi.FAULTS_FILE).unlink(missing_ok=True)
    for path in live.glob("*.json"):
        try:
            gone = json.loads(path.read_text()).get("stopped_at") or not _fresh(path)
        except (OSError, ValueError):
            gone = True
        if gone:
            path.unlink(missing_ok=True)


def _fresh(path: Path, seconds: float = 3.0) -> bool:
    return time.time() - path.stat().st_mtime < seconds


def apply(layout: Layout, state: State, name: str, action: str, value: float | None,
          machine: hosts.Machine) -> dict:
    """Carry out one fault on a recorded host; return the host's faults afterwards."""
    check(action, value)
    amount = 0.0 if value is None else float(value)
    rec = state.hosts[name]
    h = topo.host_net(rec["index"])
    hf = HostFiles(layout.host_dir(name))
    faults: dict[str, Any] = dict(rec.get("faults", {}))
    if action == "cut":
        netns.run(netns.cut_cmd(h, True))
        faults["cut"] = True
    elif action == "slow":
        for argv in netns.slow_cmds(h, amount):
            netns.run(argv)
        faults["slow_mbit"] = amount
    elif action == "loss":
        netns.run(netns.in_netns(h.netns, ["nft", "-f", "-"]), input=netns.loss_ruleset(amount))
        faults["loss_pct"] = amount
    elif action == "stop-docker":
        faults["stop_docker"] = True
        _save(state, name, faults)
        procs.stop([rec.get("dockerd")], timeout=20)
        procs.stop([rec.get("containerd")], timeout=10)
    elif action == "stop-ssh":
        faults["stop_ssh"] = True
        _save(state, name, faults)
        procs.stop([rec.get("sshd")], timeout=10)
    elif action in ("slow-gpu", "hold-gpu-memory"):
        gpu = {k: v for k, v in (("slow_gpu_pct", faults.get("slow_gpu_pct")),
                                 ("hold_gpu_memory", faults.get("hold_gpu_memory"))) if v}
        if action == "slow-gpu":
            gpu = smi.gpu_faults(gpu, slow_gpu_pct=amount)
        else:
            gpu = smi.gpu_faults(gpu, hold_memory=True)
        set_gpu_faults(hf, gpu)
        faults.update(gpu)
    elif action == "restore":
        restore(state, h, hf, machine)
        faults = {}
    _save(state, name, faults)
    return faults


def restore(state: State, h: topo.HostNet, hf: HostFiles, machine: hosts.Machine) -> None:
    """Undo every fault, whether recorded or not: link up, no shaping, no loss, daemons running,
    GPUs at full speed, no memory held by servers that are gone."""
    clear_gpu_faults(hf)
    netns.run(netns.cut_cmd(h, False))
    for argv in netns.unslow_cmds(h):
        netns.run(argv, check=False)  # "no such qdisc" when it was not slowed
    if netns.nft_table_exists(h.netns, topo.FAULT_TABLE):
        netns.run(netns.in_netns(h.netns, ["nft", "-f", "-"]), input=netns.unloss_ruleset())
    rec = state.hosts[h.name]
    if not procs.alive(rec.get("sshd")):
        hosts.start_sshd(state, h, hf)
    if not procs.alive(rec.get("dockerd")):
        procs.stop([rec.get("containerd")], timeout=10)
        hosts.start_dockerd(state, h, hf, machine)


def _save(state: State, name: str, faults: dict) -> None:
    with state.update():
        state.hosts[name]["faults"] = faults
