"""Run the preflight and server-container actions on given facts (pyinfra-style fixtures).

Facts in, commands out: each JSON case in tests/fixtures/deploy_cases/ gives a
host's variables and facts, and the exact commands (or failure) the deploy must
produce. Mode `check` with no connection: commands are recorded, not run.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from llmfleet import catalog, facts, playbook, settings
from llmfleet.actions import host as host_actions
from llmfleet.actions import server as server_actions
from llmfleet.steps import HostContext, RunContext, StepFailed

CASES = Path(__file__).parent.parent / "fixtures" / "deploy_cases"


def host_facts(doc: dict) -> facts.HostFacts:
    doc = dict(doc)
    gpus = [facts.Gpu(**g) for g in doc.pop("gpus", [])]
    container = doc.pop("container", None)
    f = facts.HostFacts(**doc, gpus=gpus)
    f.container = facts.Container(**container) if container else None
    return f


def run_case(case: dict) -> dict:
    cat = catalog.load()
    pb = playbook.Playbook(name="deploy", path=Path("deploy.yml"), roles=[], vars={})
    token = (case.get("secrets") or {}).get("HF_TOKEN")
    ctx = RunContext(playbook=pb, catalog=cat, mode="check", hf_token=token)
    host = SimpleNamespace(name="gpu1", address="198.51.100.10", vars={}, var_sources={})
    hs = settings.for_host(None, {}, case["vars"])  # the case's variables, as if given with --set
    hctx = HostContext(ctx, host, hs.settings, hs.resolved)
    hctx.state.facts = host_facts(case["facts"])
    hctx.state.image_id = case.get("image_id")
    out: dict = {"steps": []}
    for fn in (host_actions.preflight, server_actions.ensure_container):
        hctx.planned = []
        try:
            status, message = fn(hctx, {})
        except StepFailed as exc:
            out["steps"].append({"status": "failed", "message": str(exc)})
            break
        out["steps"].append({"status": status, "commands": list(hctx.planned)})
    return out


def load_cases() -> list[tuple[str, dict]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted(CASES.glob("*.json"))]
