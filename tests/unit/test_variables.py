"""Variable precedence: role defaults < inventory < playbook vars < command line, and the
inventory's own order (all < parents < children, same depth by priority then name,
group_vars files, host vars, host_vars files). Hosts come from real inventory files."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from llmfleet import yamlsrc
from llmfleet.inventory import Host, load_inventory
from llmfleet.variables import COMMAND_LINE, INVENTORY, LAYERS, PLAYBOOK, ROLE_DEFAULTS, ResolvedVars, resolve


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def host_with(tmp_path: Path, inventory_vars: dict[str, object]) -> Host:
    lines = "".join(f"      {k}: {v!r}\n" for k, v in inventory_vars.items())
    inv = write(tmp_path / "hosts.yml", "g:\n  hosts:\n    h1:\n" + (lines or ""))
    return load_inventory(inv).hosts["h1"]


# --------------------------------------------------------------------------- the four layers


@pytest.mark.parametrize(
    "present",
    [subset for n in range(1, 5) for subset in itertools.combinations(LAYERS, n)],
    ids=lambda s: "+".join(x.split()[0] for x in s),
)
def test_highest_layer_that_sets_a_value_wins(tmp_path: Path, present: tuple[str, ...]) -> None:
    """Every non-empty combination of layers setting `x`: the highest present one wins."""
    role = {"x": "role"} if ROLE_DEFAULTS in present else {}
    host = host_with(tmp_path, {"x": "inventory"} if INVENTORY in present else {})
    playbook = {"x": "playbook"} if PLAYBOOK in present else {}
    cli = {"x": "cli"} if COMMAND_LINE in present else {}
    v = resolve(role, host, playbook, cli)
    winner = present[-1]  # LAYERS is lowest first and combinations keep that order
    assert v["x"] == {ROLE_DEFAULTS: "role", INVENTORY: "inventory", PLAYBOOK: "playbook", COMMAND_LINE: "cli"}[winner]
    assert v.layer("x") == winner
    assert [s.layer for s in v.chain("x")] == list(present)


@pytest.mark.parametrize("below", [ROLE_DEFAULTS, INVENTORY, PLAYBOOK])
def test_flag_not_given_does_not_override(tmp_path: Path, below: str) -> None:
    role = {"context_length": 1} if below == ROLE_DEFAULTS else {}
    host = host_with(tmp_path, {"context_length": 2} if below == INVENTORY else {})
    playbook = {"context_length": 3} if below == PLAYBOOK else {}
    v = resolve(role, host, playbook, {"context_length": None})
    assert v["context_length"] == {ROLE_DEFAULTS: 1, INVENTORY: 2, PLAYBOOK: 3}[below]
    assert v.layer("context_length") == below


def test_flag_not_given_and_set_nowhere_is_absent(tmp_path: Path) -> None:
    v = resolve({}, host_with(tmp_path, {}), {}, {"eagle3": None})
    assert "eagle3" not in v
    with pytest.raises(KeyError):
        v["eagle3"]


def test_falsy_flags_do_override(tmp_path: Path) -> None:
    """Only None means "not given": False, 0 and "" are values the user chose."""
    v = resolve({"eagle3": True, "tp": 8, "note": "x"}, host_with(tmp_path, {}), {}, {"eagle3": False, "tp": 0, "note": ""})
    assert (v["eagle3"], v["tp"], v["note"]) == (False, 0, "")


def test_none_in_other_layers_is_a_value(tmp_path: Path) -> None:
    """A YAML `tp:` with no value in the playbook deliberately resets the role default."""
    v = resolve({"tp": 8}, host_with(tmp_path, {}), {"tp": None}, {})
    assert v["tp"] is None and v.layer("tp") == PLAYBOOK


def test_dicts_are_replaced_not_merged(tmp_path: Path) -> None:
    v = resolve({"env": {"A": "1", "B": "2"}}, host_with(tmp_path, {}), {"env": {"B": "3"}}, {})
    assert v["env"] == {"B": "3"}


def test_without_a_host(tmp_path: Path) -> None:
    v = resolve({"a": 1}, None, {"b": 2}, {"c": 3, "d": None})
    assert dict(v) == {"a": 1, "b": 2, "c": 3}


def test_layers_do_not_mutate_their_inputs(tmp_path: Path) -> None:
    role, playbook, cli = {"a": 1}, {"a": 2}, {"a": 3}
    host = host_with(tmp_path, {"a": 4})
    resolve(role, host, playbook, cli)
    assert (role, playbook, cli, host.vars["a"]) == ({"a": 1}, {"a": 2}, {"a": 3}, 4)


def test_is_a_mapping(tmp_path: Path) -> None:
    v = resolve({"a": 1, "b": 2}, host_with(tmp_path, {"c": 3}), {}, {"a": 9})
    assert isinstance(v, ResolvedVars)
    assert len(v) == 3 and set(v) == {"a", "b", "c"} and dict(v) == {"a": 9, "b": 2, "c": 3}
    assert v.get("zz", "default") == "default"


# --------------------------------------------------------------------------- sources


def test_sources_name_the_layer_file_and_line(tmp_path: Path) -> None:
    defaults = yamlsrc.load(write(tmp_path / "roles" / "r" / "defaults.yml", "# defaults\nquant: bf16\nport: 8000\ntp: 8\n"))
    playbook = yamlsrc.load(write(tmp_path / "playbooks" / "deploy.yml", "port: 30000\n"))
    host = host_with(tmp_path, {"tp": 4})
    v = resolve(defaults, host, playbook, {"context_length": 65536, "quant": None})
    assert v.source("quant") == f"role defaults ({tmp_path}/roles/r/defaults.yml:2)"
    assert v.source("port") == f"playbook vars ({tmp_path}/playbooks/deploy.yml:1)"
    assert v.source("tp") == f"inventory ({tmp_path}/hosts.yml:4 (host 'h1'))"
    assert v.source("context_length") == "command line (--context-length)"
    with pytest.raises(KeyError):
        v.source("nope")


def test_plain_dicts_give_the_layer_alone(tmp_path: Path) -> None:
    v = resolve({"a": 1}, None, {"b": 2}, {})
    assert (v.source("a"), v.source("b")) == ("role defaults", "playbook vars")


def test_explain_shows_what_was_overridden(tmp_path: Path) -> None:
    v = resolve({"context_length": 65536}, host_with(tmp_path, {"context_length": 131072}), {}, {"context_length": 200000})
    text = v.explain("context_length")
    assert text.startswith("context_length = 200000 from command line (--context-length); overrides ")
    assert text.index("inventory (") < text.index("role defaults = 65536")
    assert "= 131072" in text
    assert resolve({"a": 1}, None, {}, {}).explain("a") == "a = 1 from role defaults"


# --------------------------------------------------------------------------- the inventory's own order


def inventory_host(tmp_path: Path, files: dict[str, str], host: str = "h1") -> Host:
    for rel, text in files.items():
        write(tmp_path / "inv" / rel, text)
    return load_inventory(tmp_path / "inv").hosts[host]


def test_child_group_beats_parent_beats_all(tmp_path: Path) -> None:
    h = inventory_host(
        tmp_path,
        {
            "h.yml": """\
