"""`invoke hosts`: what a pattern selects, in Ansible's order, with how each host is reached."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
KOLLA = str(FIXTURES / "kolla-ansible" / "multinode")


def test_json_shape_and_ansible_order() -> None:
    r = cli("hosts", "--hosts", "baremetal[-1],control[0],compute", "--inventory", KOLLA, "--json")
    assert r.code == 0, r.stderr
    assert r.json["pattern"] == "baremetal[-1],control[0],compute"
    assert r.json["inventory"] == KOLLA
    rows = r.json["hosts"]
    assert [h["name"] for h in rows] == ["monitoring01", "control01", "compute01"]
    assert set(rows[0]) == {"name", "address", "port", "user", "groups"}
    assert rows[0]["address"] == "monitoring01" and rows[0]["port"] == 22 and rows[0]["user"] is None
    assert "baremetal" in rows[0]["groups"] and "all" not in rows[0]["groups"]


def test_connection_settings_are_shown(tmp_path: Path) -> None:
    inv = tmp_path / "i.ini"
    inv.write_text("[gpu]\ngpu[01:02] ansible_host=198.51.100.9 ansible_user=ops\ngpu03:2222\n")
    r = cli("hosts", "--hosts", "gpu[1:]", "--inventory", str(inv), "--json")
    assert r.code == 0, r.stderr
    assert [(h["name"], h["address"], h["port"], h["user"]) for h in r.json["hosts"]] == [
        ("gpu02", "198.51.100.9", 22, "ops"),
        ("gpu03", "gpu03", 2222, None),
    ]


def test_table_lists_hosts_in_order_and_prints_values_literally(tmp_path: Path) -> None:
    inv = tmp_path / "i.yml"
    inv.write_text('g:\n  hosts:\n    h2:\n      ansible_user: "[bold]u[/x]"\n    h1:\n')
    r = cli("hosts", "--inventory", str(inv))
    assert r.code == 0, r.stderr
    assert "[bold]u[/x]" in r.stderr  # a value is text, never rich markup
    assert r.stderr.index("h2") < r.stderr.index("h1")  # file order within a group, as Ansible
    assert r.stdout == ""  # the table is progress-style output on stderr


def test_unknown_pattern_is_exit_2_one_line(tmp_path: Path) -> None:
    r = cli("hosts", "--hosts", "baremetl", "--inventory", KOLLA)
    assert r.code == 2
    assert "'baremetl' matches no host or group (did you mean 'baremetal'?)" in r.stderr
    assert "Traceback" not in r.stderr
