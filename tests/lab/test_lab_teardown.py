"""lab.down leaves no namespace, interface, mount, cgroup or process behind; then the lab comes back.

Runs after the other lab tests of this directory (file order) and brings the
session lab up again at the end, so later test modules still have it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from llmfleet.lab import engine, host_exec, lab_down, lab_up, procs
from llmfleet.lab import topology as topo

pytestmark = pytest.mark.lab

MOUNT_MARKS = ("labrun", "labdev", "labpts", "labshm", "labmodules")


def _recorded(state: dict) -> tuple[list[dict], set[int], set[int]]:
    """Every recorded process, and the recorded mount and network namespace inodes."""
    recs = list(state["hosts"].values()) + [state["control"]]
    processes = [r[k] for r in recs for k in ("init", "sshd", "dockerd", "containerd") if r.get(k)]
    mnts = {r["mntns"] for r in recs if r.get("mntns")}
    nets = {r["netns_ino"] for r in recs if r.get("netns_ino")}
    return processes, mnts, nets


def _mount_lines_mentioning(needles: tuple[str, ...], pids: list[int]) -> list[str]:
    found = []
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/mountinfo").read_text()
        except OSError:  # gone, or a zombie (EINVAL)
            continue
        found += [f"{pid}: {line}" for line in text.splitlines() if any(n in line for n in needles)]
    return found


def _cgroup_roots() -> list[Path]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [Path(line.split()[4]) for line in lines if " - cgroup" in line]


def test_lab_down_leaves_nothing_behind(lab, lab_ssh, lab_test_image):
    n = len(lab.hosts)
    images = os.environ.get("LLMFLEET_TEST_LAB_IMAGES", "1") != "0"
    # A running container, so its shim and processes must go too.
    run = lab_ssh(lab.hosts[0].address, f"docker run -d --network=host {lab_test_image} /bin/sleep 600")
    assert run.returncode == 0, run.stderr
    state = json.loads((lab.state_dir / "lab.json").read_text())
    processes, mnts, nets = _recorded(state)
    assert len(processes) >= 4 * n and len(mnts) == n + 1 and len(nets) == n
    shim = procs.in_namespaces(mnts={state["hosts"][lab.hosts[0].name]["mntns"]})
    assert len(shim) > len([k for k in ("init", "sshd", "dockerd", "containerd")])  # shim + container seen
    shared = engine.shared_made()  # /run/netns and the remote_dir mount point: another lab instance may hold them
    # What a crash or a stray command leaves: a process nobody recorded, and a host whose
    # namespace holder died (its mount namespace lives on in sshd and dockerd).
    stray = host_exec(lab.hosts[-1].name, ["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"])
    stray_proc = procs.identify(int(stray.stdout.strip()))
    assert procs.signal_proc(state["hosts"][lab.hosts[0].name]["init"], signal.SIGKILL)

    try:
        lab_down()

        assert not procs.alive(stray_proc)
        assert [p for p in processes if procs.alive(p)] == []
        leftovers = [pid for pid in procs.all_pids()
                     if procs.ns_inode(pid, "mnt") in mnts or procs.ns_inode(pid, "net") in nets]
        assert [pid for pid in leftovers if procs.alive(procs.identify(pid))] == []
        assert [p for p in shim if procs.alive(p)] == []

        # This lab's names (another instance, e.g. the other test worker's lab, keeps its own).
        ours = re.compile(rf"labv?\d+{re.escape(topo.SUFFIX)}")  # lab1 / labv1, lab1-2 / labv1-2 in instance 2
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        assert not [line for line in netns.splitlines() if ours.fullmatch(line.split()[0])]
        links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                                          check=True).stdout)
        assert [link["ifname"] for link in links if ours.fullmatch(link["ifname"]) or link["ifname"] == topo.BRIDGE] == []
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
        assert f"table inet {topo.GUARD_TABLE}" not in tables.splitlines()
        other_labs = [line for line in netns.splitlines() if line.startswith("lab")]
        if not other_labs:
            assert not engine.SHARED_MADE.exists()
            if shared.get("netns_dir"):
                assert not os.path.exists("/run/netns")
            if shared.get("remote_dir"):
                assert not os.path.exists("/var/lib/llmfleet")

        # Nothing of this lab is mounted anywhere, and no lab mount is left in the root mount namespace.
        assert _mount_lines_mentioning((str(lab.state_dir),), procs.all_pids()) == []
        assert _mount_lines_mentioning(MOUNT_MARKS, [os.getpid()]) == []
        assert [p for p in _cgroup_roots() if (p / topo.CGROUP_ROOT).exists()] == []
        assert not lab.inventory_path.exists()
        assert sorted(p.name for p in lab.state_dir.iterdir()) == [".lock"]

        lab_down()  # a second down finds nothing to do and does not fail
    finally:
        info = lab_up(n, images=images)
        assert [h.name for h in info.hosts] == [h.name for h in lab.hosts]
    assert lab_ssh(lab.hosts[0].address, "hostname").stdout.strip() == lab.hosts[0].name
