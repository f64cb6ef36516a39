"""Hostile inventories: no code runs, no traceback, no hang, no memory blow-up.

Issue 7, classes 1 (code from an inventory) and 3 (resource exhaustion). Every
case below must end in an InputError naming the file (and line where there is
one), quickly, or load harmlessly. HOSTILE_COUNT at the bottom says how many
hostile inputs this file tries (the property tests add generated ones).
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmfleet import yamlsrc
from llmfleet.errors import InputError
from llmfleet.inventory import Inventory, load_inventory
from llmfleet.templating import TemplateValueError, render_template_value

# LLMFLEET_HYPOTHESIS_EXAMPLES=2000 for a longer hunt than the suite's default.
PROPS = settings(max_examples=int(os.environ.get("LLMFLEET_HYPOTHESIS_EXAMPLES", "150")), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A FIFO or a bomb must not hang the load: fail the test after 20 s instead."""

    def timeout(signum: int, frame: Any) -> None:
        raise TimeoutError("inventory load hung")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def refused(path: Path) -> InputError:
    """Load, expect an InputError, and check it is one line that names a file."""
    started = time.monotonic()
    with pytest.raises(InputError) as err:
        load_inventory(path)
    assert time.monotonic() - started < 10
    assert "\n" not in str(err.value) and err.value.path
    return err.value


# --------------------------------------------------------------------------- class 3: YAML bombs and depth

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

MERGE_CHAIN = "m0: &m0 {k0: 0}\n" + "".join(f"m{i}: &m{i}\n  <<: *m{i - 1}\n  k{i}: {i}\n" for i in range(1, 1500))

DEEP_TEXT = {
    "flow sequences 100k deep": "x: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "flow mappings 100k deep": "x: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n",
    "block mappings 300 deep": "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
    "unclosed 100k deep": "x: " + "[" * 100_000 + "\n",
}

YAML_BOMBS = {
    "billion laughs": BILLION_LAUGHS,
    "merge-key chain": MERGE_CHAIN,
    "self-referencing alias": "x: &x [1, *x]\n",
    **DEEP_TEXT,
    "10000-digit integer": "x: " + "9" * 10_000 + "\n",
    "impossible timestamp": "x: 2020-13-45\n",
}


@pytest.mark.parametrize("name", list(YAML_BOMBS), ids=lambda n: n.replace(" ", "-"))
@pytest.mark.parametrize("place", ["group_vars/all.yml", "host_vars/h1", "hosts-noext"])
def test_yaml_bombs_are_refused_quickly(tmp_path: Path, name: str, place: str) -> None:
    inv = tmp_path / "inv"
    write(inv / "hosts.yml", "g:\n  hosts:\n    h1:\n")
    bomb = YAML_BOMBS[name]
    if place == "hosts-noext":  # a YAML-looking extension-less file must not fall back to INI
        bomb = "g2:\n  vars:\n" + "".join("    " + line + "\n" for line in bomb.splitlines())
    target = write(inv / place, bomb)
    err = refused(inv)
    assert err.path == str(target)
    assert "Traceback" not in str(err)


def test_alias_bomb_names_line_and_says_why(tmp_path: Path) -> None:
    path = write(tmp_path / "inv" / "group_vars" / "all.yml", BILLION_LAUGHS)
    write(tmp_path / "inv" / "hosts.yml", "g:\n  hosts:\n    h1:\n")
    err = refused(tmp_path / "inv")
    assert err.path == str(path) and err.line is not None
    assert "aliases are expanded" in err.message and err.message.startswith(yamlsrc.LIMIT_PREFIX)


