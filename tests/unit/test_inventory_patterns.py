"""--hosts patterns: Ansible's syntax, Ansible's order, and errors for typos.

The expected host sets below are what `ansible PATTERN --list-hosts` prints for
the same inventory (checked with ansible-core 2.19), except where noted: Ansible
ignores a pattern part that matches nothing, llmfleet refuses it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet.errors import InputError
from llmfleet.inventory import Inventory, load_inventory, split_pattern

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


@pytest.fixture(scope="module")
def docs_inv() -> Inventory:
    """The 'what, where, when' example of Ansible's "How to build your inventory"."""
    return load_inventory(FIXTURES / "ansible-docs/multiple-groups.yml")


@pytest.fixture(scope="module")
def gpu_inv(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    path = tmp_path_factory.mktemp("inv") / "gpus.yml"
    path.write_text(
        """\
mi300-cluster:
  hosts:
    mi300-[01:04]:
mi355-cluster:
  hosts:
    mi355-01:
    mi355-02:
rack-a:
  hosts:
    mi300-02:
    mi355-01:
lab:
  hosts:
    lab1:
    lab2:
gpus:
  children:
    mi300-cluster:
    mi355-cluster:
"""
    )
    return load_inventory(path)


def names(inv: Inventory, pattern: str) -> list[str]:
    return [h.name for h in inv.select(pattern)]


MAIL, FOO, BAR, ONE, TWO, THREE = (f"{n}.example.com" for n in ("mail", "foo", "bar", "one", "two", "three"))


@pytest.mark.parametrize(
    "pattern,expected",
    [
        ("webservers", [FOO, BAR]),
        ("foo.example.com", [FOO]),
        ("webservers:dbservers", [FOO, BAR, ONE, TWO, THREE]),
        ("webservers,dbservers", [FOO, BAR, ONE, TWO, THREE]),
        (" webservers , dbservers ", [FOO, BAR, ONE, TWO, THREE]),
        ("webservers:!east", [BAR]),
        ("webservers,!east", [BAR]),
        ("webservers:&prod", [FOO]),
        ("prod:&webservers:!bar.example.com", [FOO]),
        ("east:!one.example.com", [FOO, TWO]),
        ("!east", [MAIL, BAR, THREE]),
        ("&prod", [FOO, ONE, TWO]),
        ("*.example.com", [MAIL, FOO, BAR, ONE, TWO, THREE]),
        ("one*", [ONE]),
        ("w*", [FOO, BAR, THREE]),  # groups webservers and west
        ("~(foo|bar)\\..*", [FOO, BAR]),
        ("all", [MAIL, FOO, BAR, ONE, TWO, THREE]),
        ("*", [MAIL, FOO, BAR, ONE, TWO, THREE]),
        ("ungrouped", [MAIL]),
        ("dbservers[0]", [ONE]),
        ("dbservers[1:2]", [TWO, THREE]),
        ("dbservers[1:]", [TWO, THREE]),
        ("dbservers[-1]", [THREE]),
        ("webservers:!nosuch", [FOO, BAR]),  # an exclusion that matches nothing is fine
    ],
)
def test_patterns_select_what_ansible_selects(docs_inv: Inventory, pattern: str, expected: list[str]) -> None:
    assert names(docs_inv, pattern) == expected


def test_result_is_in_pattern_order_without_duplicates(docs_inv: Inventory) -> None:
    """Ansible lists the parts' hosts in the order the parts are written (ansible-core 2.19 prints this)."""
    assert names(docs_inv, "dbservers,webservers,east,foo.example.com") == [ONE, TWO, THREE, FOO, BAR]


@pytest.mark.parametrize(
    "pattern,expected",
    [
        ("mi300-cluster", ["mi300-01", "mi300-02", "mi300-03", "mi300-04"]),
        ("gpus", ["mi300-01", "mi300-02", "mi300-03", "mi300-04", "mi355-01", "mi355-02"]),
        ("mi300-*", ["mi300-01", "mi300-02", "mi300-03", "mi300-04"]),  # glob over groups and hosts
        ("mi3??-0[!34]", ["mi300-01", "mi300-02", "mi355-01", "mi355-02"]),  # fnmatch classes
        ("mi300-cluster,!mi300-04", ["mi300-01", "mi300-02", "mi300-03"]),
        ("gpus:!mi355-cluster", ["mi300-01", "mi300-02", "mi300-03", "mi300-04"]),
        ("gpus:!*-0[!12]", ["mi300-01", "mi300-02", "mi355-01", "mi355-02"]),
        ("gpus:&rack-a", ["mi300-02", "mi355-01"]),
        ("lab2,lab1", ["lab2", "lab1"]),  # pattern order, as Ansible
        ("mi300-cluster[0]", ["mi300-01"]),
        ("mi300-cluster[0:1]", ["mi300-01", "mi300-02"]),
        ("!gpus", ["lab1", "lab2"]),
    ],
)
def test_gpu_cluster_patterns(gpu_inv: Inventory, pattern: str, expected: list[str]) -> None:
    assert names(gpu_inv, pattern) == expected


def test_select_returns_host_objects(gpu_inv: Inventory) -> None:
    [host] = gpu_inv.select("mi355-02")
    assert host is gpu_inv.hosts["mi355-02"]


@pytest.mark.parametrize(
    "pattern,parts",
    [
        ("a,b", ["a", "b"]),
        ("a:b:!c:&d", ["a", "b", "!c", "&d"]),
        ("web[1:2]", ["web[1:2]"]),  # a range/subscript is not a separator
        ("fe80::1", ["fe80::1"]),  # an IPv6 address is one host
        ("host:22", ["host:22"]),
        ("a, ,b,", ["a", "b"]),
        ("", []),
    ],
)
def test_split_pattern(pattern: str, parts: list[str]) -> None:
    assert split_pattern(pattern) == parts


def error_of(inv: Inventory, pattern: str) -> InputError:
    with pytest.raises(InputError) as err:
        inv.select(pattern)
    assert "\n" not in str(err.value)
    return err.value


def test_unknown_part_names_it_and_lists_groups(gpu_inv: Inventory) -> None:
    err = error_of(gpu_inv, "mi300-clstr")
    assert "'mi300-clstr' matches no host or group" in err.message
    assert "did you mean 'mi300-cluster'?" in err.message
    assert "groups in " in err.message
    assert "all, mi300-cluster, mi355-cluster, rack-a, lab, gpus" in err.message
    assert "ungrouped" not in err.message  # empty here: not worth listing


def test_one_bad_part_fails_the_whole_pattern(gpu_inv: Inventory) -> None:
    """Ansible would quietly run on mi300-cluster alone; a typo must not shrink a deploy."""
    err = error_of(gpu_inv, "mi300-cluster,mi355-clutser")
    assert "'mi355-clutser' matches no host or group" in err.message


def test_unmatched_intersection_is_an_error(gpu_inv: Inventory) -> None:
    assert "'&rack-b' matches no host or group" in error_of(gpu_inv, "gpus:&rack-b").message


def test_empty_result_is_an_error(gpu_inv: Inventory) -> None:
    err = error_of(gpu_inv, "lab:&rack-a")
    assert "selects no hosts" in err.message
    assert "mi300-cluster" in err.message
    assert "selects no hosts" in error_of(gpu_inv, "lab:!lab*").message


@pytest.mark.parametrize(
    "pattern,words",
    [
        ("", "empty host pattern"),
        (" , ", "empty host pattern"),
        ("~gpu(", "not a valid pattern"),
        ("mi300-cluster[7]", "subscript out of range"),
    ],
)
def test_malformed_patterns(gpu_inv: Inventory, pattern: str, words: str) -> None:
    assert words in error_of(gpu_inv, pattern).message


def test_trailing_brackets_are_a_subscript_as_in_ansible(gpu_inv: Inventory) -> None:
    """`mi300-0[12]` is host number 12 of `mi300-0`, not a character class (Ansible's reading)."""
    assert "'mi300-0[12]' matches no host or group" in error_of(gpu_inv, "mi300-0[12]").message
    assert names(gpu_inv, "mi300-0[!34]") == ["mi300-01", "mi300-02"]


def test_an_empty_group_is_known_but_selects_nothing(tmp_path: Path) -> None:
    (tmp_path / "i.yml").write_text("web:\n  hosts:\n    w1:\nempty:\n")
    inv = load_inventory(tmp_path / "i.yml")
    assert names(inv, "web:empty") == ["w1"]
    err = error_of(inv, "empty")
    assert "--hosts 'empty' selects no hosts" in err.message
    assert "did you mean" not in err.message


def test_an_empty_inventory_selects_nothing(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    inv = load_inventory(tmp_path / "inv")
    assert inv.hosts == {}
    assert "selects no hosts" in error_of(inv, "all").message
