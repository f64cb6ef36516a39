"""Jump hosts: Ansible's ssh args read into a ProxyJump, and every hop of a chain checks its host key.

The chain tests build real fabric Connections (nothing connects until ``open``);
the lab test (tests/lab/test_jump_hosts.py) proves it against real sshd.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import paramiko
import pytest
from fabric import Connection

from llmfleet.errors import InputError
from llmfleet.transport import (
    Endpoint,
    Session,
    Unreachable,
    _hops,
    check_jump,
    jump_from_args,
    parse_hop,
)


@pytest.mark.parametrize(
    ("common", "extra", "expected"),
    [
        (None, None, None),
        ("", "", None),
        ("-o ProxyJump=bastion", None, "bastion"),
        ("-o ProxyJump=ops@bastion:2222", None, "ops@bastion:2222"),
        ("-oProxyJump=bastion", None, "bastion"),
        ("-o 'ProxyJump bastion'", None, "bastion"),
        ("-o proxyjump=bastion", None, "bastion"),
        ("-J ops@bastion", None, "ops@bastion"),
        ("-Jops@bastion:2200", None, "ops@bastion:2200"),
        ("-J a,b@c:23", None, "a,b@c:23"),
        ("-J [2001:db8::1]:2222", None, "[2001:db8::1]:2222"),
        ("-J ssh://ops@bastion:22", None, "ssh://ops@bastion:22"),
        ("-o ProxyJump=none", None, "none"),
        (None, "-J bastion", "bastion"),
        # the first value wins (ssh's rule): common args come before extra args
        ("-J first", "-J second", "first"),
        ("-o ProxyJump=first -J second", None, "first"),
        # everything else is ignored: a ProxyCommand, other options, their values
        ('-o ProxyCommand="ssh -W %h:%p -q bastion"', None, None),
        ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null", None, None),
        ("-C -o ServerAliveInterval=30", "-o ProxyJump=bastion -v", "bastion"),
        ("-o ControlMaster=auto -o ControlPersist=60s", None, None),
    ],
)
def test_jump_from_args_reads_only_proxyjump(common: str | None, extra: str | None, expected: str | None) -> None:
    assert jump_from_args(common, extra) == expected


@pytest.mark.parametrize(
    ("common", "extra", "var", "why"),
    [
        ("-o ProxyJump='bastion", None, "ansible_ssh_common_args", "quotation"),
        (None, "-J", "ansible_ssh_extra_args", "without its value"),
        ("-J 'bad host'", None, "ansible_ssh_common_args", "is not [user@]host[:port]"),
        ("-J bastion:99999", None, "ansible_ssh_common_args", "not 1-65535"),
        ("-J -oProxyCommand=touch/tmp/x", None, "ansible_ssh_common_args", "is not [user@]host[:port]"),
        ("-J a,,b", None, "ansible_ssh_common_args", "is not [user@]host[:port]"),
        ("-J " + ",".join(["h"] * 9), None, "ansible_ssh_common_args", "more than 8 hops"),
        ("-o ProxyJump=a;reboot", None, "ansible_ssh_common_args", None),
    ],
)
def test_jump_from_args_refuses_what_is_not_a_jump_host(common: str | None, extra: str | None, var: str,
                                                        why: str | None) -> None:  # fmt: skip
    if why is None:  # `;` is not special to ssh: the host name is just odd, and stays one hop
        assert jump_from_args(common, extra) == "a;reboot"
        return
    with pytest.raises(InputError) as err:
        jump_from_args(common, extra)
    assert str(err.value).startswith(var + ": ")
    assert why in str(err.value)


@pytest.mark.parametrize(
    ("hop", "expected"),
    [
        ("bastion", (None, "bastion", None)),
        ("ops@10.0.0.1:2222", ("ops", "10.0.0.1", 2222)),
        ("[fe80::1%eth0]:22", (None, "fe80::1%eth0", 22)),
        ("ssh://root@gw", ("root", "gw", None)),
    ],
)
def test_parse_hop(hop: str, expected: tuple[str | None, str, int | None]) -> None:
    assert parse_hop(hop) == expected


@pytest.mark.parametrize("bad", ["", "@host", "a@", "host:", "host:0", "-x", "a b", "a@b@c", "[::1", "h:22:22"])
def test_parse_hop_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hop(bad)
    with pytest.raises(ValueError):
        check_jump(bad or ",")


ME = getpass.getuser()  # a jump host without a user gets the local user, as with ssh


def _assert_checked(conn: Connection, known_hosts: Path) -> None:
    client: paramiko.SSHClient = conn.client
    assert isinstance(client._policy, paramiko.RejectPolicy)
    assert len(client._system_host_keys) == 0
    assert client._host_keys_filename == str(known_hosts)
    assert client._host_keys.lookup("10.9.9.9") is not None  # the one key of our file, and nothing else
    assert len(client._host_keys.keys()) == 1


def _chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_config: str, jump: str | None) -> tuple[list[Connection], Path]:
    """The hops Session.open would connect through (without connecting), with HOME's ssh config set."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "config").write_text(ssh_config)
    monkeypatch.setenv("HOME", str(home))
    known = tmp_path / "known_hosts"
    key = paramiko.ECDSAKey.generate()
    known.write_text(f"10.9.9.9 {key.get_name()} {key.get_base64()}\n")
    session = Session(Endpoint(name="target", address="10.0.0.5", user="root", key_file="/k", known_hosts_file=str(known),
                               jump=jump))  # fmt: skip
    conn = session._connection("10.0.0.5", "root", 22, False)
    conn.gateway = session._gateway(conn, jump, 1)
    return _hops(conn), known


