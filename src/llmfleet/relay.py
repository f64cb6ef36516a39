"""Image relay: the control node sends an image once; hosts that receive it pass it on while they load it.

Shape (chosen from measurements, see README "Fleet-scale speed"): a streamed chain. The first
host that needs the image gets it from the control node; every host that is receiving it
spools the bytes it receives (as received: compressed or not, never recompressed) to a file
in its relay folder while it pipes them into ``docker load``, and serves that spool to the
next host at the same time (``tail -f`` until its own transfer ends). So the image crosses the
control uplink once and every host-to-host hop runs concurrently with it: the whole fleet
takes about one transfer's time instead of ~log2(N) rounds of a tree. A host that finished
(or already had the image) keeps feeding from its spool (or ``docker save``) while others wait.

Each hop is verified (image ID) and independent: a feeder that fails or is cut mid-transfer
is dropped and its receiver starts again from another streamer or holder (the control node
only when nobody holds or streams the image); a receiver that fails is reported and the
others go on.

How a receiver reaches its feeder: over SSH with a key made for this run. The receiver
gets the private key (0600, in its private relay folder) and a known_hosts file holding the
feeder's host key as the control node verified it; the feeder's authorized_keys gets one
line ``restrict,from="<receiver>",expiry-time="...",command="<serve the spool>"``: the key
can do nothing else, from nowhere else, and expires even if nobody removes it. Nothing new
listens anywhere (the hosts' own sshd serves); the line is removed after every hop, the
folder (key, spool) when the host leaves the relay, also when it fails or on Ctrl-C, and a
later run removes what a cut host kept.

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
# Before the control node sends the first copy, a receiver waits this long for hosts of the run still on their way
# to the image step: one of them may hold the image already (a rerun), and a peer's copy spares the control uplink.
PEER_GRACE_S = 5.0


@dataclass
class Hop:
    """One transfer: who feeds whom (``CONTROL`` is the control node)."""

    feeder: str
    receiver: str


@dataclass
class Relay:
    """Who holds the image, who waits for it, who feeds whom; threads block in :meth:`feeder_for`."""

    fanout: int = 1  # transfers a holder (or a streaming receiver) feeds at once
    peer_grace: float = PEER_GRACE_S
    stream: bool = True  # a receiver feeds others while it receives (chain); False: only finished holders (tree)
    holders: dict[str, int] = field(default_factory=dict)  # holder -> transfers it is feeding now
    streams: dict[str, int] = field(default_factory=dict)  # receiving now (spooling) -> transfers it is feeding now
    waiting: list[str] = field(default_factory=list)
    again: set[str] = field(default_factory=set)  # hop failed, the receiver asks again: holders must not leave meanwhile
    bad: dict[str, str] = field(default_factory=dict)  # holder dropped -> why
    sources: dict[str, str] = field(default_factory=dict)  # receiver -> where its image came from
    control_busy: bool = False
    inflight: int = 0
    cancelled: bool = False
    # hosts of the run that are working but have not reached their image step yet: one of them may still ask
    # (a host slowed by its lock or facts, a rerun's restored host), so holders stay until each has come or gone
    pending: set[str] = field(default_factory=set)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def expect(self, host: str) -> None:
        with self._cond:
            self.pending.add(host)

    def arrived(self, host: str) -> None:
        """``host`` reached its image step (it asks, holds, or does not use the relay at all)."""
        with self._cond:
            self.pending.discard(host)
            self._cond.notify_all()

    def hold(self, host: str) -> None:
        """``host`` has the image (verified): it can feed others."""
        with self._cond:
            self.pending.discard(host)
            if host not in self.bad:
                self.holders.setdefault(host, 0)
            self._cond.notify_all()

    def _pick(self, host: str) -> str | None:
        free = [h for h, n in self.holders.items() if n < self.fanout]
        if free:
            return min(free, key=lambda h: self.holders[h])
        streaming = [h for h, n in self.streams.items() if n < self.fanout and h != host]
        if streaming:
            return streaming[0]  # the oldest stream with a free slot: the tail of the chain
        if not self.holders and not self.streams and not self.control_busy:
            return CONTROL  # nobody holds or receives it (yet, or any more): the control node sends it
        return None

    def _feeding(self, feeder: str, delta: int) -> None:
        for table in (self.holders, self.streams):
            if feeder in table:
                table[feeder] += delta
                return

    def cancel(self) -> None:
        """Ctrl-C: nobody is fed any more; waiters raise, servers leave."""
        with self._cond:
            self.cancelled = True
            self._cond.notify_all()

    def feeder_for(self, host: str, timeout: float | None = None) -> Hop:
        """Block until a feeder is free for ``host``; first come, first fed."""
        asked = time.monotonic()
        deadline = None if timeout is None else asked + timeout
        with self._cond:
            self.pending.discard(host)  # it came: from now on `waiting` (and then `inflight`) speak for it
            self.waiting.append(host)
            self.again.discard(host)
            self._cond.notify_all()  # one fewer pending: an earlier asker in its grace may go on
            try:
                while True:
                    if self.cancelled:
                        raise Cancelled("the run was interrupted")
                    feeder = self._pick(host) if self.waiting[0] == host else None
                    grace = asked + self.peer_grace - time.monotonic() if self.pending else 0.0
                    if feeder == CONTROL and grace > 0:
                        feeder = None  # a host on its way may hold it: wait until all have come (held, asked, left)
                    if feeder is not None:
                        break
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"no host could feed {host} the image in {timeout:.0f}s")
                    if grace > 0:
                        left = grace if left is None else min(left, grace)
                    self._cond.wait(left)
            finally:
                self.waiting.remove(host)
                self._cond.notify_all()
            if feeder == CONTROL:
                self.control_busy = True
            else:
                self._feeding(feeder, +1)
            if self.stream:
                self.streams[host] = 0
            self.inflight += 1
            return Hop(feeder, host)

    def finished(self, hop: Hop, ok: bool, feeder_failed: str | None = None, again: bool = False) -> None:
        """A hop ended: on success the receiver holds the image; a failed feeder is dropped for good.

        ``again``: the receiver asks for another feeder next, so holders stay until it does.
        """
        with self._cond:
            self.inflight -= 1
            if again and not ok:
                self.again.add(hop.receiver)
            if hop.feeder == CONTROL:
                self.control_busy = False
            else:
                self._feeding(hop.feeder, -1)
            if feeder_failed is not None and hop.feeder != CONTROL:
                self.holders.pop(hop.feeder, None)
                self.streams.pop(hop.feeder, None)
                self.bad[hop.feeder] = feeder_failed
            feeding = self.streams.pop(hop.receiver, 0)  # whom it feeds from its spool goes on being fed
            if ok:
                self.sources[hop.receiver] = hop.feeder
                if hop.receiver not in self.bad:
                    self.holders[hop.receiver] = self.holders.get(hop.receiver, 0) + feeding
            self._cond.notify_all()

    def needed(self) -> bool:
        """Someone still waits or loads: a holder stays available."""
        with self._cond:
            return bool(self.waiting or self.again or self.pending) or self.inflight > 0

    def serve(self, host: str, timeout: float | None = None) -> None:
        """Block while ``host`` may still be asked to feed (waiters or transfers in flight), then leave."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self.waiting or self.again or self.pending or self.inflight > 0 or self.holders.get(host, 0) > 0) \
                    and host in self.holders and not self.cancelled:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left if left is not None else 1.0)
            # a holder that left feeds nobody any more
            if self.holders.get(host, 0) == 0:
                self.holders.pop(host, None)
            self._cond.notify_all()

    def leave(self, host: str) -> None:
        """``host``'s thread is going (its step failed, or the host's run ended): it can feed nobody any more."""
        with self._cond:
            self.pending.discard(host)
            self.holders.pop(host, None)
            self.streams.pop(host, None)
            self.again.discard(host)
            self._cond.notify_all()