all:
  vars: {x: all, y: all, z: all}
  children:
    parent:
      vars: {x: parent, y: parent}
      children:
        child:
          vars: {x: child}
          hosts: {h1: }
"""
        },
    )
    v = resolve({"x": "role", "w": "role"}, h, {}, {})
    assert (v["x"], v["y"], v["z"], v["w"]) == ("child", "parent", "all", "role")
    assert "group 'child'" in v.source("x") and "group 'parent'" in v.source("y") and "group 'all'" in v.source("z")


def test_depth_not_file_order_decides(tmp_path: Path) -> None:
    """The child is written first and the parent last: the child still wins."""
    h = inventory_host(
        tmp_path,
        {
            "a.ini": "[child]\nh1\n[child:vars]\nx=child\n",
            "b.ini": "[parent:children]\nchild\n[parent:vars]\nx=parent\n",
        },
    )
    assert h.vars["x"] == "child"


def test_same_depth_later_name_wins(tmp_path: Path) -> None:
    h = inventory_host(tmp_path, {"h.ini": "[b_group]\nh1\n[b_group:vars]\nx=b\n[a_group]\nh1\n[a_group:vars]\nx=a\n"})
    assert h.vars["x"] == "b"
    assert h.groups == ["all", "a_group", "b_group"]


def test_same_depth_priority_beats_name(tmp_path: Path) -> None:
    h = inventory_host(
        tmp_path,
        {"h.yml": "a_group:\n  hosts: {h1: }\n  vars: {x: a, ansible_group_priority: 10}\nb_group:\n  hosts: {h1: }\n  vars: {x: b}\n"},
    )
    assert h.vars["x"] == "a"
    assert "ansible_group_priority" not in h.vars  # steers the order, is not a variable


def test_priority_does_not_beat_depth(tmp_path: Path) -> None:
    h = inventory_host(
        tmp_path,
        {
            "h.yml": """\
