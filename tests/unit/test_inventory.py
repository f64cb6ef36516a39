"""Inventory loading: YAML, INI, directories, group_vars/host_vars, connection settings, bad input."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmfleet.errors import InputError
from llmfleet.inventory import expand_host_pattern, ini_value, load_inventory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as err:
        load_inventory(path)
    assert "\n" not in str(err.value), "errors are one line"
    return err.value


# --------------------------------------------------------------------------- YAML


def test_yaml_groups_children_and_hosts(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path / "hosts.yml",
            """\
all:
  hosts:
    solo:
  children:
    gpus:
      children:
        mi300:
          hosts:
            gpu1: {ansible_host: 198.51.100.1}
            gpu2:
        mi355:
          hosts:
            big1:
    rack:
      hosts:
        gpu2:
        big1:
""",
        )
    )
    assert list(inv.hosts) == ["solo", "gpu1", "gpu2", "big1"]
    assert inv.groups["gpus"].children == ["mi300", "mi355"]
    assert inv.groups["mi300"].parents == ["gpus"]
    assert inv.groups["mi300"].hosts == ["gpu1", "gpu2"]
    assert inv.groups["gpus"].hosts == []  # direct members only
    assert [h.name for h in inv.hosts_of("gpus")] == ["gpu1", "gpu2", "big1"]
    assert inv.groups["rack"].parents == ["all"]
    assert (inv.groups["all"].depth, inv.groups["gpus"].depth, inv.groups["mi300"].depth) == (0, 1, 2)
    assert inv.hosts["gpu2"].groups == ["all", "gpus", "rack", "mi300"]
    assert inv.hosts["solo"].groups == ["all", "ungrouped"]
    assert inv.groups["ungrouped"].hosts == ["solo"]
    assert inv.hosts["gpu1"].address == "198.51.100.1"
    assert inv.hosts["gpu2"].address == "gpu2"


def test_yaml_single_host_string_range_and_port(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path / "h.yaml",
            """\
one:
  hosts: lonely
many:
  hosts:
    node[01:03].example.com:
      ansible_user: ops
    edge:2222:
""",
        )
    )
    assert inv.groups["one"].hosts == ["lonely"]
    assert inv.groups["many"].hosts == ["node01.example.com", "node02.example.com", "node03.example.com", "edge"]
    assert inv.hosts["node02.example.com"].user == "ops"
    assert inv.hosts["edge"].port == 2222
    assert inv.hosts["edge"].vars["ansible_port"] == 2222


def test_yaml_same_group_in_two_places_merges(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path / "h.yml",
            """\
a:
  children:
    shared:
      hosts: {x1: }
      vars: {v: 1}
b:
  children:
    shared:
      hosts: {x2: }
      vars: {w: 2}
""",
        )
    )
    assert inv.groups["shared"].hosts == ["x1", "x2"]
    assert inv.groups["shared"].parents == ["a", "b"]
    assert inv.hosts["x2"].vars == {"v": 1, "w": 2}


def test_empty_yaml_file_adds_nothing(tmp_path: Path) -> None:
    write(tmp_path / "inv" / "empty.yml", "# nothing yet\n")
    write(tmp_path / "inv" / "real.yml", "g:\n  hosts:\n    h:\n")
    assert list(load_inventory(tmp_path / "inv").hosts) == ["h"]


# --------------------------------------------------------------------------- INI


INI = """\
; an INI inventory with most of what the format allows
mail.example.com                 # ungrouped

[mi300]
gpu[01:03].example.com ansible_user=ops
gpu09 ansible_host=198.51.100.9 note="two words" quoted='03' number=8080 flag=True
gpu10:2222
10.0.0.[1:2]

[mi300:vars]
hardware=mi300x
spaced = hello world
http_port=8080 # a comment after a value is dropped as Ansible's literal parser drops it

[cluster:children]   # names a group defined further down
mi300
later