class Cancelled(Exception):
    """The run was interrupted (Ctrl-C): no more hops start."""


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


KEEPALIVE_S = 2  # the receiver prints a line this often: a silent channel means a stalled hop, and Ctrl-C is seen soon


def ssh_argv(tmpdir: str, address: str, port: int, user: str | None) -> list[str]:
    """ssh from the receiver to its feeder: this run's key and the feeder's pinned host key only, no config."""
    target = f"{user}@{address}" if user else address
    return ["ssh", "-F", "/dev/null", "-i", f"{tmpdir}/key", "-o", f"UserKnownHostsFile={tmpdir}/known_hosts",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "ClearAllForwardings=yes",
            "-T", "-p", str(port), target]  # fmt: skip


INCOMPLETE = 97  # what a spool's server exits with when its host's own transfer did not finish


def serve_spool(folder: str) -> str:
    """What the feeder's sshd runs for a receiver: its spool from the first byte, following it while it grows.

    Waits (up to 30 s, and only while the folder is there) for the feeder's own transfer to start, follows the spool until that
    transfer ends, and exits ``INCOMPLETE`` unless it ended well: a receiver never mistakes
    a cut stream for a whole one. Its PID goes to ``serving`` so a cleanup can stop it. ``tail -s 0.1``: tail
    looks for the transfer's end every 0.1 s, not every second (each hop of a chain waited up to 1 s more).
    """
    if not re.fullmatch(r"/[A-Za-z0-9_./-]+", folder):
        raise ValueError(f"bad relay folder {folder!r}")
    d = folder
    return (f"i=0; while [ -d {d} ] && [ ! -s {d}/pid ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; "
            f"[ -s {d}/pid ] || exit {INCOMPLETE}; "
            f"tail -s 0.1 -c +1 --pid=$(cat {d}/pid) -f {d}/spool & t=$!; echo $t >> {d}/serving; wait $t; "
            f"[ -e {d}/ok ] || exit {INCOMPLETE}")  # fmt: skip


