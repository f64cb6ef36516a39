"""The rollout and router runbooks, executed on the lab: every `invoke` command of their ```bash blocks,
in order, with the lab's names. A runbook whose command or flag no longer exists fails here.

Its benchmarks run as written, with fewer and shorter requests and every host's client at once, as on a real
cluster (BENCH_SIZE, appended; the lab inventory runs them one host at a time for the README demo's numbers): this
test checks that the commands work together (router up, bench direct and through it, report), not their numbers,
which tests/e2e/test_bench_lab.py and tests/lab/ check.

(docs/runbooks/tune-hosts.md has its own test, tests/e2e/test_runbook_tune_hosts.py, whose extraction
helper this one shares.)
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_runbook_tune_hosts import runbook_commands
from tests.helpers import ROOT, cli

pytestmark = pytest.mark.lab

ENV = {"HF_TOKEN": "hf_runbookLabToken0123456789"}
RUNBOOKS = ["upgrade-fleet-with-canary.md", "rollback-a-host.md", "replace-a-host.md", "serve-behind-the-router.md"]
NAMES = {"mi300-cluster": "lab", "mi300-01": "lab1", "mi300-02": "lab2"}
BENCH_SIZE = ["--num-prompts", "2", "--input-len", "200", "--output-len", "32", "--set", "bench_forks=3"]


def test_runbooks_run_on_the_lab(lab, monkeypatch, tmp_path):
    monkeypatch.setenv("LLMFLEET_ROUTER_STATE", str(tmp_path / "router"))
    for book in RUNBOOKS:
        commands = runbook_commands((ROOT / "docs" / "runbooks" / book).read_text())
        assert commands, book
        for argv in commands:
            argv = [NAMES.get(a, a) for a in argv] + (BENCH_SIZE if argv[0] == "bench" else [])
            start = time.monotonic()
            r = cli(*argv, env=ENV, timeout=1800)
            assert r.code == 0, f"{book}: invoke {' '.join(argv)} exited {r.code}\n{r.stderr[-3000:]}"
            print(f"FIGURES {book}: invoke {' '.join(argv)}: {time.monotonic() - start:.1f}s")
