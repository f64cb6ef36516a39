"""The `ssh` command line `invoke exec` runs, and how its exit is read (no ssh started here)."""

from __future__ import annotations

from pathlib import Path

from llmfleet import sshcli
from llmfleet.transport import Endpoint

EP = Endpoint("h1", "198.51.100.7", port=2222, user="ops", key_file="/keys/id", known_hosts_file="/kh")


def _opt(words: list[str], name: str) -> list[str]:
    return [words[i + 1].split("=", 1)[1] for i, w in enumerate(words) if w == "-o" and words[i + 1].startswith(name + "=")]


def test_host_keys_are_checked_against_the_inventorys_file_only_and_nothing_prompts():
    words = sshcli.argv(EP, "amd-smi static")
    assert _opt(words, "StrictHostKeyChecking") == ["yes"] and _opt(words, "BatchMode") == ["yes"]
    assert _opt(words, "UserKnownHostsFile") == ["/kh"] and _opt(words, "GlobalKnownHostsFile") == ["/dev/null"]
    assert words[words.index("-p") + 1] == "2222" and words[words.index("-l") + 1] == "ops"
    assert words[words.index("-i") + 1] == "/keys/id" and _opt(words, "IdentitiesOnly") == ["yes"]


def test_the_address_cannot_be_read_as_an_option_and_the_command_is_one_word():
    words = sshcli.argv(Endpoint("h", "-oProxyCommand=touch /tmp/x"), "echo a; echo b")
    assert words[-3:] == ["--", "-oProxyCommand=touch /tmp/x", "echo a; echo b"]
    assert "-l" not in words and "-i" not in words and _opt(words, "ProxyJump") == []
    assert _opt(sshcli.argv(Endpoint("h", "a", jump="none"), "true"), "ProxyJump") == ["none"]


def test_only_hosts_without_an_inventory_jump_go_through_ssh():
    assert sshcli.usable(Endpoint("h", "a")) and sshcli.usable(Endpoint("h", "a", jump="none"))
    assert not sshcli.usable(Endpoint("h", "a", jump="root@bastion"))


def test_exit_255_is_unreachable_only_when_ssh_says_so():
    own = sshcli.classify(EP, 255, "out\n", "my tool failed\n")
    assert own == sshcli.Answer(255, "out\n", "my tool failed\n")
    for stderr, words in [
        ("Host key verification failed.\r\n", "is not in /kh; verify the host, then: ssh-keyscan -p 2222 198.51.100.7 >> /kh"),
        ("@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n", "CHANGED (possible man-in-the-middle)"),
        ("ops@198.51.100.7: Permission denied (publickey).\r\n", "authentication to ops@198.51.100.7:2222 failed"),
        ("ssh: connect to host 198.51.100.7 port 2222: Connection timed out\r\n", "timed out"),
        ("ssh: connect to host 198.51.100.7 port 2222: Connection refused\r\n", "refused"),
        ("kex_exchange_identification: read: Connection reset by peer\r\n", "cannot connect to 198.51.100.7:2222"),
    ]:
        got = sshcli.classify(EP, 255, "", stderr)
        assert got.rc is None and words in got.stderr, (stderr, got)
    assert sshcli.classify(EP, 1, "", "Permission denied (publickey).").rc == 1  # not ssh's exit: the command's


def test_exec_loads_no_ssh_library_and_keeps_the_engines_default_forks():
    import subprocess
    import sys

    from llmfleet import runner
    from llmfleet.cli import exec_tasks

    assert exec_tasks.FORKS == runner.DEFAULT_FORKS
    code = ("import sys, llmfleet.cli, llmfleet.sshcli; from llmfleet.cli import exec_tasks; "
            "exec_tasks.targets('mi300-cluster', 'inventory/mi300-cluster.yml'); print(sorted(m for m in ('paramiko', 'fabric') if m in sys.modules))")  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "[]"


def test_a_proxy_anywhere_in_the_ssh_config_is_found_through_includes(tmp_path):
    user = tmp_path / "home" / ".ssh" / "config"
    user.parent.mkdir(parents=True)
    system = tmp_path / "etc" / "ssh_config"
    system.parent.mkdir()
    (system.parent / "ssh_config.d").mkdir()
    system.write_text(f"Include {system.parent}/ssh_config.d/*.conf\n#   ProxyCommand ssh -q -W %h:%p gateway\nHost *\n  SendEnv LANG\n")
    user.write_text("Host gpu*\n  User ops\n  ProxyJump none\n")
    assert not sshcli.config_may_proxy(str(user), str(system))  # Debian's commented example and `none` set nothing
    (system.parent / "ssh_config.d" / "site.conf").write_text("Host gpu*\n  ProxyJump bastion\n")
    assert sshcli.config_may_proxy(str(user), str(system))
    (system.parent / "ssh_config.d" / "site.conf").unlink()
    (user.parent / "more").write_text("Host x\n  proxycommand=nc %h %p\n")
    user.write_text("Include more\n")  # relative: under ~/.ssh
    assert sshcli.config_may_proxy(str(user), str(system))


def test_ssh_resolves_which_hosts_its_config_sends_through_a_jump_host(tmp_path):
    config = tmp_path / "config"
    config.write_text("Host 198.51.100.*\n  ProxyJump ops@bastion\nHost 203.0.113.9\n  ProxyCommand nc %h %p\n")
    assert sshcli.config_proxies(Endpoint("a", "198.51.100.7"), str(config))
    assert sshcli.config_proxies(Endpoint("b", "203.0.113.9"), str(config))
    assert not sshcli.config_proxies(Endpoint("c", "192.0.2.1"), str(config))


def test_the_key_exchange_leaves_out_only_the_costly_sntrup_hybrid_and_sharing_is_opt_in():
    words = sshcli.argv(EP, "true")
    assert _opt(words, "KexAlgorithms") == ["-sntrup*"]
    assert _opt(words, "ControlMaster") == [] and _opt(words, "ControlPersist") == []
    shared = sshcli.argv(EP, "true", persist_s=60, control_dir="/run/user/0/llmfleet-ssh")
    assert _opt(shared, "ControlMaster") == ["auto"] and _opt(shared, "ControlPersist") == ["60"]
    assert _opt(shared, "ControlPath") == ["/run/user/0/llmfleet-ssh/%C"]
    assert shared[-3:] == ["--", EP.address, "true"]
    assert _opt(sshcli.argv(EP, "true", persist_s=60, control_dir=None), "ControlMaster") == []


def test_the_socket_folder_is_private_and_never_someone_elses(monkeypatch):
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="sc"))  # short: pytest's tmp_path is too long for a socket path
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
        where = sshcli.control_dir()
        assert where == str(tmp_path / "llmfleet-ssh") and (tmp_path / "llmfleet-ssh").stat().st_mode & 0o777 == 0o700
        (tmp_path / "llmfleet-ssh").chmod(0o755)
        assert sshcli.control_dir() is None  # open to others: connections are not shared through it
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / ("x" * 60)))
        assert sshcli.control_dir() is None  # a socket path there would be too long
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
