"""Text and argv the lab hands to its daemons and to the toolkit: pure builders.

sshd_config, dockerd command lines, known_hosts and the lab inventory are all
built here from plain values, so tests compare them exactly.
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Mapping, Sequence

from .layout import DOCKER_SOCKET, REMOTE_DIR, SESSION_PATH, HostFiles

RUNTIME = "labrunc"


def sshd_config(name: str, address: str) -> str:
    """One host's sshd: key auth only, root allowed, its own host key, no PAM/systemd."""
    key = HostFiles.inside(HostFiles.SSH, "ssh_host_ed25519_key")
    lines = [
        f"# Written by `invoke lab.up` for the simulated host {name}.",
        f"ListenAddress {address}:22",
        f"HostKey {key}",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "MaxSessions 64",
        "MaxStartups 64",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "AcceptEnv LANG LC_*",
        # A real ROCm host puts /opt/rocm/bin on PATH through its profile; sessions here get it directly.
        f"SetEnv PATH={SESSION_PATH}",
        "Subsystem sftp internal-sftp",
        "LogLevel INFO",
    ]
    return "\n".join(lines) + "\n"


def dockerd_argv(
    *,
    data_root: str,
    config_file: str,
    runtime: str,
    cgroup_parent: str,
    host_socket: str = DOCKER_SOCKET,
    storage_driver: str = "overlay2",
) -> list[str]:
    """A Docker engine that touches neither iptables nor a bridge and runs containers through labrunc.

    labrunc drops capabilities this machine cannot grant (see files/labrunc), so
    the cookbook's ``--privileged --cap-add=...`` flag set runs unchanged.
    """
    return [
        "/usr/sbin/dockerd",
        "--config-file", config_file,
        "--data-root", data_root,
        "--host", "unix://" + host_socket,
        "--storage-driver", storage_driver,
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--bridge=none",
        "--userland-proxy=false",
        "--exec-opt", "native.cgroupdriver=cgroupfs",
        "--cgroup-parent", cgroup_parent,
        "--add-runtime", f"{RUNTIME}={runtime}",
        "--default-runtime", RUNTIME,
        "--shutdown-timeout", "3",
        "--log-level", "warn",
    ]


def daemon_json(key_path: str, registry: str | None = None, mirror: bool = False) -> str:
    """The engine's config file: its own identity key (20.10 otherwise shares /etc/docker/key.json),
    and the lab registry (plain HTTP on the bridge), as a mirror of Docker Hub for hosts."""
    doc: dict = {"deprecated-key-path": key_path}
    if registry:
        doc["insecure-registries"] = [registry]
        if mirror:
            doc["registry-mirrors"] = [f"http://{registry}"]
    return json.dumps(doc, indent=2) + "\n"


def sshd_argv(config: str) -> list[str]:
    return ["/usr/sbin/sshd", "-D", "-e", "-f", config]


def known_hosts(entries: Iterable[tuple[str, str, str]]) -> str:
    """known_hosts lines for (name, address, public key line): one by address and one by name."""
    out = ["# Written by `invoke lab.up`: the lab hosts' own ed25519 host keys."]
    for name, address, pubkey in entries:
        keytype, blob = _key_fields(pubkey)
        out.append(f"{address} {keytype} {blob}")
        out.append(f"{name} {keytype} {blob}")
    return "\n".join(out) + "\n"


def _key_fields(pubkey: str) -> tuple[str, str]:
    parts = pubkey.split()
    if len(parts) < 2 or not parts[0].startswith("ssh-"):
        raise ValueError(f"not an OpenSSH public key line: {pubkey[:40]!r}")
    return parts[0], parts[1]


_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+-]+$")
_SPECIAL = {"true", "false", "yes", "no", "null", "on", "off", "y", "n", "~"}


def _scalar(value: object) -> str:
    """A YAML scalar: bare when unambiguous, JSON-quoted (which is valid YAML) otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and text[0] not in "-+.0123456789:@" and text.lower() not in _SPECIAL:
        return text
    return json.dumps(text)


def inventory_yaml(
    hosts: Sequence[tuple[str, str]],
    *,
    ssh_key: str,
    known_hosts_file: str,
    control_docker_host: str,
    datasets: Mapping[str, str],
) -> str:
    """The lab inventory in the exact shape the deploy engine reads (see the lab issue)."""
    lines = [
        "# Written by `invoke lab.up`: the lab's simulated MI300X hosts. Not committed.",
        "all:",
        "  children:",
        "    lab:",
        "      hosts:",
    ]
    for name, address in hosts:
        lines.append(f"        {name}: {{ansible_host: {address}}}")
    vars_: list[tuple[str, object]] = [
        ("ansible_user", "root"),
        ("ansible_port", 22),
        ("ansible_ssh_private_key_file", ssh_key),
        ("known_hosts_file", known_hosts_file),
        ("hardware", "mi300x"),
        ("control_docker_host", control_docker_host),
        # no registry is reachable from the lab: images are pushed from the control engine
        ("image_source", "push"),
        # the simulated server loads in seconds; real hosts keep the 30-minute default
        ("health_timeout", 300),
        # and is up ~3 s after its container starts: poll each second, not every 5 s (a wait per deploy)
        ("health_interval", 1),
        # lab hosts share this machine's cores: one host's benchmark at a time, so that its client
        # and server measure the simulated GPU, not the other hosts' clients (real hosts: all at once)
        ("bench_forks", 1),
        # lab hosts share this machine's /etc: host tuning writes into each host's private remote_dir
        ("sysctl_conf_dir", f"{REMOTE_DIR}/etc/sysctl.d"),
        ("docker_daemon_json", f"{REMOTE_DIR}/etc/docker/daemon.json"),
    ]
    for key in ("sharegpt", "gsm8k"):
        if key in datasets:
            vars_.append((f"{key}_file", datasets[key]))
    vars_.append(("lab", True))
    lines.append("      vars:")
    lines.extend(f"        {k}: {_scalar(v)}" for k, v in vars_)
    return "\n".join(lines) + "\n"
