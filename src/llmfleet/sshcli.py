"""One-shot commands through the OpenSSH client (`ssh`), for `invoke exec`.

Why a second way to reach a host: an ad-hoc command is one command per host, so the
whole cost is the connection. The `ssh` binary does the handshake in C, one process per
host, spread over every core; paramiko does it in Python under one lock. On 32 hosts
that is the difference between waiting for the tool and waiting for the hosts.

The same rules as :mod:`llmfleet.transport`: the inventory's address, port, user and
key; host keys checked against the same known_hosts file only (an unknown or changed
key fails the host, never a prompt); no password prompts; ~/.ssh/config as OpenSSH
reads it. A host with an inventory jump host (``ansible_ssh_common_args: -J ...``) goes
through the engine's transport, which checks every hop's key against that same file
(`ssh -J` would check the jump hosts against the default files instead).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from .endpoint import CONNECT_TIMEOUT_S, Endpoint

TIMED_OUT = 124  # the exit code `timeout` gives; the engine's transport reports a timed-out command the same way

# what ssh itself prints when it could not run the command (exit 255): anything else is the command's own 255
_SSH_FAILED = re.compile(
    r"^(ssh: |Host key verification failed|.*Permission denied \(|kex_exchange_identification|"
    r"Connection (closed|reset|timed out)|.*REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known for)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Answer:
    """A host's answer; ``rc`` None when ssh could not reach it (``stderr`` says why)."""

    rc: int | None
    stdout: str
    stderr: str


def usable(ep: Endpoint) -> bool:
    """True when this host can go through `ssh` (see the module's note on jump hosts)."""
    return shutil.which("ssh") is not None and ep.jump in (None, "none")


def argv(ep: Endpoint, command: str, connect_timeout: float = CONNECT_TIMEOUT_S) -> list[str]:
    """The `ssh` command line for one command on one host; the remote command is the last word."""
    known_hosts = os.path.expanduser(ep.known_hosts_file or "~/.ssh/known_hosts")
    words = [
        "ssh", "-T",
        "-o", "BatchMode=yes",  # never a password or passphrase prompt
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",  # the engine's transport reads only this one file too
        "-o", f"ConnectTimeout={max(1, int(connect_timeout))}",
        "-o", "ServerAliveInterval=15",
        "-o", "LogLevel=ERROR",  # no "Warning: Permanently added ..." chatter in a host's stderr
        "-p", str(ep.port),
    ]  # fmt: skip
    if ep.user:
        words += ["-l", ep.user]
    if ep.key_file:
        words += ["-i", os.path.expanduser(ep.key_file), "-o", "IdentitiesOnly=yes"]
    if ep.jump == "none":
        words += ["-o", "ProxyJump=none"]
    return words + ["--", ep.address, command]


def explain(ep: Endpoint, stderr: str) -> str:
    """ssh's own failure as the engine's transport words it, with what to do."""
    where = f"{ep.address}:{ep.port}"
    kh = ep.known_hosts_file or "~/.ssh/known_hosts"
    if "IDENTIFICATION HAS CHANGED" in stderr:
        return f"host key of {where} CHANGED (possible man-in-the-middle); check the host, then fix {kh}"
    if "Host key verification failed" in stderr or "host key is known" in stderr:
        return f"host key of {where} is not in {kh}; verify the host, then: ssh-keyscan -p {ep.port} {ep.address} >> {kh}"
    if "Permission denied" in stderr:
        return f"authentication to {ep.user or 'default user'}@{where} failed (key {ep.key_file or 'default'})"
    if "timed out" in stderr:
        return f"connection to {where} timed out"
    if "Connection refused" in stderr:
        return f"connection to {where} refused"
    return f"cannot connect to {where}: {stderr.strip()[-300:]}"


def classify(ep: Endpoint, code: int, stdout: str, stderr: str) -> Answer:
    """Exit 255 with ssh's own complaint means the host was not reached; any other code is the command's."""
    if code == 255 and _SSH_FAILED.search(stderr):
        return Answer(None, stdout, explain(ep, stderr))
    return Answer(code, stdout, stderr)


def run(ep: Endpoint, command: str, timeout: float | None = None) -> Answer:
    """Run one command on one host; never raises for the host's failure."""
    try:
        proc = subprocess.run(argv(ep, command), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        return Answer(TIMED_OUT, out, f"timed out after {timeout:g} s")
    return classify(ep, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
