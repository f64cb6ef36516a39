"""A deploy lock and an append-only audit log on each host (Kamal's habit).

The lock is a directory: `mkdir` is atomic, so two operators (or two CI jobs)
cannot change the same host at once. The audit log records who did what, when.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


def lock_dir(remote_dir: str) -> str:
    return f"{remote_dir.rstrip('/')}/lock"


def acquire(remote_dir: str) -> list[str]:
    return ["sh", "-c", 'mkdir -p "$1" && mkdir "$2"', "sh", remote_dir, lock_dir(remote_dir)]


def owner_record(run_id: str | None, playbook: str) -> str:
    return json.dumps(
        {
            "by": me(),
            "pid": os.getpid(),
            "run_id": run_id,
            "playbook": playbook,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )


def read_owner(remote_dir: str) -> list[str]:
    return ["cat", f"{lock_dir(remote_dir)}/owner"]


def release(remote_dir: str) -> list[str]:
    return ["rm", "-rf", lock_dir(remote_dir)]


def audit(remote_dir: str, line: str) -> list[str]:
    return ["sh", "-c", 'printf "%s\\n" "$1" >> "$2"', "sh", line, f"{remote_dir.rstrip('/')}/audit.log"]


def audit_line(playbook: str, run_id: str | None, outcome: str, detail: str = "") -> str:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    who = me()
    return f"{stamp} {who} {playbook} run={run_id or '-'} {outcome}{' ' + detail if detail else ''}"


RUNNING: set[str | None] = set()  # run IDs of this process whose hosts may hold their locks now (runner.run keeps it)


def me() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def llmfleet_running(pid: int) -> bool:
    """Whether `pid` is a live llmfleet process on this machine (not a reused pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"llmfleet" in cmdline or b"invoke" in cmdline


def stale_owner(owner_text: str, alive: Callable[[int], bool] = llmfleet_running) -> dict | None:
    """The owner record of a lock nobody holds any more, else None.

    Provably stale only: the record names this user on this control node and its process
    is gone (a run killed, or cut off from the host while it held the lock). A lock of
    another control node or user, a live process or an unreadable record stays held:
    that is for `invoke unlock`, by someone who knows the other run is over.
    """
    try:
        owner = json.loads(owner_text)
    except ValueError:
        return None
    if not isinstance(owner, dict) or owner.get("by") != me() or not isinstance(owner.get("pid"), int):
        return None
    if owner["pid"] == os.getpid():  # an earlier run of this same process (a library user, a test): over unless running
        return None if owner.get("run_id") in RUNNING else owner
    return None if alive(owner["pid"]) else owner
