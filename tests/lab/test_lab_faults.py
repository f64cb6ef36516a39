"""Each fault control has the effect it claims, and --restore undoes it.

Faults go through the command line (`llmfleet lab.fault ...`, the same tasks as
`invoke lab.fault`) and are measured from the control side with real tools:
ssh, ping, docker over ssh. Every test restores its host, also when it fails.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from llmfleet.lab import lab_fault, lab_status
from tests.helpers import cli

pytestmark = pytest.mark.lab


@pytest.fixture
def victim(lab):
    """The last lab host, restored after the test whatever happened."""
    host = lab.hosts[-1]
    yield host
    lab_fault(host.name, "restore")
    row = next(r for r in lab_status() if r["name"] == host.name)
    assert row["faults"] == {} and not row["problems"]


def _fault(host: str, *flags: str) -> None:
    r = cli("lab.fault", "--host", host, *flags)
    assert r.code == 0, r.stderr


def _push_rate(lab_ssh, address: str, nbytes: int) -> float:
    """Bytes per second of nbytes sent to the host through ssh (the image push path)."""
    payload = b"\0" * nbytes
    started = time.monotonic()
    out = lab_ssh(address, "cat > /dev/null", input=payload, timeout=120)
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    return nbytes / took


def _ping_loss(address: str, count: int = 200) -> float:
    out = subprocess.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.005", "-W", "1", address],
                         capture_output=True, text=True, timeout=60, check=False)
    return float(re.search(r"([\d.]+)% packet loss", out.stdout).group(1))


def test_cut_host_times_out_and_restore_brings_it_back(victim, lab_ssh):
    assert lab_ssh(victim.address, "true").returncode == 0
    _fault(victim.name, "--cut")
    started = time.monotonic()
    out = lab_ssh(victim.address, "true", connect_timeout=2, timeout=30)
    took = time.monotonic() - started
    assert out.returncode == 255
    assert "timed out" in out.stderr.lower(), out.stderr
    assert took >= 1.9  # it waited for the timeout: nothing answered, not even a refusal
    _fault(victim.name, "--restore")
    assert lab_ssh(victim.address, "hostname").stdout.strip() == victim.name


def test_slowed_link_is_measurably_slower(victim, lab_ssh):
    fast = _push_rate(lab_ssh, victim.address, 8_000_000)
    _fault(victim.name, "--slow", "8")
    slow = _push_rate(lab_ssh, victim.address, 2_000_000)
    limit = 8_000_000 / 8  # 8 Mbit/s in bytes/s
    assert slow < 1.25 * limit, f"{slow:.0f} B/s through an 8 Mbit/s link"
    assert slow > 0.3 * limit, f"{slow:.0f} B/s: far below the cap"
    assert fast > 4 * slow, f"before {fast:.0f} B/s, after {slow:.0f} B/s"
    _fault(victim.name, "--restore")
    assert _push_rate(lab_ssh, victim.address, 8_000_000) > 4 * slow


def test_loss_drops_packets(victim):
    assert _ping_loss(victim.address, 50) == 0.0
    _fault(victim.name, "--loss", "50")
    lost = _ping_loss(victim.address)
    assert 30.0 <= lost <= 70.0, f"{lost}% lost at --loss 50"
    _fault(victim.name, "--restore")
    assert _ping_loss(victim.address, 50) == 0.0


def test_stop_docker_makes_docker_fail_over_ssh(victim, lab_ssh):
    assert lab_ssh(victim.address, "docker info --format '{{.ServerVersion}}'").returncode == 0
    _fault(victim.name, "--stop-docker")
    out = lab_ssh(victim.address, "docker info --format '{{.ServerVersion}}'")
    assert out.returncode != 0
    assert "Cannot connect to the Docker daemon" in out.stderr or "docker.sock" in out.stderr, out.stderr
    assert lab_ssh(victim.address, "true").returncode == 0  # the host itself is still there
    _fault(victim.name, "--restore")
    assert lab_ssh(victim.address, "docker info --format '{{.ServerVersion}}'").returncode == 0


def test_stop_ssh_refuses_connections(victim, lab_ssh):
    _fault(victim.name, "--stop-ssh")
    started = time.monotonic()
    out = lab_ssh(victim.address, "true", connect_timeout=5, timeout=30)
    assert out.returncode == 255 and "Connection refused" in out.stderr, out.stderr
    assert time.monotonic() - started < 3  # refused at once, unlike a cut
    _fault(victim.name, "--restore")
    assert lab_ssh(victim.address, "hostname").stdout.strip() == victim.name


def test_fault_flags_are_checked(lab):
    host = lab.hosts[0].name
    assert cli("lab.fault", "--host", host).code == 2
    assert cli("lab.fault", "--host", host, "--cut", "--stop-ssh").code == 2
    assert cli("lab.fault", "--host", host, "--loss", "150").code == 2
    assert cli("lab.fault", "--host", host, "--slow", "fast").code == 2
    r = cli("lab.fault", "--host", "lab99", "--cut")
    assert r.code == 2 and "lab99" in r.stderr
    assert next(row for row in lab_status() if row["name"] == host)["faults"] == {}
