"""What a lab host's private mount namespace looks like: a plan of mount steps, built purely.

The plan is a list of small JSON-able steps that ``nsapply.py`` carries out inside
the host's namespaces (it runs there under the system python). Nothing in the
plan touches the real machine: every mount lands in the host's private mount
namespace, and the real /dev, /run, /root, /opt are only covered, never changed.

The fake GPU device nodes are character devices 1:3 (the same as /dev/null), so
``docker run --device=/dev/kfd --device=/dev/dri`` finds real device nodes to
pass through, and a program that opens them reads nothing. /dev/mem is faked the
same way: the cookbook passes it through, and no lab container needs physical memory.
"""

from __future__ import annotations

from typing import Any

from .layout import IN_HOST, REMOTE_DIR, HostFiles

Step = dict[str, Any]

NULL = (1, 3)
GPU_COUNT = 8
FIRST_RENDER_MINOR = 128

# (path, (major, minor), mode): the ordinary nodes of a small /dev, then the fake GPU nodes.
BASE_DEVICES: list[tuple[str, tuple[int, int], int]] = [
    ("/dev/null", (1, 3), 0o666),
    ("/dev/zero", (1, 5), 0o666),
    ("/dev/full", (1, 7), 0o666),
    ("/dev/random", (1, 8), 0o666),
    ("/dev/urandom", (1, 9), 0o666),
    ("/dev/tty", (5, 0), 0o666),
]


def fake_device_paths(count: int = GPU_COUNT) -> list[str]:
    """The device nodes the cookbook passes through: /dev/kfd, /dev/mem, a card and a render node per GPU."""
    paths = ["/dev/kfd", "/dev/mem"]
    paths += [f"/dev/dri/card{i}" for i in range(count)]
    paths += [f"/dev/dri/renderD{FIRST_RENDER_MINOR + i}" for i in range(count)]
    return paths


def amdgpu_modules_line() -> str:
    """A /proc/modules line for a loaded amdgpu (size, refcount, deps, state, offset)."""
    return "amdgpu 19705856 0 - Live 0x0000000000000000\n"


def proc_modules(real: str | None) -> str:
    """The host's /proc/modules: the real content with amdgpu added (once)."""
    text = real or ""
    if any(line.split(" ", 1)[0] == "amdgpu" for line in text.splitlines()):
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return amdgpu_modules_line() + text


def sysmodule_files() -> dict[str, str]:
    """Files of the fake /sys/module/amdgpu (overlaid on the real /sys/module).

    Kernels without module support (like this machine's) have no /proc/modules to
    cover; /sys/module/<name> exists for loaded and built-in drivers alike, so the
    amdgpu marker is there in every case.
    """
    return {
        "amdgpu/initstate": "live\n",
        "amdgpu/refcnt": "0\n",
        "amdgpu/version": "6.10.5\n",
        "amdgpu/parameters/ras_enable": "-1\n",
        "amdgpu/uevent": "",
    }


def mount_plan(
    *,
    name: str,
    host_dir: str,
    has_proc_modules: bool,
    has_numa_balancing: bool,
) -> list[Step]:
    """The steps that turn a fresh private mount namespace into lab host ``name``.

    ``host_dir`` is the host's directory on the control side; it is bound at
    IN_HOST first, and every later source is taken from there. The mount point
    REMOTE_DIR must exist on the real filesystem (lab.up creates it, empty).
    """
    inside = HostFiles.inside
    steps: list[Step] = [
        {"op": "hostname", "name": name},
        # Copies of the root namespace's netns bind mounts would keep other hosts' namespaces alive.
        {"op": "umount", "path": "/run/netns", "lazy": True, "if_mounted": True},
        {"op": "mount", "fstype": "tmpfs", "source": "labrun", "target": "/run",
         "flags": ["nosuid", "nodev"], "data": "mode=755,size=256m"},
        {"op": "mkdir", "path": "/run/sshd", "mode": 0o755},
        {"op": "mkdir", "path": "/run/lock", "mode": 0o1777},
        {"op": "mkdir", "path": IN_HOST, "mode": 0o755},
        {"op": "bind", "source": host_dir, "target": IN_HOST},
        # A private /dev: sshd, dockerd and `docker run --privileged` see only these nodes.
        {"op": "mount", "fstype": "tmpfs", "source": "labdev", "target": "/dev",
         "flags": ["nosuid"], "data": "mode=755,size=64k"},
    ]
    for path, (major, minor), mode in BASE_DEVICES:
        steps.append({"op": "mknod", "path": path, "major": major, "minor": minor, "mode": mode})
    steps += [
        {"op": "mkdir", "path": "/dev/pts", "mode": 0o755},
        {"op": "mount", "fstype": "devpts", "source": "labpts", "target": "/dev/pts",
         "flags": ["nosuid", "noexec"], "data": "newinstance,ptmxmode=0666,mode=0620,gid=5"},
        {"op": "symlink", "target": "pts/ptmx", "path": "/dev/ptmx"},
        {"op": "mkdir", "path": "/dev/shm", "mode": 0o1777},
        {"op": "mount", "fstype": "tmpfs", "source": "labshm", "target": "/dev/shm",
         "flags": ["nosuid", "nodev"], "data": "mode=1777,size=1g"},
        {"op": "symlink", "target": "/proc/self/fd", "path": "/dev/fd"},
        {"op": "symlink", "target": "/proc/self/fd/0", "path": "/dev/stdin"},
        {"op": "symlink", "target": "/proc/self/fd/1", "path": "/dev/stdout"},
        {"op": "symlink", "target": "/proc/self/fd/2", "path": "/dev/stderr"},
        {"op": "mkdir", "path": "/dev/dri", "mode": 0o755},
    ]
    for path in fake_device_paths():
        # video (gid 44 on Debian) owns the GPU nodes on a real host; kfd is 0666 there too.
        steps.append({"op": "mknod", "path": path, "major": NULL[0], "minor": NULL[1],
                      "mode": 0o666, "group": "video"})
    steps += [
        {"op": "bind", "source": inside(HostFiles.HOME), "target": "/root"},
        {"op": "bind", "source": inside(HostFiles.REMOTE), "target": REMOTE_DIR},
        {"op": "bind", "source": inside(HostFiles.OPT), "target": "/opt"},
        {"op": "bind", "source": inside(HostFiles.TMP), "target": "/tmp"},
        {"op": "mount", "fstype": "overlay", "source": "labmodules", "target": "/sys/module",
         "flags": ["ro"], "data": f"lowerdir={inside(HostFiles.SYSMODULE)}:/sys/module"},
    ]
    if has_proc_modules:
        steps.append({"op": "bind", "source": inside(HostFiles.PROC, "modules"), "target": "/proc/modules"})
    if has_numa_balancing:
        steps.append({"op": "bind", "source": inside(HostFiles.PROC, "numa_balancing"),
                      "target": "/proc/sys/kernel/numa_balancing"})
    return steps


def control_plan(opt_dir: str) -> list[Step]:
    """The control engine's namespace: its own /run (exec root, containerd socket) and /opt.

    containerd creates /opt/containerd at start; the bind keeps that off the real machine.
    """
    return [
        {"op": "bind", "source": opt_dir, "target": "/opt"},
        {"op": "umount", "path": "/run/netns", "lazy": True, "if_mounted": True},
        {"op": "mount", "fstype": "tmpfs", "source": "labrun", "target": "/run",
         "flags": ["nosuid", "nodev"], "data": "mode=755,size=64m"},
        {"op": "mkdir", "path": "/run/lock", "mode": 0o1777},
    ]
