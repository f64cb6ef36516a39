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


def lock_dir(remote_dir: str) -> str:
    return f"{remote_dir.rstrip('/')}/lock"


def acquire(remote_dir: str) -> list[str]:
    return ["sh", "-c", 'mkdir -p "$1" && mkdir "$2"', "sh", remote_dir, lock_dir(remote_dir)]


def owner_record(run_id: str | None, playbook: str) -> str:
    return json.dumps(
        {
            "by": f"{getpass.getuser()}@{socket.gethostname()}",
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
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    return f"{stamp} {who} {playbook} run={run_id or '-'} {outcome}{' ' + detail if detail else ''}"
