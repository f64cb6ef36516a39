"""How to reach a host: its address, port, user, key, known_hosts file and jump hosts.

Apart from the SSH session (:mod:`llmfleet.transport`) so what only needs to know the
way to a host (`invoke exec` through `ssh`, the inventory) loads no SSH library.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import InputError

CONNECT_TIMEOUT_S = 15
MAX_JUMPS = 8  # a longer chain of gateways is a loop in ~/.ssh/config, not a network


@dataclass(frozen=True)
class Endpoint:
    """How to reach a host: the inventory's ansible_* values."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    known_hosts_file: str | None = None
    jump: str | None = None  # ProxyJump: "[user@]host[:port][,...]", "none" = not even ~/.ssh/config's


def host_endpoint(host: Any, known_hosts_file: str | None, resolved: Mapping[str, Any]) -> Endpoint:
    """How to reach an inventory host: its ansible_* values, the known_hosts setting, a ProxyJump.

    Here (not beside the playbook runner) so `invoke exec` builds endpoints without loading the engine.
    """
    key_file = resolved.get("ansible_ssh_private_key_file") or host.key_file
    return Endpoint(
        name=host.name,
        address=host.address,
        port=int(host.port or 22),
        user=host.user,
        key_file=str(key_file) if key_file else None,
        known_hosts_file=known_hosts_file or host.known_hosts_file,
        jump=jump_from_args(resolved.get("ansible_ssh_common_args"), resolved.get("ansible_ssh_extra_args")),
    )


_SSH_OPTION = re.compile(r"\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)", re.DOTALL)
_HOP = re.compile(r"(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[0-9A-Za-z:.%]+)\]|(?P<host>[^@:\s\[\]]+))(?::(?P<port>\d{1,5}))?")


def parse_hop(text: str) -> tuple[str | None, str, int | None]:
    """``[ssh://][user@]host[:port]`` (``[v6addr]:port`` too) as (user, host, port); ValueError if it is not one."""
    body = text.removeprefix("ssh://")
    m = _HOP.fullmatch(body)
    if m is None or body.startswith("-"):
        raise ValueError(f"{text!r} is not [user@]host[:port]")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port} of {text!r} is not 1-65535")
    return m["user"], m["v6"] or m["host"], port


def _jump_in_words(words: list[str]) -> str | None:
    """The first ``-J X`` / ``-o ProxyJump=X`` in an ssh argument list (ssh keeps an option's first value)."""
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-J", "-o"):
            if i + 1 == len(words):
                raise ValueError(f"{word} is last, without its value")
            value, i = words[i + 1], i + 2
        elif word.startswith(("-J", "-o")):
            value, i = word[2:], i + 1
        else:
            i += 1
            continue
        if word.startswith("-J"):
            return value
        m = _SSH_OPTION.fullmatch(value)
        if m and m[1].lower() == "proxyjump":
            return m[2].strip()
    return None


def jump_from_args(common_args: str | None, extra_args: str | None) -> str | None:
    """The jump host named by Ansible's ``ansible_ssh_common_args`` / ``ansible_ssh_extra_args``.

    Only ``-J HOSTS`` and ``-o ProxyJump=HOSTS`` are honoured, the first one found
    (common args before extra args: ssh keeps an option's first value); every
    other ssh option there is ignored (docs/inventory.md says so). Returns the
    ProxyJump value (``[user@]host[:port]``, comma-separated hops, or ``none``),
    or None; a value that is not one raises InputError naming the variable.
    """
    for var, text in (("ansible_ssh_common_args", common_args), ("ansible_ssh_extra_args", extra_args)):
        if not text:
            continue
        try:
            jump = _jump_in_words(shlex.split(text))
            if jump is not None:
                return check_jump(jump)
        except ValueError as exc:
            raise InputError(f"{var}: {exc}") from None
    return None


def check_jump(jump: str) -> str:
    """A ProxyJump value checked hop by hop (ValueError otherwise): what ``Endpoint.jump`` holds."""
    if jump.lower() == "none":
        return "none"
    hops = jump.split(",")
    if len(hops) > MAX_JUMPS:
        raise ValueError(f"ProxyJump {jump!r} has more than {MAX_JUMPS} hops")
    for hop in hops:
        parse_hop(hop)
    return jump
