"""Image relay: the control node sends an image once; hosts that have it feed the others.

Shape (chosen from measurements, see benchmarks/README.md): a greedy binomial tree. The
first host that needs the image gets it from the control node; from then on every host
that holds it (it already had it, or it has just loaded and verified it) feeds one waiting
host at a time over the cluster network, so holders double each round (~log2(N) rounds
after the one transfer through the control uplink). Each hop is an independent, verified
transfer: a feeder that fails or is cut mid-transfer is dropped and its receiver is fed by
another holder (the control node only when no holder is left); a receiver that fails is
reported and its feeder goes on with the next host.

How a receiver reaches its feeder: over SSH with a key made for this run. The receiver
gets the private key (0600, in a private temp folder) and a known_hosts file holding the
feeder's host key as the control node verified it; the feeder's authorized_keys gets one
line ``restrict,from="<receiver>",expiry-time="...",command="docker save TAG [| zstd]"``:
the key can do nothing else, from nowhere else, and expires even if nobody removes it.
Nothing new listens anywhere (the hosts' own sshd serves); the line, the key and the temp
folder are removed after every hop, also when it fails.

:class:`Relay` is the cross-host coordination (one per image per run, in
``RunContext.shared``): pure threading, no I/O, unit-tested with scripted hosts.
"""

from __future__ import annotations

import re
import secrets as pysecrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import shell

CONTROL = "control"
KEY_TAG = "llmfleet-relay"  # the comment of every authorized_keys line a relay adds
EXPIRY = timedelta(hours=6)  # a relay line still there after this is dead anyway


@dataclass
class Hop:
    """One transfer: who feeds whom (``CONTROL`` is the control node)."""

    feeder: str
    receiver: str


@dataclass
class Relay:
    """Who holds the image, who waits for it, who feeds whom; threads block in :meth:`feeder_for`."""

    fanout: int = 1  # transfers a holder feeds at once
    holders: dict[str, int] = field(default_factory=dict)  # holder -> transfers it is feeding now
    waiting: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # holder dropped -> why
    sources: dict[str, str] = field(default_factory=dict)  # receiver -> where its image came from
    control_busy: bool = False
    inflight: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def hold(self, host: str) -> None:
        """``host`` has the image (verified): it can feed others."""
        with self._cond:
            if host not in self.bad:
                self.holders.setdefault(host, 0)
            self._cond.notify_all()

    def _pick(self) -> str | None:
        free = [h for h, n in self.holders.items() if n < self.fanout]
        if free:
            return min(free, key=lambda h: self.holders[h])
        if not self.holders and not self.control_busy:
            return CONTROL  # nobody holds it (yet, or any more): the control node sends it
        return None

    def feeder_for(self, host: str, timeout: float | None = None) -> Hop:
        """Block until a feeder is free for ``host``; first come, first fed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self.waiting.append(host)
            try:
                while True:
                    feeder = self._pick() if self.waiting[0] == host else None
                    if feeder is not None:
                        break
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"no host could feed {host} the image in {timeout:.0f}s")
                    self._cond.wait(left)
            finally:
                self.waiting.remove(host)
                self._cond.notify_all()
            if feeder == CONTROL:
                self.control_busy = True
            else:
                self.holders[feeder] += 1
            self.inflight += 1
            return Hop(feeder, host)

    def finished(self, hop: Hop, ok: bool, feeder_failed: str | None = None) -> None:
        """A hop ended: on success the receiver holds the image; a failed feeder is dropped for good."""
        with self._cond:
            self.inflight -= 1
            if hop.feeder == CONTROL:
                self.control_busy = False
            elif hop.feeder in self.holders:
                self.holders[hop.feeder] -= 1
            if feeder_failed is not None and hop.feeder != CONTROL:
                self.holders.pop(hop.feeder, None)
                self.bad[hop.feeder] = feeder_failed
            if ok:
                self.sources[hop.receiver] = hop.feeder
                if hop.receiver not in self.bad:
                    self.holders.setdefault(hop.receiver, 0)
            self._cond.notify_all()

    def needed(self) -> bool:
        """Someone still waits or loads: a holder stays available."""
        with self._cond:
            return bool(self.waiting) or self.inflight > 0

    def serve(self, host: str, timeout: float | None = None) -> None:
        """Block while ``host`` may still be asked to feed (waiters or transfers in flight), then leave."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self.waiting or self.inflight > 0 or self.holders.get(host, 0) > 0) and host in self.holders:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left if left is not None else 1.0)
            # a holder that left feeds nobody any more
            if self.holders.get(host, 0) == 0:
                self.holders.pop(host, None)
            self._cond.notify_all()

    def leave(self, host: str) -> None:
        """``host``'s thread is going (its step failed): it can feed nobody any more."""
        with self._cond:
            self.holders.pop(host, None)
            self._cond.notify_all()


# --- commands of one hop -----------------------------------------------------------------


