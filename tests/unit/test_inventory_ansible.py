"""Real Ansible inventories read the way Ansible reads them.

The fixtures under tests/fixtures/inventories/ are examples from Ansible's
documentation and repositories (SOURCES.md there says which). For each one,
tests/fixtures/inventories/expected/ holds what `ansible-inventory --list`
(ansible-core 2.19) printed for it: groups, their hosts and children, and every
host's merged variables. Our loader must give the same.

When `ansible-inventory` is installed (pip install ansible-core; or point
$LLMFLEET_ANSIBLE_INVENTORY at it), the same comparison also runs live, and on
randomly generated inventories (YAML and INI split over files, nested groups,
priorities, group_vars and host_vars). Regenerate the expected files with:

    python tests/unit/test_inventory_ansible.py --regen
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmfleet.errors import InputError
from llmfleet.inventory import load_inventory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
EXPECTED = FIXTURES / "expected"

# (inventory path relative to FIXTURES) - each has expected/<name>.json
CASES = [
    "ansible-docs/basic.ini",
    "ansible-docs/basic.yml",
    "ansible-docs/multiple-groups.yml",
    "ansible-docs/parent-child.yml",
    "ansible-docs/ranges.ini",
    "ansible-docs/ranges.yml",
    "ansible-docs/host-vars.ini",
    "ansible-docs/host-vars.yml",
    "ansible-docs/group-vars.ini",
    "ansible-docs/group-vars.yml",
    "ansible-docs/groups-of-groups.yml",
    "ansible-docs/group-priority.yml",
    "ansible-docs/behavioral.ini",
    "ansible-docs/inventory_test",
    "ansible-plugin-docs/ini-example1.ini",
    "ansible-plugin-docs/ini-example2.ini",
    "ansible-plugin-docs/yaml-example.yml",
    "ansible-tests/inventory_yaml/test.yml",
    "ansible-tests/complex.ini",
    "ansible-tests/value-types.ini",
    "ansible-tests/none_values.yml",
    "ansible-tests/inv_with_int.yml",
    "ansible-tests/implicit_grouping.ini",
    "ansible-examples/hadoop/hosts",
    "ansible-examples/apache/hosts",
    "ours/mixed-dir",
    "ours/precedence",
]

# Inventories Ansible itself refuses: (path, line, words our one-line error must contain)
REFUSED = [
    ("ansible-docs/groups-of-groups.ini", 21, "[usa:children] names unknown group 'northeast'"),
]


def expected_name(case: str) -> Path:
    return EXPECTED / (case.replace("/", "__") + ".json")


def _unwrap(value: Any) -> Any:
    """ansible-inventory prints some strings as {"__ansible_unsafe": "..."}: they are strings."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def normalize(listing: dict[str, Any]) -> dict[str, Any]:
    """The comparable part of `ansible-inventory --list` output (or Inventory.to_ansible_json())."""
    listing = json.loads(json.dumps(listing))  # int keys become strings, as in Ansible's JSON
    groups = {}
    for name, body in listing.items():
        if name == "_meta":
            continue
        entry = {"hosts": list(body.get("hosts", [])), "children": sorted(body.get("children", []))}
        if entry["hosts"] or entry["children"]:
            groups[name] = entry
    hostvars = {h: _unwrap(v) for h, v in listing["_meta"]["hostvars"].items() if v}
    return {"groups": dict(sorted(groups.items())), "hostvars": dict(sorted(hostvars.items()))}


def ours(path: Path) -> dict[str, Any]:
    return normalize(load_inventory(path).to_ansible_json())


# --------------------------------------------------------------------------- committed goldens


@pytest.mark.parametrize("case", CASES)
def test_reads_like_ansible(case: str) -> None:
    expected = json.loads(expected_name(case).read_text())
    assert ours(FIXTURES / case) == {"groups": expected["groups"], "hostvars": expected["hostvars"]}