[later]
late1
"""


def test_ini_sections_values_ranges(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path / "hosts.ini", INI))
    assert list(inv.hosts) == [
        "mail.example.com",
        "gpu01.example.com",
        "gpu02.example.com",
        "gpu03.example.com",
        "gpu09",
        "gpu10",
        "10.0.0.1",
        "10.0.0.2",
        "late1",
    ]
    assert inv.groups["ungrouped"].hosts == ["mail.example.com"]
    assert inv.groups["cluster"].children == ["mi300", "later"]
    assert inv.groups["later"].parents == ["cluster"]
    gpu09 = inv.hosts["gpu09"]
    assert gpu09.vars["note"] == "two words"
    assert gpu09.vars["quoted"] == "03"
    assert gpu09.vars["number"] == 8080
    assert gpu09.vars["flag"] is True
    assert gpu09.vars["hardware"] == "mi300x"
    assert gpu09.vars["spaced"] == "hello world"
    assert gpu09.vars["http_port"] == 8080
    assert gpu09.address == "198.51.100.9"
    assert inv.hosts["gpu10"].port == 2222
    assert inv.hosts["gpu02.example.com"].user == "ops"
    assert [h.name for h in inv.hosts_of("cluster")][-1] == "late1"


def test_ini_var_sources_count_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "hosts.ini", INI)
    h = load_inventory(path).hosts["gpu09"]
    assert h.var_sources["note"] == f"{path}:6 (host 'gpu09')"
    assert h.var_sources["hardware"] == f"{path}:11 (group 'mi300')"


@pytest.mark.parametrize(
    "text,value",
    [
        ("8080", 8080),
        ("1.5", 1.5),
        ("True", True),
        ("None", None),
        ("'03'", "03"),
        ("03", "03"),
        ("hello world", "hello world"),
        ("[1, (2, 3)]", [1, [2, 3]]),
        ("{'a': {1, 2}}", {"a": [1, 2]}),
        ("1j", "1j"),
        ("...", "..."),
        ("b'x'", "x"),
        ("host-01.internal", "host-01.internal"),
        ("{{ templated }}", "{{ templated }}"),
    ],
)
def test_ini_values_as_ansible_reads_them(text: str, value: object) -> None:
    assert ini_value(text) == value


@pytest.mark.parametrize(
    "pattern,names,port",
    [
        ("gpu[01:04].example.com", ["gpu01.example.com", "gpu02.example.com", "gpu03.example.com", "gpu04.example.com"], None),
        ("10.0.0.[1:4]", ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], None),
        ("www[01:10:3]", ["www01", "www04", "www07", "www10"], None),
        ("db-[a:c]", ["db-a", "db-b", "db-c"], None),
        ("r[1:2]-[a:b]", ["r1-a", "r1-b", "r2-a", "r2-b"], None),
        ("n[:2]", ["n0", "n1", "n2"], None),
        ("n[8:10]", ["n8", "n9", "n10"], None),
        ("web[1:2]:2200", ["web1", "web2"], 2200),
        ("host:22", ["host"], 22),
        ("[fe80::1]:2222", ["fe80::1"], 2222),
        ("fe80::2", ["fe80::2"], None),
        ("plain", ["plain"], None),
    ],
)
def test_host_ranges_expand_like_ansible(pattern: str, names: list[str], port: int | None) -> None:
    assert expand_host_pattern(pattern) == (names, port)


@pytest.mark.parametrize(
    "pattern,words",
    [
        ("gpu[01:1]", "same width"),
        ("gpu[5:1]", "empty"),
        ("gpu[c:a]", "begin must not be after end"),
        ("gpu[1:2:0]", "step"),
        ("gpu[1:2", "'[' without ']'"),
        ("gpu[1]", "[begin:end]"),
        ("gpu[x:12]", "neither"),
    ],
)
def test_bad_host_ranges(pattern: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        expand_host_pattern(pattern, "inv.ini", 3)
    assert words in err.value.message
    assert (err.value.path, err.value.line) == ("inv.ini", 3)


# --------------------------------------------------------------------------- directories, group_vars


def test_directory_merges_formats_and_skips_non_inventory_files() -> None:
    inv = load_inventory(FIXTURES / "ours/mixed-dir")
    rel = [str(Path(f).relative_to(FIXTURES / "ours/mixed-dir")) for f in inv.files]
    assert rel == ["01-gpus.yml", "02-more.ini", "03-plain", "04-yaml-noext", "sub/05-nested.yaml"]
    assert set(inv.groups) >= {"gpus", "mi300", "mi355", "racks", "rack1", "storage", "monitoring"}
    assert "ghost" not in inv.hosts and "hidden" not in inv.groups  # .hidden.yml
    assert inv.groups["mi300"].hosts == ["gpu01", "gpu02", "gpu03", "gpu04", "gpu05", "gpu06", "gpu07"]
    assert inv.groups["gpus"].children == ["mi300", "mi355"]
    assert inv.hosts["bigb.example.com"].user == "admin"  # ansible_ssh_user
    assert inv.hosts["gpu05"].port == 2222  # "2222" (quoted in INI) is still a port
    assert inv.hosts["gpu06"].port == 2200
    assert inv.hosts["mon1"].known_hosts_file == os.path.expanduser("~/.ssh/lab_known_hosts")
    assert inv.hosts["gpu01"].key_file == os.path.expanduser("~/.ssh/gpu01_key")
    assert any("nosuchgroup.yml" in w for w in inv.warnings)


def test_group_vars_precedence_in_a_directory() -> None:
    inv = load_inventory(FIXTURES / "ours/mixed-dir")
    gpu01, gpu02, nas1 = inv.hosts["gpu01"], inv.hosts["gpu02"], inv.hosts["nas1"]
    assert gpu01.vars["level"] == "gpu01-host_vars"
    assert gpu02.vars["level"] == "mi300-group_vars-20"  # group_vars/mi300/ read in name order
    assert gpu02.vars["from_dir_a"] == 1 and gpu02.vars["from_dir_b"] == 2
    assert nas1.vars["level"] == "all-group_vars"
    assert nas1.vars["shared_from_all"] is True
    # group_vars/mi300/ (a directory) is found first: group_vars/mi300.yml is not read
    assert all(h.vars["level"] != "should-not-be-read" for h in inv.hosts.values())
    src = Path(gpu02.var_sources["level"])
    assert gpu02.var_sources["level"].endswith("group_vars/mi300/20-b.yaml:1 (group_vars of 'mi300')")
    assert src.parts  # a path, not a bare label
    assert gpu01.var_sources["level"].endswith("host_vars/gpu01.yml:1 (host_vars of 'gpu01')")


def test_group_vars_beside_an_inventory_file(tmp_path: Path) -> None:
    inv_file = write(tmp_path / "prod" / "hosts", "[web]\nw1\n")
    write(tmp_path / "prod" / "group_vars" / "web.yml", "tier: front\n")
    write(tmp_path / "prod" / "host_vars" / "w1.json", '{"rack": 7}')
    h = load_inventory(inv_file).hosts["w1"]
    assert h.vars == {"tier": "front", "rack": 7}


def test_empty_vars_files_are_fine() -> None:
    """ansible-examples' apache example ships group_vars files holding only comments."""
    inv = load_inventory(FIXTURES / "ansible-examples/apache/hosts")
    assert inv.hosts["web1"].vars == {}


