"""The lab's names, addresses, MACs and generated config text: pure functions."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from llmfleet.lab import configs, netns
from llmfleet.lab import topology as topo


def test_hosts_get_consecutive_addresses_on_the_lab_subnet():
    hs = topo.hosts(3)
    assert [h.name for h in hs] == ["lab1", "lab2", "lab3"]
    assert [h.address for h in hs] == ["10.213.0.11", "10.213.0.12", "10.213.0.13"]
    for h in hs:
        assert ipaddress.ip_address(h.address) in topo.SUBNET
        assert ipaddress.ip_address(h.address) != topo.BRIDGE_ADDRESS
        assert h.netns == h.name


def test_every_interface_and_namespace_name_starts_with_lab_and_fits_ifnamsiz():
    for h in topo.hosts(topo.MAX_HOSTS):
        for name in (h.netns, h.veth_root, h.veth_host):
            assert name.startswith("lab")
            assert len(name) <= 15
    assert topo.BRIDGE.startswith("lab") and topo.GUARD_TABLE.startswith("lab")
    assert topo.FAULT_TABLE.startswith("lab")


def test_macs_are_fixed_unique_locally_administered_unicast():
    macs = [topo.BRIDGE_MAC]
    for h in topo.hosts(topo.MAX_HOSTS):
        macs += [h.mac_root, h.mac_host]
    assert len(set(macs)) == len(macs)
    for m in macs:
        first = int(m.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01
    assert topo.host_net(2).mac_host == "02:1a:b0:00:02:01"
    assert topo.host_net(2) == topo.host_net(2)  # same index, same names, every time


@pytest.mark.parametrize("n", [0, -1, topo.MAX_HOSTS + 1, "3", 2.0, True])
def test_bad_host_counts_are_refused(n):
    with pytest.raises(ValueError):
        topo.check_count(n)


def test_host_index_round_trips_and_refuses_foreign_names():
    assert topo.host_index("lab7") == 7
    for bad in ("lab0", "lab01", "labx", "web1", "lab", f"lab{topo.MAX_HOSTS + 1}"):
        with pytest.raises(ValueError):
            topo.host_index(bad)


@pytest.mark.parametrize("dst,overlaps", [
    ("default", False), ("10.213.0.0/24", True), ("10.0.0.0/8", True), ("10.213.0.77", True),
    ("10.214.0.0/24", False), ("192.0.2.0/24", False), ("fd00::/64", False),
])
def test_route_overlap_with_the_lab_subnet(dst, overlaps):
    assert topo.overlaps_lab(dst) is overlaps


def test_host_network_commands():
    h = topo.host_net(2)
    assert netns.host_cmds(h) == [
        ["ip", "netns", "add", "lab2"],
        ["ip", "link", "add", "labv2", "address", "02:1a:b0:00:02:02", "type", "veth",
         "peer", "name", "labeth0", "address", "02:1a:b0:00:02:01", "netns", "lab2"],
        ["ip", "link", "set", "labv2", "master", "labbr0", "up"],
        ["ip", "-n", "lab2", "link", "set", "lo", "up"],
        ["ip", "-n", "lab2", "addr", "add", "10.213.0.12/24", "dev", "labeth0"],
        ["ip", "-n", "lab2", "link", "set", "labeth0", "up"],
    ]
    assert not any("route" in argv for argv in netns.host_cmds(h))  # no default route, ever


def test_fault_commands():
    h = topo.host_net(1)
    assert netns.cut_cmd(h, True) == ["ip", "link", "set", "labv1", "down"]
    assert netns.slow_cmds(h, 8)[0] == [
        "tc", "qdisc", "replace", "dev", "labv1", "root", "tbf", "rate", "8mbit", "burst", "65536",
        "latency", "200ms",
    ]
    assert netns.slow_cmds(h, 8)[1][:2] == ["nsenter", "--net=/run/netns/lab1"]
    assert "numgen random mod 10000 < 2550 drop" in netns.loss_ruleset(25.5)
    for bad in (0, -3, 101):
        with pytest.raises(ValueError):
            netns.loss_ruleset(bad)
    with pytest.raises(ValueError):
        netns.tbf_args(0)


def test_guard_drops_forwarding_between_the_lab_bridge_and_anything_else():
    text = netns.guard_ruleset()
    assert 'iifname "labbr0" oifname != "labbr0" drop' in text
    assert 'oifname "labbr0" iifname != "labbr0" drop' in text
    assert netns.guard_ruleset(add=False) == "delete table inet labguard\n"


def test_inventory_has_the_exact_shape_the_deploy_engine_reads():
    text = configs.inventory_yaml(
        [("lab1", "10.213.0.11"), ("lab2", "10.213.0.12")],
        ssh_key="/s/id_ed25519", known_hosts_file="/s/known_hosts",
        control_docker_host="unix:///s/control/docker.sock",
        datasets={"sharegpt": "/s/datasets/sharegpt.json", "gsm8k": "/s/datasets/gsm8k.jsonl"},
    )
    assert text == (
        "# Written by `invoke lab.up`: the lab's simulated MI300X hosts. Not committed.\n"
        "all:\n"
        "  children:\n"
        "    lab:\n"
        "      hosts:\n"
        "        lab1: {ansible_host: 10.213.0.11}\n"
        "        lab2: {ansible_host: 10.213.0.12}\n"
        "      vars:\n"
        "        ansible_user: root\n"
        "        ansible_port: 22\n"
        "        ansible_ssh_private_key_file: /s/id_ed25519\n"
        "        known_hosts_file: /s/known_hosts\n"
        "        hardware: mi300x\n"
        "        control_docker_host: unix:///s/control/docker.sock\n"
        "        image_source: push\n"
        "        health_timeout: 300\n"
        "        health_interval: 1\n"
        "        bench_forks: 1\n"
        "        sysctl_conf_dir: /var/lib/llmfleet/etc/sysctl.d\n"
        "        docker_daemon_json: /var/lib/llmfleet/etc/docker/daemon.json\n"
        "        sharegpt_file: /s/datasets/sharegpt.json\n"
        "        gsm8k_file: /s/datasets/gsm8k.jsonl\n"
        "        lab: true\n"
    )
    data = yaml.safe_load(text)
    lab = data["all"]["children"]["lab"]
    assert lab["hosts"]["lab2"] == {"ansible_host": "10.213.0.12"}
    assert lab["vars"]["ansible_port"] == 22 and lab["vars"]["lab"] is True


def test_inventory_quotes_paths_yaml_would_misread():
    text = configs.inventory_yaml([("lab1", "10.213.0.11")], ssh_key="/odd dir/key: x",
                                  known_hosts_file="/k", control_docker_host="unix:///c", datasets={})
    assert yaml.safe_load(text)["all"]["children"]["lab"]["vars"]["ansible_ssh_private_key_file"] == "/odd dir/key: x"
    assert "sharegpt_file" not in text


def test_known_hosts_lists_each_key_by_address_and_by_name():
    text = configs.known_hosts([("lab1", "10.213.0.11", "ssh-ed25519 AAAAkey1 root@lab1")])
    assert text.splitlines()[1:] == ["10.213.0.11 ssh-ed25519 AAAAkey1", "lab1 ssh-ed25519 AAAAkey1"]
    with pytest.raises(ValueError):
        configs.known_hosts([("lab1", "10.213.0.11", "garbage")])


def test_sshd_config_is_key_only_and_listens_on_the_host_address_only():
    text = configs.sshd_config("lab3", "10.213.0.13")
    lines = set(text.splitlines())
    for line in ("ListenAddress 10.213.0.13:22", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                 "UsePAM no", "StrictModes no", "MaxSessions 64", "MaxStartups 64",
                 "PermitRootLogin prohibit-password", "HostKey /run/llmfleet-lab/ssh/ssh_host_ed25519_key"):
        assert line in lines
    assert sum(1 for line in lines if line.startswith("ListenAddress")) == 1


def test_dockerd_runs_without_iptables_or_bridge_and_through_labrunc():
    argv = configs.dockerd_argv(data_root="/d", config_file="/c.json", runtime="/r/labrunc", cgroup_parent="/lab/lab1")
    assert argv[0] == "/usr/sbin/dockerd"
    for flag in ("--iptables=false", "--bridge=none", "--ip-masq=false"):
        assert flag in argv
    assert argv[argv.index("--default-runtime") + 1] == "labrunc"
    assert argv[argv.index("--add-runtime") + 1] == "labrunc=/r/labrunc"
    assert argv[argv.index("--host") + 1] == "unix:///var/run/docker.sock"


def test_engines_know_the_lab_registry():
    import json as _json

    from llmfleet.lab import registry

    host = _json.loads(configs.daemon_json("/k.json", registry.ADDRESS, mirror=True))
    assert host == {"deprecated-key-path": "/k.json", "insecure-registries": ["10.213.0.1:5000"],
                    "registry-mirrors": ["http://10.213.0.1:5000"]}  # fmt: skip
    control = _json.loads(configs.daemon_json("/k.json", registry.ADDRESS))
    assert "registry-mirrors" not in control and control["insecure-registries"] == ["10.213.0.1:5000"]
    cfg = yaml.safe_load(registry.config_yaml(Path("/cache/registry")))
    assert cfg["http"]["addr"] == "10.213.0.1:5000"  # the bridge only: nothing listens elsewhere
    assert cfg["storage"]["filesystem"]["rootdirectory"] == "/cache/registry"


@pytest.mark.parametrize("value,instance", [(None, 0), ("", 0), ("0", 0), ("1", 1), ("9", 9)])
def test_lab_instance_from_the_environment(value, instance):
    assert topo.check_instance(value) == instance


@pytest.mark.parametrize("value", ["10", "-1", "a", " 1", "1.0", "²"])
def test_bad_lab_instances_are_refused(value):
    with pytest.raises(ValueError, match="LLMFLEET_LAB_INSTANCE"):
        topo.check_instance(value)


def test_a_second_lab_instance_shares_no_name_or_address_with_the_default_one():
    """Two labs side by side (one per test worker): everything the kernel or a cache names is its own."""
    import json
    import os
    import subprocess
    import sys

    probe = (
        "import json; from llmfleet.lab import topology as t, layout, registry; h = t.host_net(1); "
        "print(json.dumps([h.name, h.netns, h.veth_root, h.veth_host, h.address, h.mac_root, t.BRIDGE, "
        "str(t.BRIDGE_ADDRESS), t.BRIDGE_MAC, t.GUARD_TABLE, t.CGROUP_ROOT, layout.control_cache_dir().name, "
        "registry.storage_dir().name, registry.ADDRESS]))"
    )

    def names(instance: str) -> list[str]:
        env = {**os.environ, "LLMFLEET_LAB_INSTANCE": instance}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    default, second = names("0"), names("2")
    assert default == ["lab1", "lab1", "labv1", "labeth0", "10.213.0.11", "02:1a:b0:00:01:02", "labbr0",
                       "10.213.0.1", "02:1a:b0:00:00:01", "labguard", "lab", "control-docker", "registry",
                       "10.213.0.1:5000"]
    assert second == ["lab1", "lab1-2", "labv1-2", "labeth0", "10.213.2.11", "02:1a:b0:02:01:02", "labbr2",
                      "10.213.2.1", "02:1a:b0:02:00:01", "labguard2", "lab-2", "control-docker-2", "registry-2",
                      "10.213.2.1:5000"]
    assert ipaddress.ip_network("10.213.2.0/24") == topo.subnet(2) and not topo.subnet(2).overlaps(topo.subnet(0))
    bad = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "LLMFLEET_LAB_INSTANCE": "x"},
                         capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "must be a number from 0 to 9, not 'x'" in bad.stderr
