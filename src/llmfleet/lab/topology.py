"""The lab's names, addresses and MAC addresses: pure functions, no I/O.

One place decides them so that lab.up, lab.down, the faults and the tests agree,
and so that a crashed run can be cleaned up from names alone. Every interface and
namespace name starts with ``lab``; the subnet is one that nothing else here uses,
and hosts get no default route, so lab traffic never leaves the lab bridge.

Labs side by side: ``$LLMFLEET_LAB_INSTANCE`` (1..9; unset is 0, the default lab) gives a
lab its own bridge, subnet, namespace, interface, cgroup and nftables names, so two labs
(each with its own state directory and inventory) run at once without meeting: the test
suite runs one per worker. Host names (lab1, lab2, ...) are the same in every instance.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

INSTANCE_ENV = "LLMFLEET_LAB_INSTANCE"
MAX_INSTANCE = 9


def check_instance(value: str | None) -> int:
    """The instance number from the environment's text: unset or empty is 0."""
    if value is None or value == "":
        return 0
    if not (value.isascii() and value.isdigit()) or not 0 <= int(value) <= MAX_INSTANCE:
        raise ValueError(f"${INSTANCE_ENV} must be a number from 0 to {MAX_INSTANCE}, not {value!r}")
    return int(value)


def suffix(instance: int) -> str:
    """What an instance adds to its namespace, veth and cgroup names: nothing for the default lab."""
    return "" if instance == 0 else f"-{instance}"


def subnet(instance: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.213.{instance}.0/24")


INSTANCE = check_instance(os.environ.get(INSTANCE_ENV))
PREFIX = "lab"
SUFFIX = suffix(INSTANCE)
BRIDGE = f"labbr{INSTANCE}"
SUBNET = subnet(INSTANCE)
BRIDGE_ADDRESS = SUBNET.network_address + 1
FIRST_HOST_OCTET = 11  # lab1 = .11, lab2 = .12, ...
MAX_HOSTS = 64  # a 2-core machine runs far fewer; the subnet would allow 243
HOST_IFNAME = "labeth0"  # the host's side of its veth, inside its namespace
GUARD_TABLE = "labguard" + (str(INSTANCE) if INSTANCE else "")  # nftables table (root namespace) that keeps lab traffic in the lab
FAULT_TABLE = "labfault"  # nftables table (host namespace) for packet loss
CGROUP_ROOT = PREFIX + SUFFIX  # the lab engines' cgroup parent: lab/<host>, lab/control
IFNAMSIZ = 15  # Linux interface names are at most 15 characters

# Locally administered unicast MACs (bit 0x02 set, 0x01 clear): 02:1a:b0:<instance>:<index>:<side>.
_MAC_BASE = f"02:1a:b0:{INSTANCE:02x}"


@dataclass(frozen=True)
class HostNet:
    """What one lab host is called and where it is on the lab network."""

    index: int
    name: str  # also its hostname, its netns name and its inventory name
    address: str
    netns: str
    veth_root: str  # the bridge's side, in the root namespace
    veth_host: str  # the host's side, inside its namespace
    mac_root: str
    mac_host: str


def check_count(n: int) -> int:
    """Refuse host counts the lab cannot give (the CLI turns this into exit 2)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"host count must be an integer, not {n!r}")
    if n < 1 or n > MAX_HOSTS:
        raise ValueError(f"host count must be between 1 and {MAX_HOSTS}, not {n}")
    return n


def host_name(index: int) -> str:
    return f"{PREFIX}{index}"


def host_index(name: str) -> int:
    """The inverse of host_name; ValueError for anything that is not a lab host name."""
    if not name.startswith(PREFIX) or not name[len(PREFIX):].isdigit():
        raise ValueError(f"not a lab host name: {name!r} (lab hosts are lab1, lab2, ...)")
    index = int(name[len(PREFIX):])
    if index < 1 or index > MAX_HOSTS or host_name(index) != name:
        raise ValueError(f"not a lab host name: {name!r} (lab hosts are lab1 .. lab{MAX_HOSTS})")
    return index


def host_address(index: int) -> str:
    _check_index(index)
    return str(SUBNET.network_address + FIRST_HOST_OCTET - 1 + index)


def mac(index: int, side: int) -> str:
    """Fixed MACs: a bridge learns them once and a re-created host keeps its ARP entries valid."""
    if not 0 <= index <= 255 or side not in (1, 2):
        raise ValueError(f"bad MAC index/side {index}/{side}")
    return f"{_MAC_BASE}:{index:02x}:{side:02x}"


BRIDGE_MAC = mac(0, 1)


def host_net(index: int) -> HostNet:
    _check_index(index)
    name = host_name(index)
    veth_root = f"{PREFIX}v{index}{SUFFIX}"
    for ifname in (veth_root, HOST_IFNAME, BRIDGE):
        if len(ifname) > IFNAMSIZ:
            raise ValueError(f"interface name too long: {ifname}")
    return HostNet(
        index=index,
        name=name,
        address=host_address(index),
        netns=name + SUFFIX,
        veth_root=veth_root,
        veth_host=HOST_IFNAME,
        mac_root=mac(index, 2),
        mac_host=mac(index, 1),
    )


def hosts(n: int) -> list[HostNet]:
    return [host_net(i) for i in range(1, check_count(n) + 1)]


def prefixlen() -> int:
    return SUBNET.prefixlen


def overlaps_lab(route_dst: str) -> bool:
    """True when a route destination (``default``, ``a.b.c.d/n`` or an address) overlaps the lab subnet.

    lab.up refuses to start when a non-lab interface already routes part of the
    lab subnet: the lab would then shadow, or leak into, a real network.
    ``default`` is not an overlap: it is the least specific route and the lab's
    connected route always wins over it.
    """
    if route_dst == "default":
        return False
    try:
        net = ipaddress.ip_network(route_dst, strict=False)
    except ValueError:
        return False
    return net.version == 4 and net.overlaps(SUBNET)


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_HOSTS:
        raise ValueError(f"lab host index must be 1..{MAX_HOSTS}, not {index!r}")
