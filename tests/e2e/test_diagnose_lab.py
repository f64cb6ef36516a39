"""`invoke diagnose --hosts` end to end on the lab: a simulated server that crashed at start-up."""

from __future__ import annotations

import pytest

from tests.helpers import cli

pytestmark = pytest.mark.lab

ENV = {"HF_TOKEN": "hf_labSecretTokenValue0123456789"}


def test_diagnose_names_the_cause_of_a_crashed_server(lab, tmp_path):
    host = lab.hosts[0]
    # --no-rollback: a host that already serves would otherwise be put back on its previous (healthy) container
    r = cli("deploy", "--hosts", host.name, "--model", "scout", "--json", "--set", "extra_server_args=[--no-such-flag]",
            "--set", "health_timeout=60", "--no-rollback", env=ENV, timeout=1200)  # fmt: skip
    assert r.code == 1
    r = cli("diagnose", "--hosts", host.name, "--json", timeout=300)
    assert r.code == 0, r.stderr[-3000:]
    findings = r.json["hosts"][host.name]["findings"]
    assert findings[0]["signature"] == "bad-server-flag"
    assert "--no-such-flag" in findings[0]["evidence"] and "--no-such-flag" in findings[0]["fix"]
    # the same log, saved and pasted by an operator
    logs = cli("logs", "--hosts", host.name, "--lines", "400", timeout=300)
    saved = tmp_path / "server.log"
    saved.write_text(logs.stderr)
    r = cli("diagnose", "--log", str(saved), "--json")
    assert r.code == 0 and r.json["findings"][0]["signature"] == "bad-server-flag"
    assert cli("deploy", "--hosts", host.name, "--model", "scout", env=ENV, timeout=1200).code == 0
