"""Jump hosts on real sshd: lab1 is the jump host for lab2, and its host key is checked like lab2's.

Uses the session lab (tests/conftest.py) and the real Session (fabric + paramiko);
LLMFLEET_TEST_LAB_IMAGES=0 LLMFLEET_TEST_LAB_HOSTS=2 is enough.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.transport import Endpoint, Session, Unreachable

pytestmark = pytest.mark.lab


def _lines_for(known_hosts: Path, address: str) -> list[str]:
    return [line for line in known_hosts.read_text().splitlines() if line.split(" ", 1)[0] == address]


def _endpoint(lab, known_hosts: Path) -> Endpoint:
    jump, target = lab.hosts[0], lab.hosts[1]
    return Endpoint(name=target.name, address=target.address, user="root", key_file=str(lab.ssh_key),
                    known_hosts_file=str(known_hosts), jump=f"root@{jump.address}")  # fmt: skip


@pytest.fixture
def two_hosts(lab) -> None:
    if len(lab.hosts) < 2:
        pytest.skip("needs two lab hosts")


def test_through_a_jump_host_whose_key_is_known(lab, two_hosts: None, tmp_path: Path) -> None:
    jump, target = lab.hosts[0], lab.hosts[1]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(_lines_for(lab.known_hosts, jump.address) + _lines_for(lab.known_hosts, target.address)) + "\n")
    with Session(_endpoint(lab, known)) as session:
        out = session.run("hostname; echo $SSH_CONNECTION", timeout=30)
    assert out.ok, out.stderr
    name, via = out.stdout.split("\n", 1)
    assert name == target.name
    assert via.split()[0] == jump.address  # lab2 saw the connection come from lab1: it went through the jump host


def test_a_jump_host_missing_from_known_hosts_is_refused(lab, two_hosts: None, tmp_path: Path) -> None:
    jump, target = lab.hosts[0], lab.hosts[1]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(_lines_for(lab.known_hosts, target.address)) + "\n")  # lab2's key only
    with pytest.raises(Unreachable) as err:
        Session(_endpoint(lab, known)).open()
    message = str(err.value)
    assert message.startswith(f"jump host {jump.address}:22 (on the way to {target.name}): ")
    assert f"host key of {jump.address}:22 is not in {known}" in message


def test_a_jump_host_with_a_wrong_key_is_refused(lab, two_hosts: None, tmp_path: Path) -> None:
    jump, target = lab.hosts[0], lab.hosts[1]
    target_lines = _lines_for(lab.known_hosts, target.address)
    wrong = [line.replace(target.address, jump.address, 1) for line in target_lines]  # lab2's key under lab1's address
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(wrong + target_lines) + "\n")
    with pytest.raises(Unreachable) as err:
        Session(_endpoint(lab, known)).open()
    message = str(err.value)
    assert message.startswith(f"jump host {jump.address}:22 (on the way to {target.name}): ")
    assert "CHANGED" in message and str(known) in message


def test_the_target_behind_a_good_jump_host_is_still_checked(lab, two_hosts: None, tmp_path: Path) -> None:
    jump, target = lab.hosts[0], lab.hosts[1]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(_lines_for(lab.known_hosts, jump.address)) + "\n")  # lab1's key only
    with pytest.raises(Unreachable) as err:
        Session(_endpoint(lab, known)).open()
    assert str(err.value).startswith(f"host key of {target.address}:22 is not in {known}")
