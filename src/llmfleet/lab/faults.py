"""Fault controls for one lab host: cut its link, slow it, lose packets, stop its sshd or dockerd.

Each fault is recorded in the host's state (``faults``) so lab.status shows it,
lab.up does not "repair" a daemon a fault stopped on purpose, and ``restore``
knows what to undo.
"""

from __future__ import annotations

from typing import Any

from . import hosts, netns, procs
from . import topology as topo
from .layout import HostFiles, Layout
from .state import State

ACTIONS = ("cut", "restore", "slow", "loss", "stop-docker", "stop-ssh")
NEEDS_VALUE = {"slow", "loss"}


def check(action: str, value: float | None) -> None:
    """Refuse an unknown action or a missing/extra value (ValueError: the CLI's exit 2)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown fault {action!r}; one of: {', '.join(ACTIONS)}")
    if action in NEEDS_VALUE and value is None:
        raise ValueError(f"--{action} needs a value")
    if action not in NEEDS_VALUE and value is not None:
        raise ValueError(f"--{action} takes no value")
    if action == "slow":
        netns.tbf_args(float(value))  # validates
    if action == "loss":
        netns.loss_ruleset(float(value))  # validates


def apply(layout: Layout, state: State, name: str, action: str, value: float | None,
          machine: hosts.Machine) -> dict:
    """Carry out one fault on a recorded host; return the host's faults afterwards."""
    check(action, value)
    rec = state.hosts[name]
    h = topo.host_net(rec["index"])
    hf = HostFiles(layout.host_dir(name))
    faults: dict[str, Any] = dict(rec.get("faults", {}))
    if action == "cut":
        netns.run(netns.cut_cmd(h, True))
        faults["cut"] = True
    elif action == "slow":
        for argv in netns.slow_cmds(h, float(value)):
            netns.run(argv)
        faults["slow_mbit"] = float(value)
    elif action == "loss":
        netns.run(netns.in_netns(h.netns, ["nft", "-f", "-"]), input=netns.loss_ruleset(float(value)))
        faults["loss_pct"] = float(value)
    elif action == "stop-docker":
        faults["stop_docker"] = True
        _save(state, name, faults)
        procs.stop([rec.get("dockerd")], timeout=20)
        procs.stop([rec.get("containerd")], timeout=10)
    elif action == "stop-ssh":
        faults["stop_ssh"] = True
        _save(state, name, faults)
        procs.stop([rec.get("sshd")], timeout=10)
    elif action == "restore":
        restore(state, h, hf, machine)
        faults = {}
    _save(state, name, faults)
    return faults


def restore(state: State, h: topo.HostNet, hf: HostFiles, machine: hosts.Machine) -> None:
    """Undo every fault, whether recorded or not: link up, no shaping, no loss, daemons running."""
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
