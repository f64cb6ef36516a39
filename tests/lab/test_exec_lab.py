"""`invoke exec` on real sshd: the OpenSSH path and the engine's path give the same answers.

Host keys are checked against the inventory's known_hosts file only (unknown and changed
keys fail the host, the others answer), a command's own exit 255 is not taken for an
unreachable host, and a host behind an inventory jump host goes through the engine's
transport (every hop checked). LLMFLEET_TEST_LAB_IMAGES=0 is enough.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfleet.cli import exec_tasks
from llmfleet.transport import Endpoint
from tests.helpers import cli

pytestmark = pytest.mark.lab


def _lines_for(known_hosts: Path, address: str) -> list[str]:
    return [line for line in known_hosts.read_text().splitlines() if line.split(" ", 1)[0] == address]


def _eps(lab, known_hosts: Path, jump: str | None = None) -> list[Endpoint]:
    return [Endpoint(name=h.name, address=h.address, user="root", key_file=str(lab.ssh_key),
                     known_hosts_file=str(known_hosts), jump=jump) for h in lab.hosts]  # fmt: skip


def test_every_host_answers_and_a_commands_own_255_is_its_exit_code(lab) -> None:
    out = exec_tasks.run_everywhere(_eps(lab, lab.known_hosts), "hostname; echo err >&2; exit 255")
    assert {n: (o.rc, o.stdout.strip(), o.stderr.strip()) for n, o in out.items()} == {
        h.name: (255, h.name, "err") for h in lab.hosts
    }


def test_unknown_and_changed_host_keys_fail_only_their_host(lab, tmp_path: Path) -> None:
    first, second, *rest = lab.hosts
    known = tmp_path / "known_hosts"
    changed = [line.replace(first.address, second.address, 1) for line in _lines_for(lab.known_hosts, first.address)]
    others = [line for h in rest for line in _lines_for(lab.known_hosts, h.address)]
    known.write_text("\n".join(changed + others) + "\n")  # first: no key; second: first's key; the rest: theirs
    out = exec_tasks.run_everywhere(_eps(lab, known), "hostname")
    assert out[first.name].rc is None and f"host key of {first.address}:22 is not in {known}" in out[first.name].stderr
    assert out[second.name].rc is None and f"host key of {second.address}:22 CHANGED" in out[second.name].stderr
    assert all(out[h.name].rc == 0 and out[h.name].stdout.strip() == h.name for h in rest)


def test_a_host_behind_an_inventory_jump_host_goes_through_the_checked_hops(lab, tmp_path: Path) -> None:
    jump, target = lab.hosts[0], lab.hosts[1]
    only_target = tmp_path / "known_hosts"
    only_target.write_text("\n".join(_lines_for(lab.known_hosts, target.address)) + "\n")
    ep = Endpoint(name=target.name, address=target.address, user="root", key_file=str(lab.ssh_key),
                  known_hosts_file=str(only_target), jump=f"root@{jump.address}")  # fmt: skip
    refused = exec_tasks.run_everywhere([ep], "hostname")[target.name]
    assert refused.rc is None and f"jump host {jump.address}:22" in refused.stderr  # the jump host's key was checked
    ok = exec_tasks.run_everywhere([Endpoint(**{**ep.__dict__, "known_hosts_file": str(lab.known_hosts)})],
                                   "echo $SSH_CONNECTION")[target.name]  # fmt: skip
    assert ok.rc == 0 and ok.stdout.split()[0] == jump.address


def test_a_second_command_reuses_the_open_connection_and_lab_down_would_close_it(lab) -> None:
    from llmfleet import sshcli

    eps = _eps(lab, lab.known_hosts)
    persist = {ep.name: 60 for ep in eps}
    try:
        first = exec_tasks.run_everywhere(eps, "echo $PPID", persist=persist)
        again = exec_tasks.run_everywhere(eps, "echo $PPID", persist=persist)
        assert all(o.rc == 0 for o in [*first.values(), *again.values()])
        # the same sshd session process served both commands: one connection, no second handshake
        assert {n: o.stdout for n, o in first.items()} == {n: o.stdout for n, o in again.items()}
    finally:
        assert all(sshcli.stop_shared(ep) for ep in eps)  # each host had one open; now closed
    fresh = exec_tasks.run_everywhere(eps, "echo $PPID", persist={ep.name: 0 for ep in eps})
    assert all(fresh[n].stdout != first[n].stdout for n in first) and not any(sshcli.stop_shared(ep) for ep in eps)


def test_the_cli_runs_on_the_inventorys_hosts_and_masks_the_token(lab) -> None:
    token = "hf_execLabToken0123456789abcdef"
    r = cli("exec", "--hosts", "lab", "--cmd", f"hostname; echo {token}", "--json", env={"HF_TOKEN": token}, timeout=120)
    assert r.code == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert set(doc) == {h.name for h in lab.hosts} and token not in r.stdout + r.stderr
    assert all(doc[h.name]["rc"] == 0 and doc[h.name]["stdout"].startswith(h.name + "\n") for h in lab.hosts)
    failed = cli("exec", "--hosts", "lab", "--cmd", "test $(hostname) != " + lab.hosts[0].name,
                 "--set", "ssh_control_persist=0", timeout=120)  # fmt: skip
    assert failed.code == 1 and f"failed on 1 of {len(lab.hosts)} host(s): {lab.hosts[0].name}" in failed.stderr