def test_deep_nesting_is_nested_too_deeply(tmp_path: Path) -> None:
    path = write(tmp_path / "h.yml", "g:\n  vars:\n    x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    err = refused(path)
    assert "nested too deeply" in err.message and err.line == 3


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = write(
        tmp_path / "h.yml",
        """\
all:
  vars:
    defaults: &defaults {ansible_user: ops, ports: &ports [8000, 8001]}
  children:
    gpu:
      hosts:
        gpu01:
          <<: *defaults
          ansible_host: 198.51.100.1
        gpu02:
          <<: *defaults
          ports: *ports
""",
    )
    inv = load_inventory(path)
    assert (inv.hosts["gpu01"].user, inv.hosts["gpu01"].address) == ("ops", "198.51.100.1")
    assert inv.hosts["gpu02"].vars["ports"] == [8000, 8001]


def test_yaml_nesting_up_to_the_limit_loads() -> None:
    depth = yamlsrc.MAX_DEPTH - 1
    assert yamlsrc.nesting_depth(yamlsrc.loads("[" * depth + "]" * depth)) == depth


def _with_lines(doc: Any) -> Any:
    """A document with every mapping's key lines, to compare two parsers."""
    if isinstance(doc, yamlsrc.LineDict):
        return {"lines": dict(doc.key_lines), "line": doc.line, "items": {k: _with_lines(v) for k, v in doc.items()}}
    if isinstance(doc, list):
        return [_with_lines(v) for v in doc]
    return doc


def _parse(loader: type, text: str) -> Any:
    parser = loader(text)
    try:
        node = parser.get_single_node()
        return None if node is None else _with_lines(parser.construct_document(node))
    finally:
        parser.dispose()


@pytest.mark.skipif(yamlsrc._PARSER is yamlsrc._Loader, reason="PyYAML without libyaml: the Python parser serves alone")
def test_libyaml_and_the_python_parser_read_every_project_file_alike() -> None:
    """yamlsrc parses with libyaml where PyYAML has it (5x faster); what it gives must not depend on that."""
    root = Path(__file__).resolve().parents[2]
    files = [p for d in ("roles", "catalog", "playbooks", "inventory", "tests/fixtures", "lab") for p in (root / d).rglob("*.y*ml")]
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        assert _parse(yamlsrc._PARSER, text) == _parse(yamlsrc._Loader, text), path


@pytest.mark.parametrize("text", ["a: \x1f", "x: 1\ny: [\x07]", "k: " + "[" * 150 + "]" * 150, "a: 1\na: 2", "a: &x [*x]",
                                  "k: " + "[" * 5000 + "]" * 5000])  # libyaml >= 0.2.5 has a depth limit too: same refusal
def test_libyaml_refuses_what_the_python_parser_refuses_with_the_same_line(text: str) -> None:
    got = []
    for loader in (yamlsrc._PARSER, yamlsrc._Loader):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(yamlsrc, "_PARSER", loader)
            with pytest.raises(InputError) as err:
                yamlsrc.loads(text, "f.yml")
            got.append((err.value.message, err.value.line))
    assert got[0] == got[1]


# --------------------------------------------------------------------------- class 3: files that are not files


@pytest.mark.parametrize("place", ["hosts.yml", "hosts", "more.ini", "group_vars/g.yml", "group_vars/g/10.yml", "host_vars/h1"])
def test_fifo_in_inventory_directory_is_refused_not_waited_on(tmp_path: Path, place: str) -> None:
    inv = tmp_path / "inv"
    write(inv / "00-base.yml", "g:\n  hosts:\n    h1:\n")
    (inv / place).parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(inv / place)
    err = refused(inv)
    assert err.path == str(inv / place) and "not a regular file (a FIFO)" in err.message


def test_fifo_given_as_the_inventory(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "inv.yml")
    assert "a FIFO" in refused(tmp_path / "inv.yml").message


def test_fifo_with_an_ignored_extension_is_never_opened(tmp_path: Path) -> None:
    write(tmp_path / "inv" / "hosts.yml", "g:\n  hosts:\n    h1:\n")
    os.mkfifo(tmp_path / "inv" / "notes.txt")
    assert list(load_inventory(tmp_path / "inv").hosts) == ["h1"]


@pytest.mark.parametrize("place", ["hosts.yml", "hosts", "group_vars/all.yml"])
def test_binary_file_is_an_input_error(tmp_path: Path, place: str) -> None:
    inv = tmp_path / "inv"
    write(inv / "00-base.yml", "g:\n  hosts:\n    h1:\n")
    write(inv / place, bytes(range(256)) * 8)
    err = refused(inv)
    assert err.path == str(inv / place) and "not UTF-8" in err.message


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "big.yml", "# " + "x" * yamlsrc.MAX_FILE_BYTES + "\n")
    assert "larger than" in refused(path).message