def key_comment(run_id: str) -> str:
    """The comment that marks (and lets us remove) this run's authorized_keys line."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:64] or "run"
    return f"{KEY_TAG}-{safe}-{pysecrets.token_hex(4)}"


def serve_command(tag: str, compress: bool) -> str:
    """What the feeder's sshd runs for the relay key (and nothing else)."""
    save = shell.join(["docker", "save", tag])
    return f"{save} | zstd -q -1 -T0 -c" if compress else save


def authorized_line(pubkey: str, receiver_address: str, command: str, comment: str,
                    now: datetime | None = None) -> str:  # fmt: skip
    """The feeder's one-line permission: this key, from the receiver only, this command only, for a while."""
    if '"' in command or "\n" in command or not re.fullmatch(r"[0-9A-Za-z.:_%-]+", receiver_address):
        raise ValueError("relay command or address cannot be put in authorized_keys")
    expiry = ((now or datetime.now(timezone.utc)) + EXPIRY).strftime("%Y%m%d%H%MZ")
    key = " ".join(pubkey.split()[:2])
    return f'restrict,from="{receiver_address}",expiry-time="{expiry}",command="{command}" {key} {comment}'


def add_line(line: str) -> list[str]:
    """Append a line to the login user's authorized_keys (created 0600 if absent)."""
    script = 'umask 077; mkdir -p "$HOME/.ssh" && printf "%s\\n" "$1" >> "$HOME/.ssh/authorized_keys"'
    return ["sh", "-c", script, "sh", line]


def remove_lines(comment: str) -> list[str]:
    """Remove every authorized_keys line carrying ``comment`` (the file keeps its inode and mode)."""
    script = ('f="$HOME/.ssh/authorized_keys"; [ -f "$f" ] || exit 0; '
              'grep -v -F -- "$1" "$f" > "$f.llmfleet-relay" ; cat "$f.llmfleet-relay" > "$f"; rm -f "$f.llmfleet-relay"')  # fmt: skip
    return ["sh", "-c", script, "sh", comment]


def tools_probe() -> list[str]:
    """What a host has for a hop: zstd, ssh, bash (one line of names)."""
    return ["sh", "-c", "for t in zstd ssh bash; do command -v $t >/dev/null 2>&1 && printf '%s ' $t; done; echo"]


KEEPALIVE_S = 5  # the receiver prints a line this often, so a silent channel means a stalled hop


def ssh_argv(tmpdir: str, address: str, port: int, user: str | None) -> list[str]:
    """ssh from the receiver to its feeder: this run's key and the feeder's pinned host key only, no config."""
    target = f"{user}@{address}" if user else address
    return ["ssh", "-F", "/dev/null", "-i", f"{tmpdir}/key", "-o", f"UserKnownHostsFile={tmpdir}/known_hosts",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "ClearAllForwardings=yes",
            "-T", "-p", str(port), target]  # fmt: skip


def receive_script(source: Sequence[str] | None, decompress: bool) -> str:
    """The receiver's pipeline (bash): [ssh feeder | dd (progress)] | [zstd -d] | docker load.

    ``source`` None reads stdin (the control node's hop). A keepalive line every few
    seconds lets the control node tell a slow hop from a dead one; the last line is
    ``relay-status <exit codes of the stages>``, so the caller knows which side failed
    (ssh's 255: the feeder or the path to it).
    """
    stages = [f"{shell.join(list(source))} | dd bs=1M status=progress"] if source else []
    if decompress:
        stages.append("zstd -q -d -c")
    stages.append("docker load")
    pipeline = " | ".join(stages) if source else "cat | " + " | ".join(stages)
    return (f"(while sleep {KEEPALIVE_S}; do echo relay-alive; done) & ka=$!; "
            f"{pipeline}; st=\"${{PIPESTATUS[*]}}\"; kill $ka 2>/dev/null; echo \"relay-status $st\"")  # fmt: skip


def receive_command(source: Sequence[str] | None, decompress: bool) -> str:
    return shell.join(["bash", "-c", receive_script(source, decompress)]) + " 2>&1"


def feeder_failed(codes: list[int] | None) -> bool:
    """ssh (the first stage of a pulled hop) ended 255: the feeder or the path to it failed."""
    return codes is not None and len(codes) > 0 and codes[0] == 255


def parse_status(output: str) -> list[int] | None:
    """The exit codes of the pipeline's stages, from its ``relay-status`` line."""
    for line in reversed(output.splitlines()):
        if line.startswith("relay-status "):
            try:
                return [int(x) for x in line.split()[1:]]
            except ValueError:
                return None
    return None


_PROGRESS = re.compile(r"^(\d+) bytes")


def progress_bytes(text: str) -> int | None:
    """The last byte count dd's ``status=progress`` printed in ``text``."""
    found = None
    for part in re.split(r"[\r\n]", text):
        m = _PROGRESS.match(part.strip())
        if m:
            found = int(m.group(1))
    return found

