"""The committed example inventories (inventory/*.yml) and the default inventory directory."""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

import pytest
import yaml

from llmfleet.inventory import load_inventory
from tests.unit.test_inventory_ansible import ansible_inventory_bin, normalize, run_ansible

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventory"
DOCS_RANGE = ipaddress.ip_network("198.51.100.0/24")  # RFC 5737 TEST-NET-2

EXAMPLES = [
    ("mi300-cluster.yml", "mi300-cluster", ["mi300-01", "mi300-02", "mi300-03", "mi300-04"], "mi300x"),
    ("mi355-cluster.yml", "mi355-cluster", ["mi355-01", "mi355-02"], "mi355x"),
]


@pytest.mark.parametrize("file,group,hosts,hardware", EXAMPLES)
def test_example_inventory(file: str, group: str, hosts: list[str], hardware: str) -> None:
    inv = load_inventory(INVENTORY / file)
    assert inv.warnings == []
    assert inv.groups[group].hosts == hosts
    assert [h.name for h in inv.select(group)] == hosts
    addresses = [inv.hosts[h].address for h in hosts]
    assert len(set(addresses)) == len(hosts)
    for h in hosts:
        host = inv.hosts[h]
        assert ipaddress.ip_address(host.address) in DOCS_RANGE, "placeholders come from the documentation range"
        assert (host.port, host.user, host.key_file, host.known_hosts_file) == (22, "root", None, None)
        assert host.vars["hardware"] == hardware
        assert host.var_sources["hardware"].startswith(str(INVENTORY / file) + ":")


@pytest.mark.parametrize("file,group,hosts,hardware", EXAMPLES)
def test_example_hardware_is_in_the_catalog(file: str, group: str, hosts: list[str], hardware: str) -> None:
    catalog = yaml.safe_load((ROOT / "catalog" / "hardware.yml").read_text())
    assert hardware in catalog


@pytest.mark.parametrize("file", [e[0] for e in EXAMPLES])
def test_example_documents_placeholders_and_optional_settings(file: str) -> None:
    text = (INVENTORY / file).read_text()
    assert "PLACEHOLDERS" in text and "198.51.100.0/24" in text
    for commented in ("ansible_ssh_private_key_file:", "known_hosts_file:", "hf_home:"):
        assert re.search(rf"^\s*#\s*{commented}", text, re.MULTILINE), f"{commented} shown as a comment"
    assert "192.0.2." not in text
    assert not re.search(r"\b(10|127)\.\d+\.\d+\.\d+|\b192\.168\.|\b172\.(1[6-9]|2\d|3[01])\.", text)


def test_no_machine_paths_in_committed_inventory_files() -> None:
    for path in [*INVENTORY.glob("mi*.yml"), INVENTORY / "README.md"]:
        assert not re.search(r"/(work|tmp|home|root)/", path.read_text()), path


def test_default_directory_merges_every_file(tmp_path: Path) -> None:
    """What `invoke lab.up` leaves behind: lab.yml beside the examples; all of it is one inventory."""
    inv_dir = tmp_path / "inventory"
    inv_dir.mkdir()
    for name in ("mi300-cluster.yml", "mi355-cluster.yml", "README.md"):
        shutil.copy(INVENTORY / name, inv_dir / name)
    (inv_dir / "lab.yml").write_text(
        "all:\n  children:\n    lab:\n      hosts:\n        lab1: {ansible_host: 127.0.0.1, ansible_port: 2201}\n"
        "      vars: {ansible_user: root, hardware: mi300x}\n"
    )
    inv = load_inventory(inv_dir)
    assert [Path(f).name for f in inv.files] == ["lab.yml", "mi300-cluster.yml", "mi355-cluster.yml"]
    assert {"lab", "mi300-cluster", "mi355-cluster"} <= set(inv.groups)
    assert [h.name for h in inv.select("lab")] == ["lab1"]
    assert inv.hosts["lab1"].port == 2201
    assert len(inv.select("all")) == 7
    assert [h.name for h in inv.select("mi3*-02")] == ["mi300-02", "mi355-02"]


def test_the_repository_inventory_directory_loads() -> None:
    inv = load_inventory(INVENTORY)
    assert inv.warnings == []
    assert {"mi300-cluster", "mi355-cluster"} <= set(inv.groups)
    assert len(inv.select("mi300-cluster,mi355-cluster")) == 6


@pytest.mark.skipif(ansible_inventory_bin() is None, reason="ansible-inventory not installed (pip install ansible-core)")
@pytest.mark.parametrize("file", [e[0] for e in EXAMPLES])
def test_examples_read_the_same_by_ansible(file: str, tmp_path: Path) -> None:
    assert normalize(load_inventory(INVENTORY / file).to_ansible_json()) == run_ansible(INVENTORY / file, tmp_path)
