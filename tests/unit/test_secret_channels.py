"""A failing deploy never shows the HF token: console, JSON, event log, archive, error paths.

The real deploy playbook runs through `playbook_run.execute` on a scripted host
(llmfleet.testing) whose `docker run` fails with the token in its error output, the
way a misbehaving daemon or wrapper could echo an environment. Every output channel is
captured as it leaves the program and grepped for the token.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from rich.console import Console

from llmfleet import playbook_run, secrets
from llmfleet.cli import render
from llmfleet.cli.common import RedactingStream
from llmfleet.testing import FakeNetwork, result

from .fake_hosts import healthy_host

TOKEN = "hf_" + "Zq8" * 8 + "SeCrEt"
TAG = "lmsysorg/sglang:v0.5.9-rocm720-mi30x"


def test_a_failing_deploy_shows_the_token_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("LLMFLEET_ARCHIVE", str(tmp_path / "archive"))
    inv = tmp_path / "inv.yml"
    inv.write_text("gpus:\n  hosts:\n    g1: {ansible_host: 198.51.100.1}\n  vars: {hardware: mi300x}\n")
    net = FakeNetwork()
    host = healthy_host(net, "g1")
    host.on(rf"^docker pull {re.escape(TAG)}$", f"pulled; HF_TOKEN={TOKEN}\n")
    host.on(r"^docker image inspect", f"sha256:{'a' * 64} 20000000000\n")
    host.on(r"^install -d ", 0)
    host.on(r"^docker run ", result("docker run", 125, stderr=f"docker: invalid env file: HF_TOKEN={TOKEN} rejected\n"))

    stderr, stdout = io.StringIO(), io.StringIO()
    console = Console(file=RedactingStream(stderr), width=200, emoji=False)  # the CLI's console, redacted at the edge
    req = playbook_run.Request(playbook="deploy", hosts="g1", inventory=str(inv), cli_vars={"model": "scout"})
    try:
        report = playbook_run.execute(req, render.printer(console), console.print, connect=net.connect)
        render.print_failures(report, console)
        console.print(render.recap_table(report))
        RedactingStream(stdout).write(json.dumps(report.as_json()))
    finally:
        secrets.forget_all()

    # the run really failed where the token was echoed, and the token really reached the host
    assert not report.success and "invalid env file" in report.recap["g1"].message
    env_file = next(p for p in host.files if p.endswith(".env"))
    assert host.files[env_file] == f"HF_TOKEN={TOKEN}\n".encode() and host.modes[env_file] == 0o600
    assert not [c for c in host.commands if TOKEN in c]  # never on a command line
    assert net.unexpected == {}

    channels = {"console": stderr.getvalue(), "json": stdout.getvalue()}
    run_dir = Path(report.archive or "")
    assert run_dir.is_dir()
    for path in sorted(run_dir.rglob("*")):
        if path.is_file():
            channels[f"archive/{path.relative_to(run_dir)}"] = path.read_text(errors="replace")
    assert {"archive/events.jsonl", "archive/manifest.json", "archive/g1/facts.json"} <= set(channels)
    leaks = [name for name, text in channels.items() if TOKEN in text]
    assert leaks == []
    assert "********" in channels["console"] and "********" in channels["archive/events.jsonl"]
