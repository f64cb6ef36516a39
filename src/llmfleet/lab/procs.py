"""Start, recognise and stop the lab's processes, by PID and start time only.

A process is recorded as ``{"pid": N, "start": T}`` where T is its start time in
clock ticks since boot (field 22 of /proc/PID/stat). A PID is only ever signalled
while /proc/PID/stat still shows that start time, so a recycled PID belonging to
someone else is never touched. Nothing here kills by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import AbstractSet, Iterable, Sequence

Proc = dict  # {"pid": int, "start": int}

# Starts argv in the background with stdin from /dev/null and output appended to
# the log ($0), then prints its PID. The script is constant text: argv arrives as
# positional parameters and is never parsed by the shell.
_SPAWN = 'exec "$@" </dev/null >>"$0" 2>&1 &\necho $!\n'

# Daemons find their helpers (containerd, shims, docker-init) in the distribution's directories only.
DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}


class ProcError(RuntimeError):
    pass


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat split after the command name (which may hold spaces), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 overall; 20th after "pid (comm)"


def parent(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def alive(proc: Proc | None) -> bool:
    """True while the recorded process runs (a zombie counts as gone)."""
    if not proc:
        return False
    fields = stat_fields(proc["pid"])
    if not fields:
        return False
    return int(fields[19]) == proc["start"] and fields[0] != "Z"


def identify(pid: int) -> Proc:
    start = start_time(pid)
    if start is None:
        raise ProcError(f"process {pid} exited before it could be recorded")
    return {"pid": pid, "start": start}


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    """Start a long-lived daemon detached from us (own session, re-parented to init) and record it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["/bin/sh", "-c", _SPAWN, str(log), *argv],
        capture_output=True, text=True, env=env or DAEMON_ENV, start_new_session=True,
        check=False, timeout=30,
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise ProcError(f"could not start {argv[0]}: {out.stderr.strip() or out.stdout.strip()}")
    return identify(int(out.stdout.strip()))


def signal_proc(proc: Proc | None, sig: int) -> bool:
    """Send sig if the recorded process is still the one we started; False if it is gone."""
    if proc is None or not alive(proc):
        return False
    try:
        os.kill(proc["pid"], sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(procs: Iterable[Proc], timeout: float) -> list[Proc]:
    """Wait until every process has exited; return those still running at the deadline."""
    pending = [p for p in procs if p]
    deadline = time.monotonic() + timeout
    while True:
        pending = [p for p in pending if alive(p)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.05)


def stop(procs: Sequence[Proc | None], timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL what is left; raise if something survives even that."""
    live = [p for p in procs if p and signal_proc(p, signal.SIGTERM)]
    left = wait_gone(live, timeout)
    for p in left:
        signal_proc(p, signal.SIGKILL)
    left = wait_gone(left, 5.0)
    if left:
        raise ProcError("processes survived SIGKILL: " + ", ".join(str(p["pid"]) for p in left))


def ns_inode(pid: int | str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def ns_inode_of_netns(name: str) -> int | None:
    """The inode of a named network namespace (``ip netns``), as ns_inode gives it for its processes."""
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return None


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def live_namespaces(recorded: Iterable[Proc | None], kind: str) -> set[int]:
    """The namespaces (of ``kind``: mnt, net) that recorded, still running processes are in.

    A namespace inode number is only trusted while one of our own processes holds
    it: the kernel reuses the numbers of dead namespaces, so an inode recorded in
    the state file may name someone else's namespace after a crash.
    """
    out = set()
    for proc in recorded:
        if proc and alive(proc):
            ino = ns_inode(proc["pid"], kind)
            if ino is not None:
                out.add(ino)
    return out


def in_namespaces(mnts: AbstractSet[int] = frozenset(), nets: AbstractSet[int] = frozenset()) -> list[Proc]:
    """Every live process in one of the given mount or network namespaces, plus their descendants.

    This is how lab.down finds what a host's daemons left behind (container
    shims, container processes, host_exec commands): by namespace identity, never
    by name. The caller's own namespaces are always left out, so this can never
    sweep the real machine.
    """
    mnts = set(mnts) - {ns_inode("self", "mnt")}
    nets = set(nets) - {ns_inode("self", "net")}
    if not mnts and not nets:
        return []
    me = os.getpid()
    children: dict[int, list[int]] = {}
    found: set[int] = set()
    for pid in all_pids():
        if pid == me:
            continue
        ppid = parent(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
        if ns_inode(pid, "mnt") in mnts or ns_inode(pid, "net") in nets:
            found.add(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and child != me:
                found.add(child)
                todo.append(child)
    out = []
    for pid in sorted(found):
        start = start_time(pid)
        if start is not None:
            out.append({"pid": pid, "start": start})
    return [p for p in out if alive(p)]


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
