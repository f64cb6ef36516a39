"""Where the lab keeps its files, on the control side and inside each host.

Pure path arithmetic. Inside a host's mount namespace the host's own directory is
bind-mounted at ``IN_HOST`` (on the host's private /run) before /root is covered,
so the daemons' paths stay short and valid wherever the project is checked out,
even under /root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .topology import SUFFIX

IN_HOST = "/run/llmfleet-lab"  # the host's directory, as seen inside the host
REMOTE_DIR = "/var/lib/llmfleet"  # the toolkit's directory on every host (HF cache in hf/)
ROCM_BIN = "/opt/rocm/bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SESSION_PATH = DEFAULT_PATH + ":" + ROCM_BIN  # what an SSH session on a lab host gets
DOCKER_SOCKET = "/var/run/docker.sock"  # each host's engine, on its private /run
SMI_DATA = "/opt/rocm/share/llmfleet-lab"  # the fake amd-smi/rocm-smi data, inside a host


def control_cache_dir() -> Path:
    """The control engine's data root: kept across lab.down so built images survive; one per lab instance."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmfleet" / f"control-docker{SUFFIX}"


@dataclass(frozen=True)
class Layout:
    """The lab's files under its state directory (``llmfleet.paths.lab_state_dir()``)."""

    state_dir: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / ".lock"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def datasets_dir(self) -> Path:
        return self.state_dir / "datasets"

    @property
    def control_dir(self) -> Path:
        return self.state_dir / "control"

    @property
    def control_socket(self) -> Path:
        return self.control_dir / "docker.sock"

    @property
    def control_docker_host(self) -> str:
        return "unix://" + str(self.control_socket)

    def host_dir(self, name: str) -> Path:
        return self.state_dir / "hosts" / name

@dataclass(frozen=True)
class HostFiles:
    """One host's directory, as a control-side path (``real``) and inside the host (``inside``)."""

    real: Path

    # Sub-directories and files, relative to the host directory.
    HOME = "root"
    REMOTE = "varlib"
    OPT = "opt"
    TMP = "tmp"  # the host's own /tmp, as a real host has (another lab's relay folders are not its business)
    SYSMODULE = "sysmodule"
    PROC = "proc"
    SSH = "ssh"
    DOCKER = "docker"
    BIN = "bin"
    LOG = "log"

    def path(self, *parts: str) -> Path:
        return self.real.joinpath(*parts)

    @staticmethod
    def inside(*parts: str) -> str:
        return "/".join((IN_HOST,) + parts)

    @property
    def hf_home(self) -> Path:
        """The host's /var/lib/llmfleet/hf, seen from the control side."""
        return self.path(self.REMOTE, "hf")

    @property
    def host_key(self) -> Path:
        return self.path(self.SSH, "ssh_host_ed25519_key")

    @property
    def sshd_config(self) -> Path:
        return self.path(self.SSH, "sshd_config")

    def log(self, name: str) -> Path:
        return self.path(self.LOG, name)
