"""Host order: `--hosts PATTERN` lists the same hosts in the same order as ansible-core.

For each inventory (the published fixtures, kolla-ansible's `multinode` among
them, and randomly generated ones), ansible-core's InventoryManager runs in a
child process (isolated from any ansible.cfg) and lists the hosts of many
patterns: every group, its subscripts `[0]`, `[-1]`, `[1:3]`, `all`, `*`,
unions, `&` intersections and `!` exclusions. Ours must give the same list.

One caveat comes from Ansible itself: below a group's direct children it walks
the groups of one level out of a Python set, so when two groups of a level both
have children its order changes from run to run (kolla's `all` is such a case).
The child process reports which groups are ambiguous that way; for patterns
touching them only the host *set* is compared (and, for subscripts, nothing).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmfleet.errors import InputError
from llmfleet.inventory import Inventory, load_inventory
from llmfleet.inventory.patterns import (
    compile_matcher,
    order_parts,
    split_pattern,
    split_subscript,
)
from tests.unit.test_inventory_ansible import generate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
KOLLA = FIXTURES / "kolla-ansible" / "multinode"

CASES = [
    "kolla-ansible/multinode",
    "ansible-docs/multiple-groups.yml",
    "ansible-docs/parent-child.yml",
    "ansible-docs/groups-of-groups.yml",
    "ansible-docs/group-priority.yml",
    "ansible-docs/ranges.yml",
    "ansible-docs/behavioral.ini",
    "ansible-plugin-docs/yaml-example.yml",
    "ansible-plugin-docs/ini-example2.ini",
    "ansible-tests/complex.ini",
    "ansible-tests/inventory_yaml/test.yml",
    "ansible-examples/hadoop/hosts",
    "ours/mixed-dir",
    "ours/precedence",
]

# Runs in a child process: ansible-core's own answer for each pattern, and which groups
# it walks in a set-dependent order.
_ANSIBLE_SIDE = r"""
import json, sys
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader

request = json.load(sys.stdin)
inv = InventoryManager(loader=DataLoader(), sources=[request["inventory"]])

def ambiguous(group):
    seen, level = set(), {group} | set(group.child_groups)
    while level:
        seen.update(level)
        if sum(1 for g in level if any(c not in seen for c in g.child_groups)) > 1:
            return True
        level = {c for g in level for c in g.child_groups} - seen
    return False

results = {}
for pattern in request["patterns"]:
    inv.clear_pattern_cache()
    try:
        results[pattern] = [h.name for h in inv.get_hosts(pattern)]
    except AnsibleError as exc:
        results[pattern] = {"error": str(exc).splitlines()[0]}
groups = inv.groups
print(json.dumps({"results": results, "ambiguous": sorted(n for n, g in groups.items() if ambiguous(g))}))
"""


def ansible_core_available() -> bool:
    try:
        import ansible.release  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(not ansible_core_available(), reason="ansible-core not installed (pip install ansible-core)")


def ansible_lists(inventory: Path, patterns: list[str], scratch: Path) -> dict[str, Any]:
    """ansible-core's host lists for the patterns, isolated from any ansible.cfg or home directory."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "ansible.cfg").write_text("[defaults]\n")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(scratch / "ansible.cfg"),
        ANSIBLE_HOME=str(scratch / "home"),
        ANSIBLE_LOCAL_TEMP=str(scratch / "tmp"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _ANSIBLE_SIDE],
        input=json.dumps({"inventory": str(inventory.resolve()), "patterns": patterns}),
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def patterns_for(inv: Inventory) -> list[str]:
    """Every group with subscripts, plus unions, intersections and exclusions of neighbouring groups."""
    groups = [g for g in inv.groups if g not in ("all", "ungrouped")]
    out = ["all", "*", "all[0]", "all[-1]", "ungrouped"]
    for g in groups:
        out += [g, f"{g}[0]", f"{g}[-1]", f"{g}[1:3]", f"{g}[1:]"]
    for a, b in itertools.pairwise(groups):
        out += [f"{b},{a}", f"{a}:&{b}", f"{a}:!{b}", f"!{a}", f"{b}[-1],{a}[0]"]
    hosts = list(inv.hosts)
    if hosts:
        out += [f"{hosts[-1]},{hosts[0]}", f"all:!{hosts[0]}", f"{hosts[0][:2]}*"]
    return out


def ours(inv: Inventory, pattern: str) -> list[str] | None:
    """Our selection; None where we refuse (Ansible then prints no host, or an error)."""
    try:
        return [h.name for h in inv.select(pattern)]
    except InputError:
        return None


def touched_groups(inv: Inventory, pattern: str) -> set[str]:
    """Groups whose walk order a pattern depends on."""
    out: set[str] = set()
    for part in order_parts(split_pattern(pattern)):
        expr, _ = split_subscript(part.lstrip("!&"))
        matcher = compile_matcher(expr, part)
        out.update(g for g in inv.groups if matcher(g))
    return out


def compare(inventory: Path, scratch: Path) -> dict[str, int]:
    """Assert ours equals ansible-core's answer for every pattern; count how each was compared."""
    inv = load_inventory(inventory)
    patterns = patterns_for(inv)
    answer = ansible_lists(inventory, patterns, scratch)
    ambiguous = set(answer["ambiguous"])
    counts = {"order": 0, "set": 0, "skipped": 0, "refused": 0}
    for pattern in patterns:
        theirs, mine = answer["results"][pattern], ours(inv, pattern)
        if mine is None:  # we refuse: Ansible must have selected nothing (or failed)
            assert theirs == [] or isinstance(theirs, dict), (pattern, theirs)
            counts["refused"] += 1
            continue
        assert isinstance(theirs, list), (pattern, theirs, mine)
        if touched_groups(inv, pattern) & ambiguous:
            if "[" in pattern:
                counts["skipped"] += 1
            else:
                assert sorted(mine) == sorted(theirs), pattern
                counts["set"] += 1
            continue
        assert mine == theirs, pattern
        counts["order"] += 1
    return counts


@pytest.mark.parametrize("case", CASES)
def test_same_hosts_in_the_same_order_as_ansible(case: str, tmp_path: Path) -> None:
    counts = compare(FIXTURES / case, tmp_path)
    assert counts["order"] > 0  # something was compared exactly


@pytest.mark.parametrize("seed", range(12))
def test_random_inventories_same_order_as_ansible(seed: int, tmp_path: Path) -> None:
    compare(generate(seed, tmp_path / "inv"), tmp_path / "scratch")


def test_kolla_baremetal_last_is_ansibles(tmp_path: Path) -> None:
    """The case from the issue: children order, not file order, decides `baremetal[-1]`."""
    inv = load_inventory(KOLLA)
    assert [h.name for h in inv.select("baremetal[-1]")] == ["monitoring01"]  # storage01 appears later in the file
    answer = ansible_lists(KOLLA, ["baremetal[-1]", "baremetal", "telegraf[0]"], tmp_path)["results"]
    assert answer["baremetal[-1]"] == ["monitoring01"]
    assert [h.name for h in inv.select("baremetal")] == answer["baremetal"]
    assert [h.name for h in inv.select("telegraf[0]")] == answer["telegraf[0]"] == ["compute01"]


def test_kolla_counts(tmp_path: Path) -> None:
    """Most kolla patterns are compared in exact order; only Ansible's set-ordered walks fall back to sets."""
    counts = compare(KOLLA, tmp_path)
    assert counts["order"] > 500 and counts["order"] > 4 * (counts["set"] + counts["skipped"]), counts