def receive_script(source: Sequence[str] | None, decompress: bool, spool: str | None = None) -> str:
    """The receiver's pipeline (bash): [ssh feeder | dd (progress)] | [tee spool] | [zstd -d] | docker load.

    ``source`` None reads stdin (the control node's hop). With ``spool`` (the host's relay
    folder) the bytes are also written, as received, to ``spool/spool`` for the hosts this
    one feeds, with its PID in ``pid`` and ``ok`` when every stage succeeded. A keepalive
    line every few seconds lets the control node tell a slow hop from a dead one; the last
    line is ``relay-status <exit codes of the stages>``, so the caller knows which side
    failed (ssh's 255: the path to the feeder; ``INCOMPLETE``: the feeder's own stream broke).
    """
    stages = [f"{shell.join(list(source))} | dd bs=1M status=progress"] if source else ["cat"]
    prelude = ""
    if spool:
        prelude = f"rm -f {spool}/spool {spool}/ok; : > {spool}/spool; echo $$ > {spool}/pid; "
        stages.append(f"tee {spool}/spool")
    if decompress:
        stages.append("zstd -q -d -c")
    stages.append("docker load")
    # a failed transfer drops its pid, so a host that asks this one before its next attempt waits for it
    done = f"case \"$st\" in *[1-9]*) rm -f {spool}/pid;; *) touch {spool}/ok;; esac; " if spool else ""
    return (f"{prelude}(while sleep {KEEPALIVE_S}; do echo relay-alive; done) & ka=$!; "
            f"{' | '.join(stages)}; st=\"${{PIPESTATUS[*]}}\"; kill $ka 2>/dev/null; {done}echo \"relay-status $st\"")  # fmt: skip


def relay_folder(run_tag: str) -> list[str]:
    """Make this run's private relay folder on a host (printed, named after the run), and list the tools a hop needs."""
    script = ('umask 077; d=$(mktemp -d "/tmp/llmfleet-relay.$1.XXXXXXXX") && echo "$d" && '
              "for t in zstd ssh bash tail tee; do command -v $t >/dev/null 2>&1 && printf '%s ' $t; done; echo")  # fmt: skip
    return ["sh", "-c", script, "sh", run_tag]


def stop_serving(folder: str) -> list[str]:
    """Stop what works in a relay folder and remove it: its spool servers, and its receiving pipeline when it still runs.

    The pipeline outlives its channel (Ctrl-C closes it; the remote stages only notice at their
    last write), so its shell (``pid``) and that shell's own children are stopped by PID.
    """
    script = ('if [ -f "$1/serving" ]; then for p in $(cat "$1/serving"); do kill "$p" 2>/dev/null; done; fi; '
              'if [ -s "$1/pid" ] && [ ! -e "$1/ok" ]; then p=$(cat "$1/pid"); pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; fi; rm -rf "$1"')  # fmt: skip
    return ["sh", "-c", script, "sh", folder]


def clear_stale(run_tag: str) -> list[str]:
    """What earlier runs left (a host cut mid-relay could not be cleaned): their relay key lines and folders.

    Run while this run holds the host's deploy lock; this run's own lines and folders (``run_tag``) stay.
    """
    script = ('f="$HOME/.ssh/authorized_keys"; if [ -f "$f" ] && grep -F "$1" "$f" | grep -q -v -F "$2"; then '
              'awk -v t="$1" -v r="$2" \'index($0, t) == 0 || index($0, r) > 0\' "$f" > "$f.llmfleet-relay"; '
              'cat "$f.llmfleet-relay" > "$f"; rm -f "$f.llmfleet-relay"; fi; '
              'for d in /tmp/llmfleet-relay.*; do [ -d "$d" ] || continue; case "$d" in *".$2."*) continue;; esac; '
              '[ -f "$d/serving" ] && for p in $(cat "$d/serving"); do kill "$p" 2>/dev/null; done; rm -rf "$d"; done; true')  # fmt: skip
    return ["sh", "-c", script, "sh", KEY_TAG, run_tag]


def receive_command(source: Sequence[str] | None, decompress: bool, spool: str | None = None) -> str:
    return shell.join(["bash", "-c", receive_script(source, decompress, spool)]) + " 2>&1"


def feeder_failed(codes: list[int] | None) -> bool:
    """ssh (the first stage of a pulled hop) ended 255: the feeder or the path to it failed."""
    return codes is not None and len(codes) > 0 and codes[0] == 255


def feed_broke(codes: list[int] | None) -> bool:
    """The feeder's own stream ended unfinished (its upstream failed): start again elsewhere, it is not to blame."""
    return codes is not None and len(codes) > 0 and codes[0] == INCOMPLETE


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

