"""One-shot commands through the OpenSSH client (`ssh`), for `invoke exec`.

Why a second way to reach a host: an ad-hoc command is one command per host, so the
whole cost is the connection. The `ssh` binary does the handshake in C, one process per
host, spread over every core; paramiko does it in Python under one lock. On 32 hosts
that is the difference between waiting for the tool and waiting for the hosts.

The same rules as :mod:`llmfleet.transport`: the inventory's address, port, user and
key; host keys checked against the same known_hosts file only (an unknown or changed
key fails the host, never a prompt); no password prompts; ~/.ssh/config as OpenSSH
reads it. A host behind a jump host (the inventory's ``-J``, or a ProxyJump/ProxyCommand
in ssh's config) goes through the engine's transport, which checks every hop's key against
that same file (`ssh` would check the jump hosts against the default files instead).
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .endpoint import CONNECT_TIMEOUT_S, Endpoint

KEX = "-sntrup*"  # OpenSSH's default list without the sntrup761 hybrids (both names); ML-KEM hybrids, where there, stay
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
    """True when this host can go through `ssh`: no jump host, from the inventory or from ssh's config.

    A jump host that ~/.ssh/config names would be checked by `ssh` against the default
    known_hosts files, not the inventory's: such hosts go through the engine's transport.
    """
    if shutil.which("ssh") is None or ep.jump not in (None, "none"):
        return False
    return ep.jump == "none" or not _any_config_may_proxy() or not config_proxies(ep)


_PROXY = re.compile(r"^\s*(proxyjump|proxycommand)\b(?!\s*[= ]\s*none\s*$)", re.IGNORECASE | re.MULTILINE)
_INCLUDE = re.compile(r"^\s*include\s+(.+)$", re.IGNORECASE | re.MULTILINE)


def _home() -> Path:
    """The account's home directory, where ssh looks (whatever $HOME says)."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


@functools.cache
def _any_config_may_proxy() -> bool:
    """:func:`config_may_proxy` for this user's and the system's files, read once per process (not once per host)."""
    return config_may_proxy()


def config_may_proxy(user_config: str | None = None, system_config: str = "/etc/ssh/ssh_config") -> bool:
    """Whether any ssh config file (following Include) sets a ProxyJump or ProxyCommand at all.

    The common case (none does) then needs no `ssh -G` per host.
    """
    seen: set[Path] = set()

    def scan(path: Path, base: Path, depth: int) -> bool:
        if depth > 8 or path in seen or not path.is_file():
            return False
        seen.add(path)
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return True  # cannot tell: ask ssh
        if _PROXY.search(text):
            return True
        for m in _INCLUDE.finditer(text):
            for pattern in m[1].split():
                full = Path(os.path.expanduser(pattern))
                full = full if full.is_absolute() else base / full
                if any(scan(Path(f), base, depth + 1) for f in sorted(glob.glob(str(full)))):
                    return True
        return False

    user = Path(user_config) if user_config else _home() / ".ssh" / "config"
    return scan(user, user.parent, 0) or scan(Path(system_config), Path(system_config).parent, 0)


def config_proxies(ep: Endpoint, config: str | None = None) -> bool:
    """What `ssh -G` resolves for this host (Match, Include and all): a jump host or proxy command?"""
    words = ["ssh", "-G"] + (["-F", config] if config else []) + ["-p", str(ep.port)]
    words += (["-l", ep.user] if ep.user else []) + ["--", ep.address]
    proc = subprocess.run(words, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30, check=False)
    if proc.returncode != 0:
        return True  # cannot tell: the engine's transport reads the config itself
    return any(line.split(None, 1)[0] in ("proxyjump", "proxycommand") and line.split(None, 1)[1:] != ["none"]
               for line in proc.stdout.splitlines() if line.strip())  # fmt: skip


def argv(ep: Endpoint, command: str, connect_timeout: float = CONNECT_TIMEOUT_S, persist_s: int = 0,
         control_dir: str | None = None) -> list[str]:  # fmt: skip
    """The `ssh` command line for one command on one host; the remote command is the last word.

    ``persist_s`` > 0 with a ``control_dir``: the connection is shared (ControlMaster) and stays
    open that long after the command, so the next command to the host needs no handshake.
    """
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
        # the key exchange the engine's transport (paramiko) uses too: the sntrup761 hybrid OpenSSH 9.x
        # prefers costs ~80 ms of CPU per connection on each side, most of an ad-hoc command's cost
        "-o", f"KexAlgorithms={KEX}",
        "-p", str(ep.port),
    ]  # fmt: skip
    if persist_s > 0 and control_dir:
        words += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/%C", "-o", f"ControlPersist={persist_s}"]
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


def control_dir() -> str | None:
    """A private folder for the shared connections' sockets, or None where a socket path would be too long."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or _home() / ".cache") / "llmfleet-ssh"
    if len(str(base)) + 1 + 40 + 17 > 107:  # "/" + %C (40 hex digits) + ssh's temporary suffix: a socket path holds 107 bytes
        return None
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = base.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None  # someone else's, or open to others: never share connections through it
    return str(base)


def run(ep: Endpoint, command: str, timeout: float | None = None, persist_s: int = 0) -> Answer:
    """Run one command on one host; never raises for the host's failure."""
    words = argv(ep, command, persist_s=persist_s, control_dir=control_dir() if persist_s > 0 else None)
    try:
        proc = subprocess.run(words, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        return Answer(TIMED_OUT, out, f"timed out after {timeout:g} s")
    return classify(ep, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


def stop_shared(ep: Endpoint) -> bool:
    """Close the shared connection to a host, if one is open (`ssh -O exit`); True when one was."""
    where = control_dir()
    if where is None or shutil.which("ssh") is None:
        return False
    words = argv(ep, "true", persist_s=1, control_dir=where)
    words[words.index("--"):words.index("--")] = ["-O", "exit"]
    proc = subprocess.run(words[:-1], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
    return proc.returncode == 0