def _names(hops: list[Connection]) -> list[str]:
    return [f"{c.user}@{c.host}:{c.port}" for c in hops]


def test_inventory_chain_is_walked_in_openssh_order_and_every_hop_checks_keys(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    hops, known = _chain(tmp_path, monkeypatch, "", "ops@first:2201,second")
    # the host itself, then the hop before it, ... the first hop (the one we dial) last
    assert _names(hops) == ["root@10.0.0.5:22", f"{ME}@second:22", "ops@first:2201"]
    for hop in hops:
        _assert_checked(hop, known)


def test_ssh_config_proxyjump_is_ours_too_and_a_jump_hosts_own_jump_comes_first(tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    config = "Host 10.0.0.*\n  ProxyJump inner\nHost inner\n  HostName 10.1.0.1\n  ProxyJump ops@outer\n"
    hops, known = _chain(tmp_path, monkeypatch, config, None)
    assert _names(hops) == ["root@10.0.0.5:22", f"{ME}@10.1.0.1:22", "ops@outer:22"]
    for hop in hops:
        _assert_checked(hop, known)


def test_inventory_jump_wins_over_ssh_config_and_none_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = "Host 10.*\n  ProxyJump cfg-bastion\n"
    hops, _ = _chain(tmp_path, monkeypatch, config, "inv-bastion")
    assert _names(hops) == ["root@10.0.0.5:22", f"{ME}@inv-bastion:22"]
    # as with ssh -J: the jump host's own config applies to it; `Host *` does not make a hop jump via itself
    hops, _ = _chain(tmp_path, monkeypatch, "Host *\n  ProxyJump cfg-bastion\n", "inv-bastion")
    assert _names(hops) == ["root@10.0.0.5:22", f"{ME}@inv-bastion:22", f"{ME}@cfg-bastion:22"]
    hops, _ = _chain(tmp_path, monkeypatch, config, "none")
    assert _names(hops) == ["root@10.0.0.5:22"]


def test_a_proxycommand_stays_a_command_and_the_host_key_is_still_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hops, known = _chain(tmp_path, monkeypatch, "Host *\n  ProxyCommand nc -q0 %h %p\n", None)
    assert len(hops) == 1 and hops[0].gateway == "nc -q0 10.0.0.5 22"
    _assert_checked(hops[0], known)


def test_a_jump_loop_in_ssh_config_is_refused_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n"
    with pytest.raises(Unreachable, match="more than 8 jump hosts"):
        _chain(tmp_path, monkeypatch, config, "a")


def test_a_bad_jump_on_an_endpoint_is_unreachable_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(Unreachable, match="bad jump host for target: 'a b' is not"):
        Session(Endpoint(name="target", address="127.0.0.1", jump="a b")).open()


def test_paramiko_log_lines_stay_off_the_console():
    """A health probe before the server listens makes paramiko log "Secsh channel N open FAILED" at ERROR; the
    product reports the probe itself, and the line was printed by Python's last-resort handler on every deploy."""
    import subprocess
    import sys

    code = ("import logging, llmfleet.transport; "
            "logging.getLogger('paramiko.transport').error('Secsh channel 13 open FAILED: Connection refused')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == ""
    without = subprocess.run([sys.executable, "-c", code.replace("llmfleet.transport", "paramiko")], capture_output=True,
                             text=True, check=True)  # fmt: skip
    assert "open FAILED" in without.stderr  # what the handler keeps away