def test_huge_host_range_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.ini", "[g]\ngpu[0:99999999]\n")
    err = refused(path)
    assert "bad host range" in err.message and err.line == 2
    path = write(tmp_path / "h2.ini", "[g]\na[0:999]b[0:999]\n")  # 10^6 hosts from two small ranges
    assert "more than" in refused(path).message


def test_deep_group_chain_loads_without_recursion(tmp_path: Path) -> None:
    n = 1500
    lines = [f"[g{i}:children]\ng{i + 1}\n[g{i + 1}]" for i in range(n)]
    path = write(tmp_path / "chain.ini", "\n".join(lines) + "\nh1\n")
    inv = load_inventory(path)
    assert inv.groups[f"g{n}"].depth == n + 1 and [h.name for h in inv.select("g0")] == ["h1"]


@pytest.mark.parametrize("value", ["[" * 100_000, "(" * 100_000 + ")" * 100_000, "9" * 10_000, "{(1, 2): 3}"], ids=["open", "parens", "digits", "tuple-key"])
def test_hostile_ini_values_stay_harmless(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "h.ini", f"[g]\nh1 v=\"{value}\"\n[g:vars]\nw={value}\n")
    h = load_inventory(path).hosts["h1"]
    assert "v" in h.vars and "w" in h.vars


def test_deep_regex_pattern_is_an_input_error(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path / "h.yml", "g:\n  hosts:\n    h1:\n"))
    with pytest.raises(InputError):
        inv.select("~" + "(" * 100_000 + ")" * 100_000)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, "[" * 500 + "]" * 500, '{"a": ' * 300 + "1" + "}" * 300, "9" * 10_000, "[1,", "\x00"],
    ids=["100k-deep", "500-deep", "300-deep-objects", "digits", "truncated", "nul"],
)
def test_loads_json_bounded(text: str) -> None:
    with pytest.raises(InputError) as err:
        yamlsrc.loads_json(text, "metrics.jsonl:3")
    assert err.value.path == "metrics.jsonl:3" and "\n" not in str(err.value)


def test_loads_json_plain_values() -> None:
    assert yamlsrc.loads_json('{"a": [1, 2.5, "x", null]}', "t") == {"a": [1, 2.5, "x", None]}


# --------------------------------------------------------------------------- class 1: templates never run code

CANARY = "llmfleet-canary"

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch CANARY').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('touch CANARY').read() }}",
    "{{ lipsum.__globals__['os'].popen('touch CANARY').read() }}",
    "{{ namespace.__init__.__globals__['os'].popen('touch CANARY').read() }}",
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('touch CANARY').read() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('touch CANARY').read() }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    "{{ range.__self__.__import__('os').popen('touch CANARY') }}",
    "{{ inventory_hostname.__class__.__base__.__subclasses__() }}",
    "{{ group_names.append('x') }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% import 'os' as os %}",
    "{{ 'a' * 1000000000 }}",
    "{{ ''.ljust(1000000000) }}",
    "{{ 2 ** 4096 ** 4096 }}",
    "{{ range(100000000) | list }}",
    "{{ 'x' ~ ",
    "{{ undefined_variable }}",
]


@pytest.mark.parametrize("var", ["ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file", "known_hosts_file"])
@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_template_payloads_never_run_and_name_the_line(tmp_path: Path, var: str, payload: str) -> None:
    canary = tmp_path / CANARY
    value = payload.replace("CANARY", str(canary))
    path = write(tmp_path / "h.yml", "g:\n  hosts:\n    h1:\n      other: 1\n      " + var + ": " + json.dumps(value) + "\n")
    err = refused(path)
    assert (err.path, err.line) == (str(path), 5), err
    assert var in err.message
    assert not canary.exists()


