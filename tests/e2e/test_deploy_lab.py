"""`invoke deploy` end to end on the lab: real SSH, real Docker engines, the simulated server.

Order matters within this module (first deploy, no-op redeploy, a changed flag),
so the tests share one lab and run top to bottom.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import cli

pytestmark = pytest.mark.lab

TOKEN = "hf_labSecretTokenValue0123456789"
ENV = {"HF_TOKEN": TOKEN}


def _deploy(*extra: str, hosts: str = "lab"):
    return cli("deploy", "--hosts", hosts, "--model", "scout", "--json", *extra, env=ENV, timeout=1200)


def _models(address: str) -> list[str]:
    with urllib.request.urlopen(f"http://{address}:8000/v1/models", timeout=10) as resp:
        return [m["id"] for m in json.loads(resp.read())["data"]]


def _assert_no_secret(run_dir: Path) -> None:
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"token leaked into {path}"


@pytest.fixture(scope="module", autouse=True)
def no_server_yet(lab):
    """Start from hosts without a server container (the session's lab may have served before)."""
    r = cli("stop", "--hosts", "lab")
    assert r.code == 0, r.stderr[-2000:]


def test_first_deploy_brings_every_host_to_a_serving_container(lab):
    r = _deploy()
    assert r.code == 0, r.stderr[-3000:]
    assert TOKEN not in r.stdout + r.stderr
    recap = r.json["recap"]
    assert sorted(recap) == sorted(h.name for h in lab.hosts)
    created = [s for s in r.json["steps"] if s["step"] == "server container"]
    assert len(created) == len(lab.hosts) and all("created" in s["message"] for s in created)
    for host in lab.hosts:
        assert recap[host.name]["failed"] == 0 and recap[host.name]["changed"] >= 1
        assert _models(host.address) == ["meta-llama/Llama-4-Scout-17B-16E-Instruct"]
    archive = Path(r.json["archive"])
    events = [json.loads(line) for line in (archive / "events.jsonl").read_text().splitlines()]
    assert any(e["command"].startswith("docker run -d --name llmfleet-sglang --ipc=host") for e in events)
    assert all({"host", "command", "exit_code", "duration_s"} <= set(e) for e in events)
    _assert_no_secret(archive)


def test_secret_reaches_the_container_only_through_a_0600_file(lab):
    host = lab.hosts[0]
    from llmfleet.lab import host_exec

    st = host_exec(host.name, ["stat", "-c", "%a %U", "/var/lib/llmfleet/secrets/llmfleet-sglang.env"])
    assert st.stdout.split() == ["600", "root"]
    inspect = host_exec(host.name, ["docker", "inspect", "--format", "{{json .Args}}", "llmfleet-sglang"])
    assert TOKEN not in inspect.stdout  # not on the container's command line
    env = host_exec(host.name, ["docker", "exec", "llmfleet-sglang", "printenv", "HF_TOKEN"])
    assert env.stdout.strip() == TOKEN  # but the server has it


def test_second_deploy_changes_nothing(lab):
    r = _deploy()
    assert r.code == 0, r.stderr[-3000:]
    for host, rec in r.json["recap"].items():
        assert rec["changed"] == 0 and rec["failed"] == 0, (host, rec)


def test_serial_batches_reach_every_host(lab):
    r = _deploy("--serial", "50%")
    assert r.code == 0, r.stderr[-3000:]
    assert sorted(r.json["recap"]) == sorted(h.name for h in lab.hosts)
    assert all(rec["changed"] == 0 and rec["failed"] == 0 for rec in r.json["recap"].values())


def test_an_unknown_host_key_is_refused(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = _deploy("--set", f"known_hosts_file={empty}")
    assert r.code == 1
    for host in lab.hosts:
        rec = r.json["recap"][host.name]
        assert rec["unreachable"] is True and f"host key of {host.address}:22 is not in {empty}" in rec["message"]


def test_check_mode_reports_the_change_and_makes_none(lab):
    before = {h.name: _container_id(h.name) for h in lab.hosts}
    r = _deploy("--check", "--context-length", "32768")
    assert r.code == 0, r.stderr[-3000:]
    for host, rec in r.json["recap"].items():
        assert rec["changed"] >= 1, (host, rec)
    assert {h.name: _container_id(h.name) for h in lab.hosts} == before
    assert "--context-length 32768" in " ".join(c for cmds in r.json["commands"].values() for c in cmds)


def test_changing_a_flag_recreates_exactly_the_changed_containers(lab):
    first, rest = lab.hosts[0], lab.hosts[1:]
    before = {h.name: _container_id(h.name) for h in lab.hosts}
    r = _deploy("--context-length", "32768", hosts=first.name)
    assert r.code == 0, r.stderr[-3000:]
    assert r.json["recap"][first.name]["changed"] >= 1
    assert _container_id(first.name) != before[first.name]
    for h in rest:
        assert _container_id(h.name) == before[h.name]
    # the whole group again, with the default context length: only the first host changes back
    r = _deploy()
    assert r.code == 0
    changed = sorted(h for h, rec in r.json["recap"].items() if rec["changed"])
    assert changed == [first.name]


def test_status_reports_every_host(lab):
    r = cli("status", "--hosts", "lab", "--json")
    assert r.code == 0, r.stderr[-2000:]
    for host in lab.hosts:
        assert "llmfleet-sglang running" in r.stderr
        assert r.json["recap"][host.name]["failed"] == 0


def test_logs_prints_each_hosts_server_log(lab):
    host = lab.hosts[0]
    r = cli("logs", "--hosts", host.name, "--lines", "500")
    assert r.code == 0, r.stderr[-2000:]
    assert f"{host.name} | " in r.stderr and "The server is fired up and ready to roll!" in r.stderr


def test_unreachable_host_does_not_stop_the_others(lab):
    from llmfleet.lab import lab_fault

    victim = lab.hosts[-1]
    lab_fault(victim.name, "cut")
    try:
        r = _deploy()
    finally:
        lab_fault(victim.name, "restore")
    assert r.code == 1
    assert r.json["recap"][victim.name]["unreachable"] is True
    for h in lab.hosts[:-1]:
        assert r.json["recap"][h.name]["failed"] == 0


def test_preflight_failure_says_what_and_how_to_fix(lab):
    from llmfleet.lab import host_exec

    host = lab.hosts[0]
    host_exec(host.name, ["sh", "-c", "echo 1 > /proc/sys/kernel/numa_balancing"])
    try:
        r = _deploy(hosts=host.name)
    finally:
        host_exec(host.name, ["sh", "-c", "echo 0 > /proc/sys/kernel/numa_balancing"])
    assert r.code == 1
    assert "numa_balancing is 1" in r.stderr and "echo 0 > /proc/sys/kernel/numa_balancing" in r.stderr
    assert r.json["recap"][host.name]["failed"] == 1


def test_deploy_lock_and_audit_log(lab):
    from llmfleet.lab import host_exec

    host = lab.hosts[0]
    audit_before = host_exec(host.name, ["cat", "/var/lib/llmfleet/audit.log"]).stdout
    assert " deploy run=" in audit_before and " ok" in audit_before  # every earlier deploy left a line
    host_exec(host.name, ["sh", "-c", 'mkdir /var/lib/llmfleet/lock && echo \'{"by": "ops@elsewhere"}\' > /var/lib/llmfleet/lock/owner'])
    r = _deploy(hosts=host.name)
    assert r.code == 1 and "locked by another run" in r.json["recap"][host.name]["message"]
    assert "ops@elsewhere" in r.json["recap"][host.name]["message"]
    assert cli("unlock", "--hosts", host.name).code == 0
    assert _deploy(hosts=host.name).code == 0
    assert host_exec(host.name, ["test", "-d", "/var/lib/llmfleet/lock"]).returncode != 0


def test_a_crashing_server_fails_with_its_logs_and_a_diagnosis(lab):
    host = lab.hosts[0]
    r = _deploy("--set", "extra_server_args=[--no-such-flag]", "--set", "health_timeout=60", hosts=host.name)
    assert r.code == 1
    assert "likely cause: the server rejected its command line" in r.stderr
    assert "--no-such-flag" in r.stderr
    # and back to a good state for the tests after this one
    assert _deploy(hosts=host.name).code == 0


def _container_id(host: str) -> str:
    from llmfleet.lab import host_exec

    return host_exec(host, ["docker", "inspect", "--format", "{{.Id}}", "llmfleet-sglang"]).stdout.strip()


def test_pull_path_fetches_from_the_lab_registry_and_push_then_has_nothing_to_do(lab):
    from llmfleet.lab import host_exec

    host = lab.hosts[-1]
    tag = "lmsysorg/sglang:v0.5.9-rocm720-mi30x"
    # the server and the previous one a rolling replacement keeps (the session's lab may have served before)
    host_exec(host.name, ["docker", "rm", "-f", "llmfleet-sglang", "llmfleet-sglang-previous"])
    assert host_exec(host.name, ["docker", "rmi", tag]).returncode == 0
    r = _deploy("--image-source", "pull", hosts=host.name)
    assert r.code == 0, r.stderr[-3000:]
    image_step = next(s for s in r.json["steps"] if s["step"] == "SGLang image on the host")
    assert image_step["status"] == "changed" and "pulled" in image_step["message"]
    # the registry served the control engine's image: the push path finds the same ID and skips
    r = _deploy(hosts=host.name)
    image_step = next(s for s in r.json["steps"] if s["step"] == "SGLang image on the host")
    assert image_step["status"] == "ok" and "already there" in image_step["message"]
