"""docs/runbooks/tune-hosts.md, executed on the lab: its `invoke` commands, in order, with the lab's names.

Done when (issue 11): a host with numa_balancing = 1 fails `invoke deploy --check`'s preflight; the
host-tuning playbook fixes it (changed); a second run reports changed 0 on every host; the preflight passes.
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.helpers import ROOT, cli

pytestmark = pytest.mark.lab

ENV = {"HF_TOKEN": "hf_labSecretTokenValue0123456789"}
RUNBOOK = ROOT / "docs" / "runbooks" / "tune-hosts.md"
NUMA = "/proc/sys/kernel/numa_balancing"


def runbook_commands(text: str) -> list[list[str]]:
    """The `invoke ...` lines of the runbook's ```bash blocks, as argv, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    return [shlex.split(line)[1:] for block in blocks for line in block.splitlines() if line.startswith("invoke ")]


def test_the_runbook_tunes_the_lab(lab, lab_ssh):
    names = [h.name for h in lab.hosts]
    for h in lab.hosts:  # NUMA balancing on, as on a freshly installed host
        assert lab_ssh(h.address, f"echo 1 > {NUMA}").returncode == 0
    commands = [[{"mi300-cluster": "lab"}.get(a, a) for a in argv] for argv in runbook_commands(RUNBOOK.read_text())]
    assert [c[:1] for c in commands] == [["deploy"], ["play"], ["play"], ["play"], ["deploy"]]
    results = [cli(*argv, env=ENV, timeout=900) for argv in commands]

    precheck, check_diff, apply, again, postcheck = results
    assert precheck.code == 1 and "numa_balancing is 1" in precheck.stderr
    assert check_diff.code == 0, check_diff.stderr[-3000:]
    assert "+kernel.numa_balancing = 0" in check_diff.stderr and '"max-size": "100m"' in check_diff.stderr
    assert apply.code == 0, apply.stderr[-3000:]
    assert re.search(r"host_tuning : restart docker changed - sent SIGHUP to docker", apply.stderr)
    for h in lab.hosts:
        assert lab_ssh(h.address, f"cat {NUMA}").stdout.strip() == "0"
        conf = lab_ssh(h.address, "cat /var/lib/llmfleet/etc/sysctl.d/90-llmfleet.conf").stdout
        assert "kernel.numa_balancing = 0" in conf
        assert lab_ssh(h.address, "test -d /var/lib/llmfleet/cache/aiter && docker info >/dev/null").returncode == 0
    assert again.code == 0, again.stderr[-3000:]
    recap = again.json["recap"]
    assert sorted(recap) == sorted(names) and all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values())
    assert not [s for s in again.json["steps"] if s["step"] == "restart docker"]  # the handler did not run
    assert postcheck.code == 0, postcheck.stderr[-3000:]
    assert "numa_balancing" not in postcheck.stderr
