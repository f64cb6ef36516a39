"""Bad input on the command line: exit 2 with one clear line, before anything connects or
any run folder is created, and never a secret in the message.

The example inventory's hosts are documentation addresses routed nowhere: a command
that tried to connect would fail per host (exit 1, after a connect timeout), so exit 2
here also proves that nothing connected.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.helpers import cli

INV = ["-i", "inventory/mi300-cluster.yml"]
TOKEN = "hf_" + "Q" * 8 + "sEcReT" + "7" * 20


def _archive_entries(test_archive) -> set[str]:
    return {p.name for p in test_archive.iterdir()} if test_archive.exists() else set()


@pytest.mark.parametrize("args, message", [
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--set", "contxt_length=8192"],
     r"unknown setting 'contxt_length' in --set .*did you mean 'context_length'"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--forks", "0"], r"--forks takes a whole number of at least 1"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--forks", "-1"], r"--forks takes a whole number of at least 1"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--port", "99999"], r"--port 99999: Expected `int` <= 65535"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--context-length", "-5"], r"--context-length -5: Expected `int` >= 1"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--serial", "inf%"], r"--serial N% takes a percentage"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--serial", "abc"], r"--serial takes N"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--quant", "int4"], r"--quant 'int4': must be one of: bf16, fp8"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--image-source", "rsync"], r"--image-source 'rsync': must be one of: pull, push"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "llama2"], r"unknown model 'llama2'"),
    (["bench", "--hosts", "mi300-cluster", "--model", "scout", "--profile", "extreme"], r"unknown profile 'extreme'"),
    (["bench", "--hosts", "mi300-cluster", "--model", "scout", "--dataset", "sharegpt"], r"--dataset 'sharegpt': must be one of"),
    (["deploy", "--hosts", "mi300-cluster", "--model", "scout", "--set", "sglang_version=0.4.0"], r"unknown SGLang version '0.4.0'"),
    (["deploy", "--hosts", "[/x]", "--model", "scout"], r"\[/x\]"),
])  # fmt: skip
def test_bad_flags_exit_2_before_anything_connects(args, message, test_archive):
    before = _archive_entries(test_archive)
    r = cli(*args, *INV, timeout=60)
    assert r.code == 2, (r.code, r.stderr)
    assert re.search(message, r.stderr), r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert _archive_entries(test_archive) == before  # no run folder, not even a .failed one


def test_the_token_never_shows_in_an_error_that_echoes_it(tmp_path):
    r = cli("deploy", "--hosts", "mi300-cluster", "--model", TOKEN, *INV, env={"HF_TOKEN": TOKEN}, timeout=60)
    assert r.code == 2 and "unknown model" in r.stderr
    assert TOKEN not in r.stderr + r.stdout and "********" in r.stderr
    r = cli("deploy", "--hosts", TOKEN, "--model", "scout", *INV, env={"HF_TOKEN": TOKEN}, timeout=60)
    assert r.code == 2 and TOKEN not in r.stderr + r.stdout


def test_a_token_file_must_be_one_line_of_text(tmp_path):
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00hf_token")
    two_lines = tmp_path / "two"
    two_lines.write_text("hf_firstline\nsecond_line_here\n")
    for path, message in ((binary, "is not text"), (two_lines, "spans several lines")):
        os.chmod(path, 0o600)
        r = cli("deploy", "--hosts", "mi300-cluster", "--model", "scout", "--dry-run", *INV, "--hf-token-file", str(path), timeout=60)
        assert r.code == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "second_line_here" not in r.stderr


def test_vars_explain_names_each_values_source():
    r = cli("vars", "--hosts", "mi300-01", *INV, "--explain", "--set", "context_length=8192", timeout=60)
    assert r.code == 0, r.stderr
    assert "context_length = 8192  <- command line" in r.stderr
    assert "overrides role defaults (roles/sglang_server/defaults.yml:" in r.stderr
    assert re.search(r"hardware = 'mi300x'  <- inventory \(inventory/mi300-cluster\.yml:\d+ \(group 'mi300-cluster'\)\)", r.stderr)
    r = cli("vars", "--hosts", "mi300-01", *INV, "--json", timeout=60)
    data = r.json["mi300-01"]
    assert data["port"]["value"] == 8000 and data["port"]["chain"][0]["layer"] == "role defaults"
    assert "ansible_host" not in data  # settings only, unless --all


def _all_tasks(collection, prefix=""):
    for name, t in collection.tasks.items():
        yield prefix + name, t
    for name, sub in collection.collections.items():
        yield from _all_tasks(sub, f"{prefix}{name}.")


def test_no_task_has_a_generated_short_flag():
    """Short flags are chosen (-H/-l hosts, -i inventory), the same on every task."""
    from llmfleet.cli import namespace

    allowed = {"hosts": {"H", "l"}, "inventory": {"i"}}
    tasks = dict(_all_tasks(namespace))
    assert {"deploy", "bench", "vars", "hosts", "lab.up", "lab.fault"} <= set(tasks)
    for name, t in tasks.items():
        for arg in t.get_arguments():
            shorts = {n for n in arg.names if len(n) == 1}
            assert shorts <= allowed.get(arg.name, set()), f"{name}: {sorted(shorts)} for --{arg.name}"
    deploy = {a.name: set(a.names) for a in tasks["deploy"].get_arguments()}
    assert deploy["hosts"] == {"hosts", "H", "l"} and deploy["inventory"] == {"inventory", "i"}
    deploy_help = cli("--help", "deploy", timeout=60).stdout  # and invoke shows them so
    assert re.search(r"(-H STRING, -l|-l STRING, -H) STRING, --hosts=STRING", deploy_help), deploy_help
