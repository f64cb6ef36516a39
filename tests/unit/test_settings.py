"""The settings contract: declared once, resolved in order, checked with file:line and did-you-mean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmfleet import inventory, paths, settings
from llmfleet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_exactly_one_documented_default():
    decl = settings.load_declared()
    assert set(decl.values) == settings.SETTING_NAMES
    assert len(decl.owner) == len(settings.SETTING_NAMES)
    for name, where in decl.where.items():
        path, _, line = where.rpartition(":")
        text = (paths.project_root() / path).read_text().splitlines()
        assert text[int(line) - 1].startswith(f"{name}:"), where


def test_a_second_default_for_a_setting_is_refused(tmp_path):
    for role, text in (("a", "port: 8000\n"), ("b", "port: 9000\n")):
        (tmp_path / role).mkdir()
        (tmp_path / role / "defaults.yml").write_text(text)
    with pytest.raises(InputError, match=r"b/defaults.yml:1: 'port' is declared by role 'a' already"):
        settings.load_declared(tmp_path)


def test_an_unknown_key_in_role_defaults_is_refused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "defaults.yml").write_text("# doc\nhealth_timout: 5\n")
    with pytest.raises(InputError, match=r"defaults.yml:2: unknown setting 'health_timout' .*did you mean 'health_timeout'"):
        settings.load_declared(tmp_path)


def test_no_action_reads_a_variable_with_a_literal_default():
    """Defaults live in roles/*/defaults.yml only: no `vars.get(key, literal)` in the engine."""
    pattern = re.compile(r"\bvars\.get\(|\bv\.get\(\s*[\"'][a-z_]+[\"']\s*,")
    offenders = []
    for path in [*(ROOT / "src/llmfleet/actions").glob("*.py"), ROOT / "src/llmfleet/deployment.py",
                 ROOT / "src/llmfleet/runner.py", ROOT / "src/llmfleet/playbook_run.py"]:  # fmt: skip
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{i}: {line.strip()}")
    assert offenders == []


def test_precedence_and_sources():
    hs = settings.for_host(None, {"context_length": 4096}, {"port": 9000})
    assert hs.settings.context_length == 4096 and hs.settings.port == 9000
    assert hs.resolved.layer("context_length") == "playbook vars"
    assert hs.resolved.source("port") == "command line (--port)"
    assert hs.resolved.source("quant").startswith("role defaults (roles/sglang_server/defaults.yml:")


@pytest.mark.parametrize("cli_vars, message", [
    ({"contxt_length": 8192}, r"unknown setting 'contxt_length' in --set .*did you mean 'context_length'"),
    ({"port": 99999}, r"--port 99999: Expected `int` <= 65535"),
    ({"port": "abc"}, r"--port 'abc': Expected `int`, got `str`"),
    ({"context_length": -5}, r"--context-length -5: Expected `int` >= 1"),
    ({"quant": "fp4"}, r"--quant 'fp4': must be one of: bf16, fp8"),
    ({"image_source": "scp"}, r"--image-source 'scp': must be one of: pull, push"),
    ({"dataset": "sharegpt"}, r"--dataset 'sharegpt': must be one of: random, random-ids, sharegpt-file"),
    ({"preflight_skip": ["numa"]}, r"must be one of: docker, devices"),
    ({"health_timeout": 0}, r"--health-timeout 0: Expected `float` > 0"),
    ({"container_name": "a b; rm -rf /"}, r"--container-name"),
])  # fmt: skip
def test_bad_values_name_the_flag_and_the_expected_type(cli_vars, message):
    with pytest.raises(InputError, match=message):
        settings.check_keys(cli_vars, {})
        settings.for_host(None, {}, cli_vars)


def _inventory(tmp_path: Path, group_vars: str) -> inventory.Inventory:
    (tmp_path / "hosts.yml").write_text("gpus:\n  hosts:\n    g1: {ansible_host: 198.51.100.1}\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "gpus.yml").write_text(group_vars)
    return inventory.load_inventory(tmp_path)


def test_a_typo_in_group_vars_is_an_error_with_file_and_line(tmp_path):
    inv = _inventory(tmp_path, "hardware: mi300x\ncontxt_length: 8192\n")
    with pytest.raises(InputError) as err:
        settings.for_host(inv.select("g1")[0], {}, {})
    text = str(err.value)
    assert "unknown setting 'contxt_length' for host g1 (did you mean 'context_length'?)" in text
    assert re.search(r"group_vars/gpus\.yml:2", text), text


def test_ansible_and_operator_variables_pass_through(tmp_path):
    inv = _inventory(tmp_path, "ansible_user: ops\nnetwork_interface: eth0\nrack: b7\nport: '8080'\n")
    hs = settings.for_host(inv.select("g1")[0], {}, {})
    assert hs.resolved["network_interface"] == "eth0" and hs.resolved["rack"] == "b7"
    assert hs.settings.port == 8080  # INI-style strings of numbers are accepted for numbers


def test_a_wrong_type_in_the_inventory_names_the_file_line_and_host(tmp_path):
    inv = _inventory(tmp_path, "context_length: lots\n")
    with pytest.raises(InputError, match=r"setting 'context_length' = 'lots' for host g1: Expected `int`.*group_vars/gpus\.yml:1"):
        settings.for_host(inv.select("g1")[0], {}, {})


def test_unknown_playbook_vars_name_file_and_line(tmp_path):
    from llmfleet import yamlsrc

    pb_vars = yamlsrc.loads("preflight_skip: []\nhealth_timeuot: 60\n", tmp_path / "pb.yml")
    with pytest.raises(InputError, match=r"pb\.yml:2: unknown setting 'health_timeuot' in the playbook's vars \(did you mean 'health_timeout'\?\)"):
        settings.check_keys({}, pb_vars)
