"""Lab hosts are separate machines as far as SSH and Docker can tell, with MI300X-looking GPUs.

Uses the session lab (tests/conftest.py); every check goes through the real
OpenSSH client and server and the hosts' real Docker engines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest
import yaml

from llmfleet import paths
from llmfleet.lab import host_exec, lab_configure, lab_status, lab_up
from llmfleet.lab import topology as topo
from tests.helpers import cli

pytestmark = pytest.mark.lab


def _lab_params(lab) -> tuple[int, bool]:
    return len(lab.hosts), os.environ.get("LLMFLEET_TEST_LAB_IMAGES", "1") != "0"


def _pids(state_dir) -> dict:
    data = json.loads((state_dir / "lab.json").read_text())
    return {name: {k: (rec.get(k) or {}).get("pid") for k in ("init", "sshd", "dockerd")}
            for name, rec in data["hosts"].items()}


def test_each_host_answers_on_its_own_address_with_its_own_host_key(lab, lab_ssh, tmp_path):
    keys = {}
    for host in lab.hosts:
        out = lab_ssh(host.address, "hostname")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == host.name
        scan = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", host.address],
                              capture_output=True, text=True, timeout=30, check=False)
        presented = [line.split() for line in scan.stdout.splitlines() if line and not line.startswith("#")]
        assert len(presented) == 1 and presented[0][0] == host.address, scan.stderr
        keys[host.name] = presented[0][2]
        by_name = lab_ssh(host.name, "hostname", options=["-o", f"HostKeyAlias={host.name}",
                                                          "-o", f"HostName={host.address}"])
        assert by_name.returncode == 0 and by_name.stdout.strip() == host.name, by_name.stderr
    assert len(set(keys.values())) == len(lab.hosts)
    known = lab.known_hosts.read_text()
    for host in lab.hosts:
        assert f"{host.address} ssh-ed25519 {keys[host.name]}" in known
        assert f"{host.name} ssh-ed25519 {keys[host.name]}" in known

    # The first host's key recorded for the second host's address: strict checking must refuse it.
    if len(lab.hosts) > 1:
        a, b = lab.hosts[0], lab.hosts[1]
        wrong = tmp_path / "known_hosts"
        wrong.write_text(f"{b.address} ssh-ed25519 {keys[a.name]}\n")
        out = lab_ssh(b.address, "true", options=["-o", f"UserKnownHostsFile={wrong}"])
        assert out.returncode == 255
        assert "Host key verification failed" in out.stderr or "IDENTIFICATION HAS CHANGED" in out.stderr


def test_ssh_is_key_only(lab):
    host = lab.hosts[0]
    out = subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "PubkeyAuthentication=no",
         "-o", "ConnectTimeout=5", f"root@{host.address}", "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 255 and "Permission denied (publickey)" in out.stderr


def test_hosts_have_no_route_out_of_the_lab(lab):
    host = lab.hosts[0]
    routes = host_exec(host.name, ["ip", "-4", "route", "show"]).stdout
    assert "default" not in routes
    assert routes.split()[0] == str(topo.SUBNET)
    out = host_exec(host.name, ["ip", "route", "get", "192.0.2.1"])
    assert out.returncode != 0 and "unreachable" in out.stderr


def test_inventory_points_at_the_lab(lab):
    assert lab.inventory_path == paths.default_inventory() / "lab.yml"
    data = yaml.safe_load(lab.inventory_path.read_text())
    group = data["all"]["children"]["lab"]
    assert group["hosts"] == {h.name: {"ansible_host": h.address} for h in lab.hosts}
    v = group["vars"]
    assert v["ansible_user"] == "root" and v["ansible_port"] == 22 and v["lab"] is True
    assert v["ansible_ssh_private_key_file"] == str(lab.ssh_key) and os.path.isabs(v["ansible_ssh_private_key_file"])
    assert v["known_hosts_file"] == str(lab.known_hosts)
    assert v["control_docker_host"] == lab.control_docker_host
    for key in ("sharegpt", "gsm8k"):
        if key in lab.datasets:
            assert v[f"{key}_file"] == lab.datasets[key]


def test_control_engine_answers_on_its_socket(lab):
    out = subprocess.run(["docker", "-H", lab.control_docker_host, "info", "--format", "{{.DefaultRuntime}}"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "labrunc", out.stderr
    for tag, image_id in lab.images.items():
        got = subprocess.run(["docker", "-H", lab.control_docker_host, "image", "inspect", "--format", "{{.Id}}", tag],
                             capture_output=True, text=True, timeout=30, check=False)
        assert got.stdout.strip() == image_id


def test_docker_on_one_host_does_not_see_another_hosts_containers(lab, lab_ssh, lab_test_image):
    if len(lab.hosts) < 2:
        pytest.skip("needs two lab hosts")
    a, b = lab.hosts[0], lab.hosts[1]
    name = "labtest-isolation"
    lab_ssh(a.address, f"docker rm -f {name} >/dev/null 2>&1; true")
    run = lab_ssh(a.address, f"docker run -d --name {name} --network=host {lab_test_image} /bin/sleep 300")
    assert run.returncode == 0, run.stderr
    try:
        on_a = lab_ssh(a.address, "docker ps -a --format '{{.Names}}'").stdout.split()
        on_b = lab_ssh(b.address, "docker ps -a --format '{{.Names}}'").stdout.split()
        assert name in on_a and name not in on_b
        ids = {h.name: lab_ssh(h.address, "docker info --format '{{.ID}}'").stdout.strip() for h in (a, b)}
        assert ids[a.name] and ids[a.name] != ids[b.name]  # each host its own engine identity
    finally:
        lab_ssh(a.address, f"docker rm -f {name}")


def test_container_with_the_cookbooks_flags_sees_kfd_and_eight_render_nodes(lab, lab_ssh, lab_test_image):
    hardware = yaml.safe_load((paths.catalog_dir() / "hardware.yml").read_text())
    flags = " ".join(hardware["device_flags"]["amd"])
    assert "--privileged" in flags and "--device=/dev/kfd" in flags
    host = lab.hosts[-1]
    out = lab_ssh(host.address, f"docker run --rm {flags} {lab_test_image} /bin/sh -c "
                                "'ls /dev/dri; ls -l /dev/kfd; grep -E \"^(CapEff|NSpid)\" /proc/self/status; cat /etc/group'")
    assert out.returncode == 0, out.stderr
    render = sorted(re.findall(r"\brenderD\d+\b", out.stdout))
    assert render == [f"renderD{128 + i}" for i in range(8)]
    assert re.search(r"^c\S+ .* /dev/kfd$", out.stdout, re.M)
    cap_eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", out.stdout).group(1), 16)
    assert cap_eff & (1 << 21)  # CAP_SYS_ADMIN: privileged really is privileged


def test_gpu_tools_report_eight_mi300x(lab, lab_ssh):
    host = lab.hosts[0]
    amd = lab_ssh(host.address, "amd-smi static --json")
    assert amd.returncode == 0, amd.stderr
    gpus = json.loads(amd.stdout)["gpu_data"]
    assert len(gpus) == 8
    assert {g["asic"]["market_name"] for g in gpus} == {"AMD Instinct MI300X"}
    assert {g["asic"]["target_graphics_version"] for g in gpus} == {"gfx942"}
    assert all(round(g["vram"]["size"]["value"] / 1024) == 192 and g["vram"]["size"]["unit"] == "MB" for g in gpus)
    rocm = json.loads(lab_ssh(host.address, "/opt/rocm/bin/rocm-smi --showproductname --json").stdout)
    assert len(rocm) == 8 and {c["GFX Version"] for c in rocm.values()} == {"gfx942"}


def test_amd_smi_json_shape_is_a_per_host_setting(lab, lab_ssh):
    host = lab.hosts[-1]
    lab_configure(host.name, "list")
    try:
        bare = json.loads(lab_ssh(host.address, "amd-smi static --json").stdout)
        assert isinstance(bare, list) and len(bare) == 8
        if len(lab.hosts) > 1:  # the others keep the newer shape
            other = json.loads(lab_ssh(lab.hosts[0].address, "amd-smi static --json").stdout)
            assert isinstance(other, dict) and len(other["gpu_data"]) == 8
    finally:
        lab_configure(host.name, "gpu_data")
    assert "gpu_data" in json.loads(lab_ssh(host.address, "amd-smi static --json").stdout)


def test_host_looks_ready_to_a_preflight(lab, lab_ssh):
    host = lab.hosts[0]
    out = lab_ssh(host.address, "cat /proc/sys/kernel/numa_balancing /sys/module/amdgpu/initstate; "
                                "ls /dev/dri | grep -c renderD; test -c /dev/kfd && echo kfd; "
                                "grep -E '^amdgpu ' /proc/modules 2>/dev/null || echo no-proc-modules; "
                                "ls -d /var/lib/llmfleet; ls -d /var/lib/llmfleet/hf")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:4] == ["0", "live", "8", "kfd"]
    if os.path.exists("/proc/modules"):
        assert lines[4].startswith("amdgpu ")
    # The real machine keeps its own values: nothing was written to its /proc or /dev.
    assert not os.path.exists("/dev/kfd")
    assert not os.path.exists("/sys/module/amdgpu")


def test_each_host_has_its_own_remote_dir_home_and_tmp(lab, lab_ssh):
    if len(lab.hosts) < 2:
        pytest.skip("needs two lab hosts")
    a, b = lab.hosts[0], lab.hosts[1]
    made = "echo from-a > /var/lib/llmfleet/labtest-marker && echo x > /root/labtest && echo x > /tmp/labtest"
    assert lab_ssh(a.address, made).returncode == 0
    try:
        assert lab_ssh(b.address, "test ! -e /var/lib/llmfleet/labtest-marker && test ! -e /root/labtest "
                                  "&& test ! -e /tmp/labtest && test -w /tmp && test -k /tmp").returncode == 0
        assert lab_ssh(a.address, "cat /var/lib/llmfleet/labtest-marker").stdout.strip() == "from-a"
        assert not os.path.exists("/var/lib/llmfleet/labtest-marker")  # not on the real machine either
        assert not os.path.exists("/tmp/labtest")
    finally:
        lab_ssh(a.address, "rm -f /var/lib/llmfleet/labtest-marker /root/labtest /tmp/labtest")


def test_host_exec_runs_inside_the_host(lab):
    host = lab.hosts[0]
    out = host_exec(host.name, ["sh", "-c", "hostname; ip -4 -o addr show labeth0"])
    assert out.returncode == 0
    assert out.stdout.splitlines()[0] == host.name and host.address in out.stdout


def test_second_lab_up_changes_nothing_and_is_quick(lab):
    before = _pids(lab.state_dir)
    inv_mtime = lab.inventory_path.stat().st_mtime_ns
    started = time.monotonic()
    info = lab_up(len(lab.hosts), images=False)
    took = time.monotonic() - started
    assert took < 3.0, f"no-op lab.up took {took:.1f}s"
    assert [h.name for h in info.hosts] == [h.name for h in lab.hosts]
    assert _pids(lab.state_dir) == before
    assert lab.inventory_path.stat().st_mtime_ns == inv_mtime


def test_lab_up_repairs_a_host_whose_daemon_died(lab, lab_ssh):
    from llmfleet.lab import procs

    host = lab.hosts[-1]
    rec = json.loads((lab.state_dir / "lab.json").read_text())["hosts"][host.name]
    assert procs.signal_proc(rec["sshd"], 9)
    assert procs.wait_gone([rec["sshd"]], 5) == []
    row = next(r for r in lab_status() if r["name"] == host.name)
    assert row["problems"] == ["sshd not running"] and not row["ssh"]
    lab_up(len(lab.hosts), images=False)
    assert lab_ssh(host.address, "hostname").stdout.strip() == host.name
    assert next(r for r in lab_status() if r["name"] == host.name)["problems"] == []


def test_lab_up_with_another_count_adds_then_removes_a_host(lab, lab_ssh):
    n = len(lab.hosts)
    before = _pids(lab.state_dir)
    try:
        grown = lab_up(n + 1, images=False)
        extra = grown.hosts[-1]
        assert extra.name == f"lab{n + 1}"
        assert lab_ssh(extra.address, "hostname").stdout.strip() == extra.name
        assert extra.name in yaml.safe_load(lab.inventory_path.read_text())["all"]["children"]["lab"]["hosts"]
        assert {k: v for k, v in _pids(lab.state_dir).items() if k != extra.name} == before
    finally:
        shrunk = lab_up(n, images=False)
    assert [h.name for h in shrunk.hosts] == [h.name for h in lab.hosts]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert extra.netns not in netns.split()
    assert subprocess.run(["ip", "link", "show", topo.host_net(n + 1).veth_root], capture_output=True, check=False).returncode != 0
    assert not (lab.state_dir / "hosts" / extra.name).exists()
    assert extra.name not in lab.inventory_path.read_text()
    assert _pids(lab.state_dir) == before


def test_status_from_the_command_line(lab):
    r = cli("lab.status", "--json")
    assert r.code == 0, r.stderr
    rows = r.json["hosts"]
    assert [row["name"] for row in rows] == [h.name for h in lab.hosts]
    assert all(row["ssh"] and row["docker"] and not row["problems"] for row in rows)
    assert r.json["control"]["docker"] is True
    assert [row["name"] for row in lab_status()] == [h.name for h in lab.hosts]