def test_inventory_paths_in_sources_are_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "inventory" / "c.yml", "c:\n  hosts:\n    h1:\n  vars:\n    hardware: mi300x\n")
    monkeypatch.chdir(tmp_path)
    inv = load_inventory("inventory")
    assert inv.hosts["h1"].var_sources["hardware"] == "inventory/c.yml:5 (group 'c')"


# --------------------------------------------------------------------------- connection settings


def test_connection_defaults(tmp_path: Path) -> None:
    h = load_inventory(write(tmp_path / "h.yml", "g:\n  hosts:\n    bare:\n")).hosts["bare"]
    assert (h.address, h.port, h.user, h.key_file, h.known_hosts_file) == ("bare", 22, None, None, None)


def test_connection_vars_and_ssh_aliases(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path / "h.yml",
            """\
g:
  hosts:
    new:
      ansible_host: 198.51.100.1
      ansible_port: 2201
      ansible_user: alice
      ansible_ssh_private_key_file: ~/.ssh/k
      known_hosts_file: ~/kh
    old:
      ansible_ssh_host: 198.51.100.2
      ansible_ssh_port: "2202"
      ansible_ssh_user: bob
      ansible_private_key_file: /keys/old
    both:
      ansible_host: 198.51.100.3
      ansible_ssh_host: 198.51.100.4
      ansible_port: 1
      ansible_ssh_port: 2
""",
        )
    )
    new, old, both = inv.hosts["new"], inv.hosts["old"], inv.hosts["both"]
    assert (new.address, new.port, new.user) == ("198.51.100.1", 2201, "alice")
    assert new.key_file == os.path.expanduser("~/.ssh/k") and not new.key_file.startswith("~")
    assert new.known_hosts_file == os.path.expanduser("~/kh")
    assert (old.address, old.port, old.user, old.key_file) == ("198.51.100.2", 2202, "bob", "/keys/old")
    assert (both.address, both.port) == ("198.51.100.4", 2)  # the ansible_ssh_* spelling wins, as in Ansible