parent:
  vars: {x: parent, ansible_group_priority: 100}
  children:
    child:
      hosts: {h1: }
      vars: {x: child}
"""
        },
    )
    assert h.vars["x"] == "child"


def test_group_vars_files_beat_every_inventory_group_var(tmp_path: Path) -> None:
    """Ansible's order: group_vars/all outranks even a child group's vars written in the inventory."""
    h = inventory_host(
        tmp_path,
        {
            "h.yml": "parent:\n  children:\n    child:\n      hosts: {h1: }\n      vars: {x: child-inventory, y: child-inventory}\n",
            "group_vars/all.yml": "x: all-group_vars\ny: all-group_vars\n",
            "group_vars/child.yml": "y: child-group_vars\n",
        },
    )
    assert h.vars["x"] == "all-group_vars"
    assert h.vars["y"] == "child-group_vars"
    assert h.var_sources["x"].endswith("group_vars/all.yml:1 (group_vars of 'all')")


def test_group_vars_files_follow_group_depth(tmp_path: Path) -> None:
    h = inventory_host(
        tmp_path,
        {
            "h.yml": "parent:\n  children:\n    child:\n      hosts: {h1: }\n",
            "group_vars/child.yml": "x: child\n",
            "group_vars/parent.yml": "x: parent\ny: parent\n",
        },
    )
    assert (h.vars["x"], h.vars["y"]) == ("child", "parent")


def test_host_vars_beat_group_vars_files_and_host_vars_files_beat_inventory_host_vars(tmp_path: Path) -> None:
    h = inventory_host(
        tmp_path,
        {
            "h.yml": "g:\n  hosts:\n    h1: {x: host-inventory, y: host-inventory}\n",
            "group_vars/g.yml": "x: group_vars\ny: group_vars\nz: group_vars\n",
            "host_vars/h1.yml": "y: host_vars\n",
        },
    )
    assert (h.vars["x"], h.vars["y"], h.vars["z"]) == ("host-inventory", "host_vars", "group_vars")


def test_later_file_wins_at_the_same_level(tmp_path: Path) -> None:
    h = inventory_host(tmp_path, {"01.yml": "g:\n  hosts: {h1: }\n  vars: {x: first}\n", "02.yml": "g:\n  vars: {x: second}\n"})
    assert h.vars["x"] == "second"
    assert "02.yml" in h.var_sources["x"]


def test_precedence_fixture_end_to_end() -> None:
    """tests/fixtures/inventories/ours/precedence (also checked against ansible-inventory)."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "inventories" / "ours" / "precedence"
    h = load_inventory(fixtures).hosts["h1"]
    assert h.vars["v_all"] == "inventory-all"
    assert h.vars["v_depth"] == "child_b"  # depth 2 beats parent (1) and zeta (1)
    assert h.vars["v_prio"] == "child_b"  # priority 5 beats child_a's default 1
    # group_vars files outrank inventory vars; among them child_a (depth 2) beats zeta (depth 1)
    assert h.vars["v_name"] == "group_vars-child_a"
    assert h.vars["v_gv_all_over_child"] == "group_vars-all"
    assert h.vars["v_host"] == "host_vars"
    assert h.vars["v_file_host"] == "host_vars"
    v = resolve({"v_depth": "role", "only_role": 1}, h, {"v_host": "playbook"}, {"v_host": None})
    assert (v["v_depth"], v["only_role"], v["v_host"]) == ("child_b", 1, "playbook")
