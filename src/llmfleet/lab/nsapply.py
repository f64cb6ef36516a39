"""Carry out a mount plan (see hostfs.py) inside a lab host's namespaces.

Run as a script by the system python under ``nsenter --target INIT --mount --uts
--net``: it reads the plan (JSON) on stdin. Standard library only, because the
host's view of the filesystem may not have the toolkit's python or packages.
Every failure names the step that failed and exits 1.
"""

from __future__ import annotations

import ctypes
import grp
import json
import os
import stat
import sys

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None,
            ctypes.c_ulong(flags), data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return any(line.split()[4] == path for line in fh)


def apply(step: dict) -> None:
    op = step["op"]
    if op == "hostname":
        name = step["name"].encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    elif op == "umount":
        if step.get("if_mounted") and not is_mountpoint(step["path"]):
            return
        _check(_libc.umount2(step["path"].encode(), MNT_DETACH if step.get("lazy") else 0),
               f"umount {step['path']}")
    elif op == "mount":
        flags = 0
        for flag in step.get("flags", []):
            flags |= FLAGS[flag]
        mount(step["source"], step["target"], step["fstype"], flags, step.get("data"))
    elif op == "bind":
        mount(step["source"], step["target"], None, MS_BIND | MS_REC, None)
    elif op == "mkdir":
        os.makedirs(step["path"], exist_ok=True)
        os.chmod(step["path"], step["mode"])
    elif op == "mknod":
        path = step["path"]
        os.mknod(path, stat.S_IFCHR | step["mode"], os.makedev(step["major"], step["minor"]))
        os.chmod(path, step["mode"])
        group = step.get("group")
        if group:
            try:
                os.chown(path, 0, grp.getgrnam(group).gr_gid)
            except KeyError:
                pass  # no such group on this machine: root keeps the node
    elif op == "symlink":
        os.symlink(step["target"], step["path"])
    else:
        raise ValueError(f"unknown step {op!r}")


def main() -> int:
    plan = json.load(sys.stdin)
    os.umask(0o022)
    for number, step in enumerate(plan, 1):
        try:
            apply(step)
        except (OSError, ValueError, KeyError) as exc:
            sys.stderr.write(f"lab host setup: step {number} {json.dumps(step)} failed: {exc}\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