def test_connection_vars_from_group_vars(tmp_path: Path) -> None:
    write(tmp_path / "inv" / "h.ini", "[lab]\nlab1 ansible_host=198.51.100.7\n")
    write(tmp_path / "inv" / "group_vars" / "lab.yml", "ansible_user: root\nansible_port: 2022\n")
    h = load_inventory(tmp_path / "inv").hosts["lab1"]
    assert (h.address, h.user, h.port) == ("198.51.100.7", "root", 2022)


def test_templated_connection_vars_are_rendered(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path / "h.yml",
            """\
all:
  vars:
    domain: lan.example
    ansible_host: "{{ inventory_hostname_short }}.{{ domain }}"
    ssh_port: 2200
    ansible_port: "{{ ssh_port + 2 }}"
  hosts:
    gpu1.old.example:
""",
        )
    )
    h = inv.hosts["gpu1.old.example"]
    assert (h.address, h.port) == ("gpu1.lan.example", 2202)
    assert h.vars["ansible_host"] == "{{ inventory_hostname_short }}.{{ domain }}"  # other uses see the raw value


def test_template_with_unknown_variable_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path / "h.yml", "g:\n  hosts:\n    h1:\n      ansible_host: '{{ nope }}.lan'\n")
    err = load_error(path)
    assert (err.path, err.line) == (str(path), 4)
    assert "ansible_host" in err.message and "nope" in err.message


@pytest.mark.parametrize("value", ["ssh", "0", "70000", "true", "[22]", "-1"])
def test_bad_port_names_the_file_and_line_that_set_it(tmp_path: Path, value: str) -> None:
    write(tmp_path / "inv" / "h.yml", "g:\n  hosts:\n    h1:\n")
    gv = write(tmp_path / "inv" / "group_vars" / "all.yml", f"# ports\nother: 1\nansible_port: {value}\n")
    err = load_error(tmp_path / "inv")
    assert (err.path, err.line) == (str(gv), 3)
    assert "host 'h1'" in err.message and "ansible_port" in err.message and "port number" in err.message


# --------------------------------------------------------------------------- bad input


def test_missing_inventory_path(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope")
    assert err.path == str(tmp_path / "nope") and "not found" in err.message


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("x:\n  host:\n    a:\n", 2, "unknown key 'host' in group 'x' (did you mean 'hosts'?)"),
        ("x:\n  hosts:\n    a:\n  chidlren:\n    y:\n", 4, "unknown key 'chidlren' in group 'x' (did you mean 'children'?)"),
        ("x:\n  var:\n    a: 1\n", 2, "(did you mean 'vars'?)"),
        ("x:\n  gpu01:\n", 2, "unknown key 'gpu01' in group 'x' (a group has hosts:, children: and vars:)"),
        ("x:\n  hosts:\n    a: 198.51.100.1\n", 3, "write 'ansible_host: 198.51.100.1'"),
        ("x:\n  hosts:\n    a: [1, 2]\n", 3, "must map to its variables (or nothing), not a list"),
        ("x:\n  hosts:\n    - a\n    - b\n", 2, "'hosts' of group 'x' must be a mapping of host names"),
        ("x:\n  children:\n    - y\n", 2, "'children' of group 'x' must be a mapping of group names"),
        ("x:\n  vars: oops\n", 2, "'vars' of group 'x' must be a mapping of variables"),
        ("x: [a, b]\n", 1, "group 'x' must be a mapping"),
        ("x:\n  hosts:\n    123:\n", 3, "host name 123 in group 'x' must be a string"),
        ("- a\n- b\n", 1, "a YAML inventory is a mapping of groups"),
        ("plugin: amazon.aws.aws_ec2\nregions: [x]\n", 1, "inventory plugin configs (plugin: amazon.aws.aws_ec2) are not supported"),
        ("x:\n  hosts:\n    a:\n  vars:\n    v: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      3333\n", 5, "Vault"),
        ("x:\n  hosts:\n    a:\n   bad indent: 1\n", 4, "invalid YAML"),
        ("x:\n  hosts:\n    a:\n  hosts:\n    b:\n", 4, "duplicate key 'hosts'"),
        ("x:\n  children:\n    x:\n", 3, "group 'x' as a child of 'x' makes a loop"),
        ("x:\n  children:\n    y:\n      children:\n        x:\n", 3, "group 'y' as a child of 'x' makes a loop"),
        ("x:\n  vars:\n    ansible_group_priority: high\n", 3, "ansible_group_priority must be an integer"),
        ("x:\n  hosts:\n    gpu[3:1]:\n", 3, "bad host range in 'gpu[3:1]'"),
    ],
)
def test_bad_yaml_inventory(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path / "bad.yml", text)
    err = load_error(path)
    assert err.path == str(path)
    assert err.line == line, err
    assert words in err.message, err


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("[web]\nw1\n[web:vars]\nnovalue\n", 4, "expected key=value in [web:vars], got 'novalue'"),
        ("[web]\nw1 root\n", 2, "expected key=value after host 'w1', got 'root'"),
        ("[web]\nw1 note=\"unclosed\n", 2, "cannot parse host line"),
        ("[web servers]\nw1\n", 1, "invalid section header '[web servers]'"),
        ("[web:child]\nw1\n", 1, "section [web:child] has unknown type 'child'"),
        ("[web]\nw1\n\n[all:children]\nweb\nwbe\n", 6, "[all:children] names unknown group 'wbe'"),
        ("[web]\nw1\n[db:vars]\nx=1\n", 3, "[db:vars] for a group that is not defined"),
        ("[web:children]\nbad:name\n", 2, "expected a group name in [web:children]"),
        ("---\nall:\n  hosts: {}\n", 1, "looks like a YAML file"),
        ("[web]\nw[1:x]\n", 2, "bad host range"),
        ("[web]\nw1:\n", 2, "ends in ':' without a port"),
        ("[web]\nw1\n[web:vars]\n=1\n", 4, "variable name '' must be a non-empty string"),
    ],
)
def test_bad_ini_inventory(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path / "bad.ini", text)
    err = load_error(path)
    assert err.path == str(path)
    assert err.line == line, err
    assert words in err.message, err