def test_every_golden_has_a_case() -> None:
    names = {expected_name(c).name for c in CASES}
    assert {p.name for p in EXPECTED.glob("*.json")} == names


def test_matches_ansibles_own_expected_output() -> None:
    """ansible/ansible's inventory_yaml test ships the output it expects: ours must equal it."""
    upstream = json.loads((FIXTURES / "ansible-tests/inventory_yaml/success.json").read_text())
    assert ours(FIXTURES / "ansible-tests/inventory_yaml/test.yml") == normalize(upstream)


@pytest.mark.parametrize("case,line,words", REFUSED)
def test_refuses_what_ansible_refuses(case: str, line: int, words: str) -> None:
    with pytest.raises(InputError) as err:
        load_inventory(FIXTURES / case)
    assert err.value.line == line
    assert words in err.value.message
    assert err.value.path == str(FIXTURES / case)


# --------------------------------------------------------------------------- live Ansible


def ansible_inventory_bin() -> str | None:
    return os.environ.get("LLMFLEET_ANSIBLE_INVENTORY") or shutil.which("ansible-inventory")


def run_ansible(path: Path, scratch: Path) -> dict[str, Any] | None:
    """`ansible-inventory --list` on path, isolated from any ansible.cfg; None if Ansible refuses it."""
    binary = ansible_inventory_bin()
    assert binary
    scratch.mkdir(parents=True, exist_ok=True)
    cfg = scratch / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    cwd = scratch / "cwd"  # no playbook-adjacent group_vars
    cwd.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_HOME=str(scratch / "home"),
        ANSIBLE_LOCAL_TEMP=str(scratch / "tmp"),
        ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1",
    )
    proc = subprocess.run(
        [binary, "-i", str(path.resolve()), "--list"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return normalize(json.loads(proc.stdout))


needs_ansible = pytest.mark.skipif(
    ansible_inventory_bin() is None, reason="ansible-inventory not installed (pip install ansible-core)"
)


@needs_ansible
@pytest.mark.parametrize("case", CASES)
def test_live_same_as_ansible(case: str, tmp_path: Path) -> None:
    assert ours(FIXTURES / case) == run_ansible(FIXTURES / case, tmp_path)


@needs_ansible
@pytest.mark.parametrize("case,line,words", REFUSED)
def test_live_ansible_refuses_too(case: str, line: int, words: str, tmp_path: Path) -> None:
    assert run_ansible(FIXTURES / case, tmp_path) is None


@needs_ansible
@pytest.mark.parametrize("seed", range(25))
def test_live_random_inventories_same_as_ansible(seed: int, tmp_path: Path) -> None:
    inv = generate(seed, tmp_path / "inv")
    assert ours(inv) == run_ansible(inv, tmp_path / "scratch")


# --------------------------------------------------------------------------- random inventories

_VARS = ("a", "b", "c", "d")


def _value(rng: random.Random) -> Any:
    return rng.choice([rng.randint(0, 99), f"s{rng.randint(0, 9)}", True, None, [1, 2], {"k": rng.randint(0, 3)}])


def _ini(value: Any) -> str:
    return str(value) if value is None or isinstance(value, bool) else json.dumps(value)


def generate(seed: int, root: Path) -> Path:
    """A random inventory directory: groups over 1-3 YAML/INI files, a DAG of children, vars everywhere."""
    rng = random.Random(seed)
    groups = [f"g{i}{rng.choice('xyz')}" for i in range(rng.randint(2, 7))]
    hosts = [f"h{i}" for i in range(rng.randint(1, 8))]
    children = {g: [c for c in groups[i + 1 :] if rng.random() < 0.3] for i, g in enumerate(groups)}
    members = {g: [h for h in hosts if rng.random() < 0.35] for g in groups}
    gvars = {g: {v: _value(rng) for v in _VARS if rng.random() < 0.4} for g in groups + ["all"]}
    for g in groups:
        if rng.random() < 0.3:
            gvars[g]["ansible_group_priority"] = rng.randint(0, 3)
    hvars = {h: {v: _value(rng) for v in _VARS if rng.random() < 0.2} for h in hosts}
    nfiles = rng.randint(1, 3)
    placed: dict[int, list[str]] = {}
    for g in groups:
        placed.setdefault(rng.randrange(nfiles), []).append(g)
    root.mkdir(parents=True)
    for i in range(nfiles):
        last = i == nfiles - 1  # children edges, 'all' vars and every host's own vars go in the last file
        if rng.random() < 0.5:
            doc: dict[str, Any] = {}
            for g in placed.get(i, []):
                body: dict[str, Any] = {}
                if members[g]:
                    body["hosts"] = {h: (hvars[h] or None) if rng.random() < 0.5 else None for h in members[g]}
                if gvars[g]:
                    body["vars"] = gvars[g]
                doc[g] = body or None
            if last:
                doc["all"] = {"vars": gvars["all"]} if gvars["all"] else None
                for g in groups:
                    if children[g]:
                        doc[g] = doc.get(g) or {}
                        doc[g]["children"] = {c: None for c in children[g]}
                doc["ungrouped"] = {"hosts": {h: hvars[h] or None for h in hosts}}
            if doc:  # Ansible reads a file holding only {} as INI (a host named '{}'): not copied
                (root / f"{i:02d}-part.yml").write_text(json.dumps(doc, indent=1))
        else:
            out: list[str] = []
            for g in placed.get(i, []):
                out.append(f"[{g}]")
                for h in members[g]:
                    own = hvars[h].items() if rng.random() < 0.5 else []
                    out.append(h + "".join(f" {k}='{_ini(v)}'" for k, v in own))
                if gvars[g]:
                    out.append(f"[{g}:vars]")
                    out += [f"{k}={_ini(v)}" for k, v in gvars[g].items()]
            if last:
                out += [f"[{g}]" for g in groups]
                out.append("[ungrouped]")
                out += [h + "".join(f" {k}='{_ini(v)}'" for k, v in hvars[h].items()) for h in hosts]
                if gvars["all"]:
                    out.append("[all:vars]")
                    out += [f"{k}={_ini(v)}" for k, v in gvars["all"].items()]
                for g in groups:
                    if children[g]:
                        out.append(f"[{g}:children]")
                        out += children[g]
            (root / f"{i:02d}-part.ini").write_text("\n".join(out) + "\n")
    (root / "group_vars").mkdir()
    (root / "host_vars").mkdir()
    for g in groups + ["all"]:
        if rng.random() < 0.4:
            (root / "group_vars" / f"{g}.yml").write_text(json.dumps({v: _value(rng) for v in _VARS if rng.random() < 0.5}))
    for h in hosts:
        if rng.random() < 0.3:
            (root / "host_vars" / h).write_text(json.dumps({v: _value(rng) for v in _VARS if rng.random() < 0.5}))
    return root


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a, b = generate(7, tmp_path / "a"), generate(7, tmp_path / "b")
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    assert all((a / f).read_text() == (b / f).read_text() for f in files_a)


# --------------------------------------------------------------------------- regeneration


def regenerate() -> None:
    import tempfile

    binary = ansible_inventory_bin()
    if not binary:
        sys.exit("ansible-inventory not found: pip install ansible-core, or set LLMFLEET_ANSIBLE_INVENTORY")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    EXPECTED.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for case in CASES:
            result = run_ansible(FIXTURES / case, Path(scratch) / case.replace("/", "_"))
            if result is None:
                sys.exit(f"Ansible refuses {case}")
            doc = {"_generated_by": f"{version} --list, normalized by {Path(__file__).name}", **result}
            expected_name(case).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
            print("wrote", expected_name(case).relative_to(FIXTURES))


if __name__ == "__main__":
    if sys.argv[1:] == ["--regen"]:
        regenerate()
    else:
        sys.exit(__doc__)