def test_template_payload_exits_2_on_the_command_line(tmp_path: Path) -> None:
    from tests.helpers import cli

    canary = tmp_path / CANARY
    payload = "{{ cycler.__init__.__globals__.os.popen('touch " + str(canary) + "') }}"
    path = write(tmp_path / "h.yml", "g:\n  hosts:\n    h1:\n      ansible_host: " + json.dumps(payload) + "\n")
    for args in (["hosts", "-i", str(path)], ["deploy", "--hosts", "g", "--model", "scout", "--dry-run", "-i", str(path)]):
        r = cli(*args)
        assert r.code == 2, r.stderr
        assert f"{path}:4" in r.stderr and "Traceback" not in r.stderr
    assert not canary.exists()


def test_templates_that_ansible_users_write_still_render(tmp_path: Path) -> None:
    path = write(
        tmp_path / "h.yml",
        """\
all:
  vars:
    domain: lan.example
    base_port: 2200
    ansible_host: "{{ inventory_hostname_short }}.{{ domain }}"
    ansible_port: "{{ base_port + 2 }}"
    ansible_user: "{{ 'ops' if 'gpu' in group_names else 'root' }}"
  children:
    gpu:
      hosts:
        n1.old.example:
""",
    )
    h = load_inventory(path).hosts["n1.old.example"]
    assert (h.address, h.port, h.user) == ("n1.lan.example", 2202, "ops")


# --------------------------------------------------------------------------- property tests


def _load_text(name: str, text: str) -> Inventory | None:
    """Load an inventory file holding text; None when it is (correctly) refused with an InputError."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_inventory(path)
        except InputError as exc:
            assert "\n" not in str(exc)
            return None


texts = st.text(max_size=60)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12)


@PROPS
@given(host=texts, key=texts, value=values)
def test_yaml_any_host_key_value_is_loaded_or_an_input_error(host: str, key: str, value: Any) -> None:
    doc = {"g": {"hosts": {host: {key: value}}, "vars": {key: value}}}
    inv = _load_text("h.yml", yaml.safe_dump(doc, allow_unicode=True))
    if inv is not None:
        assert inv.hosts  # a loaded inventory has the host (perhaps expanded from a range)


@PROPS
@given(host=texts, key=texts, value=texts)
def test_ini_any_host_key_value_is_loaded_or_an_input_error(host: str, key: str, value: str) -> None:
    _load_text("h.ini", f"[g]\n{host} {key}={value}\n[g:vars]\n{key}={value}\n")


@PROPS
@given(text=st.text(max_size=300))
def test_any_text_as_an_inventory_file(text: str) -> None:
    for name in ("h.yml", "h.ini", "hosts"):
        _load_text(name, text)


@PROPS
@given(prefix=texts, suffix=texts, payload=st.sampled_from(PAYLOADS))
def test_templates_with_any_text_never_run_code(prefix: str, suffix: str, payload: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        canary = Path(d) / CANARY
        value = prefix + payload.replace("CANARY", str(canary)) + suffix
        try:
            render_template_value(value, {"inventory_hostname": "h1", "group_names": ["g"]})
        except TemplateValueError:
            pass
        _load_text("h.yml", yaml.safe_dump({"g": {"hosts": {"h1": {"ansible_host": value}}}}))
        assert not canary.exists()


@PROPS
@given(pattern=st.text(max_size=40))
def test_any_host_pattern_selects_or_is_an_input_error(pattern: str) -> None:
    inv = _load_text("h.yml", "web:\n  hosts:\n    w[1:3]:\ndb:\n  hosts:\n    d1:\n")
    assert inv is not None
    try:
        picked = inv.select(pattern)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert picked and len({h.name for h in picked}) == len(picked)


HOSTILE_COUNT = (
    len(YAML_BOMBS) * 3  # each bomb in three places
    + 2  # alias bomb line, deep nesting line
    + 6 + 1 + 1  # FIFOs (in a directory, as the inventory, with an ignored extension)
    + 3 + 1 + 2  # binary files, oversized file, huge ranges
    + 1 + 4 + 1  # deep group chain, hostile INI values, deep regex pattern
    + 6  # hostile JSON
    + len(PAYLOADS) * 5 + 1  # template payloads in five connection variables, and on the command line
)


def test_hostile_count_is_reported() -> None:
    """The figure for the issue's closing note (generated inputs come on top)."""
    assert HOSTILE_COUNT == 156