def test_children_may_be_defined_in_an_earlier_file_only(tmp_path: Path) -> None:
    write(tmp_path / "ok" / "01-groups.ini", "[mi300]\ngpu1\n")
    write(tmp_path / "ok" / "02-parents.ini", "[cluster:children]\nmi300\n")
    assert load_inventory(tmp_path / "ok").groups["cluster"].children == ["mi300"]
    write(tmp_path / "bad" / "01-parents.ini", "[cluster:children]\nmi300\n")
    write(tmp_path / "bad" / "02-groups.ini", "[mi300]\ngpu1\n")
    err = load_error(tmp_path / "bad")
    assert err.path == str(tmp_path / "bad" / "01-parents.ini") and err.line == 2


def test_bad_vars_file(tmp_path: Path) -> None:
    write(tmp_path / "inv" / "h.ini", "[web]\nw1\n")
    gv = write(tmp_path / "inv" / "group_vars" / "web.yml", "- not\n- a mapping\n")
    err = load_error(tmp_path / "inv")
    assert (err.path, err.line) == (str(gv), 1)
    assert "variables file must be a mapping" in err.message


def test_vault_file_refused(tmp_path: Path) -> None:
    write(tmp_path / "inv" / "h.ini", "[web]\nw1\n")
    gv = write(tmp_path / "inv" / "host_vars" / "w1.yml", "$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    err = load_error(tmp_path / "inv")
    assert err.path == str(gv) and "Vault" in err.message


def test_dynamic_inventory_script_refused(tmp_path: Path) -> None:
    script = write(tmp_path / "inv" / "ec2", "#!/usr/bin/env python3\nprint('{}')\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    err = load_error(tmp_path / "inv")
    assert err.path == str(script) and "dynamic inventory scripts are not supported" in err.message


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "bin.yml").write_bytes(b"\xff\xfe\x00bad")
    err = load_error(tmp_path / "inv")
    assert err.path == str(tmp_path / "inv" / "bin.yml") and "cannot read" in err.message


# --------------------------------------------------------------------------- warnings (Ansible warns too)


def test_warnings(tmp_path: Path) -> None:
    write(tmp_path / "inv" / "h.ini", "[web]\nw1\nweb\n[db]\nw1:2200\n")
    write(tmp_path / "inv" / "group_vars" / "wbe.yml", "x: 1\n")
    write(tmp_path / "inv" / "host_vars" / "w9.yml", "x: 1\n")
    inv = load_inventory(tmp_path / "inv")
    text = "\n".join(inv.warnings)
    assert "no group named 'wbe'" in text
    assert "no host named 'w9'" in text
    assert "'web' is both a group and a host" in text
    assert "port 2200 of 'w1' ignored" in text
    assert inv.hosts["w1"].port == 22
