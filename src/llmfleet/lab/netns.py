"""The lab network: a bridge in the root namespace, a network namespace and veth per host.

Argv builders are pure (tests compare them); ``run`` is the one I/O edge. Hosts
have only their connected /24 route (no default route), and an nftables table in
the root namespace drops anything that would be forwarded between the lab
bridge and another interface, so lab traffic never reaches a real network.
"""

from __future__ import annotations

import json
import subprocess
from typing import Sequence

from . import topology as topo
from .topology import HostNet


class NetError(RuntimeError):
    pass


def run(argv: Sequence[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(list(argv), input=input, capture_output=True, text=True, check=False, timeout=60)
    if check and out.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {out.stderr.strip() or out.stdout.strip()}")
    return out


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    """Run argv in a lab netns without remounting /sys (unlike ``ip netns exec``)."""
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


# -- builders ---------------------------------------------------------------------------------

def bridge_cmds() -> list[list[str]]:
    return [
        ["ip", "link", "add", "name", topo.BRIDGE, "address", topo.BRIDGE_MAC, "type", "bridge",
         "stp_state", "0", "forward_delay", "0"],
        ["ip", "addr", "add", f"{topo.BRIDGE_ADDRESS}/{topo.prefixlen()}", "dev", topo.BRIDGE],
        ["ip", "link", "set", topo.BRIDGE, "up"],
    ]


def guard_ruleset(add: bool = True) -> str:
    """nftables text for the root namespace: nothing is forwarded into or out of the lab bridge."""
    if not add:
        return f"delete table inet {topo.GUARD_TABLE}\n"
    b = topo.BRIDGE
    return (
        f"add table inet {topo.GUARD_TABLE}\n"
        f"flush table inet {topo.GUARD_TABLE}\n"
        f"add chain inet {topo.GUARD_TABLE} forward {{ type filter hook forward priority -10 ; policy accept ; }}\n"
        f'add rule inet {topo.GUARD_TABLE} forward iifname "{b}" oifname != "{b}" drop\n'
        f'add rule inet {topo.GUARD_TABLE} forward oifname "{b}" iifname != "{b}" drop\n'
    )


def host_cmds(h: HostNet) -> list[list[str]]:
    """Create h's namespace and veth pair, address the host side, attach the root side to the bridge."""
    return [
        ["ip", "netns", "add", h.netns],
        ["ip", "link", "add", h.veth_root, "address", h.mac_root, "type", "veth",
         "peer", "name", h.veth_host, "address", h.mac_host, "netns", h.netns],
        ["ip", "link", "set", h.veth_root, "master", topo.BRIDGE, "up"],
        ["ip", "-n", h.netns, "link", "set", "lo", "up"],
        ["ip", "-n", h.netns, "addr", "add", f"{h.address}/{topo.prefixlen()}", "dev", h.veth_host],
        ["ip", "-n", h.netns, "link", "set", h.veth_host, "up"],
    ]


def host_teardown_cmds(h: HostNet) -> list[list[str]]:
    return [["ip", "link", "del", h.veth_root], ["ip", "netns", "del", h.netns]]


def tbf_args(mbit: float) -> list[str]:
    """A token bucket of ``mbit`` Mbit/s; the bucket holds ~20 ms of traffic, at least 64 KiB."""
    if not mbit > 0:
        raise ValueError(f"--slow needs a positive Mbit/s value, not {mbit}")
    rate_bytes = mbit * 1_000_000 / 8
    burst = max(64 * 1024, int(rate_bytes / 50))
    return ["tbf", "rate", f"{_num(mbit)}mbit", "burst", str(burst), "latency", "200ms"]


def slow_cmds(h: HostNet, mbit: float) -> list[list[str]]:
    """Shape both directions: towards the host (root side) and from it (host side)."""
    tbf = tbf_args(mbit)
    return [
        ["tc", "qdisc", "replace", "dev", h.veth_root, "root", *tbf],
        in_netns(h.netns, ["tc", "qdisc", "replace", "dev", h.veth_host, "root", *tbf]),
    ]


def unslow_cmds(h: HostNet) -> list[list[str]]:
    return [
        ["tc", "qdisc", "del", "dev", h.veth_root, "root"],
        in_netns(h.netns, ["tc", "qdisc", "del", "dev", h.veth_host, "root"]),
    ]


def control_slow_cmd(mbit: float) -> list[str]:
    """The control node's uplink: what it sends into the lab leaves by the bridge device."""
    return ["tc", "qdisc", "replace", "dev", topo.BRIDGE, "root", *tbf_args(mbit)]


def control_unslow_cmd() -> list[str]:
    return ["tc", "qdisc", "del", "dev", topo.BRIDGE, "root"]


def loss_ruleset(pct: float) -> str:
    """nftables text (host namespace): drop pct % of the packets arriving at the host."""
    if not 0 < pct <= 100:
        raise ValueError(f"--loss needs a percentage in (0, 100], not {pct}")
    threshold = round(pct * 100)  # resolution 0.01 %
    t = topo.FAULT_TABLE
    return (
        f"add table inet {t}\n"
        f"flush table inet {t}\n"
        f"add chain inet {t} input {{ type filter hook input priority -10 ; policy accept ; }}\n"
        f"add rule inet {t} input numgen random mod 10000 < {threshold} drop\n"
    )


def unloss_ruleset() -> str:
    return f"delete table inet {topo.FAULT_TABLE}\n"


def cut_cmd(h: HostNet, cut: bool) -> list[str]:
    """Take the host's cable out (or put it back): the root side of its veth goes down."""
    return ["ip", "link", "set", h.veth_root, "down" if cut else "up"]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# -- queries ----------------------------------------------------------------------------------

def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def link_info(name: str) -> dict | None:
    """``ip -j link show dev NAME`` as a dict (keys ifname, flags, master, ...), None if absent."""
    out = run(["ip", "-j", "link", "show", "dev", name], check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return json.loads(out.stdout)[0]


def link_up(name: str) -> bool:
    info = link_info(name)
    return info is not None and "UP" in info.get("flags", [])


def routes() -> list[dict]:
    return json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")


def foreign_overlaps() -> list[str]:
    """Routes on non-lab interfaces that overlap the lab subnet (lab.up refuses to start then)."""
    bad = []
    for r in routes():
        dev = r.get("dev", "")
        if dev.startswith(topo.PREFIX):
            continue
        if topo.overlaps_lab(r.get("dst", "")):
            bad.append(f"{r.get('dst')} dev {dev}")
    return bad


def nft_table_exists(netns: str | None, table: str) -> bool:
    argv = ["nft", "list", "table", "inet", table]
    return run(in_netns(netns, argv) if netns else argv, check=False).returncode == 0
