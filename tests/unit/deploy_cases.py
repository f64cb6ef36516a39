"""Run the preflight and server-container actions on given facts (pyinfra-style fixtures).

Facts in, commands out: each JSON case in tests/fixtures/deploy_cases/ gives a
host's variables and facts, and the exact commands (or failure) the deploy must
produce. Mode `check` with no connection: commands are recorded, not run.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from llmfleet import catalog, facts, playbook, runner
from llmfleet.actions import host as host_actions
from llmfleet.actions import server as server_actions

CASES = Path(__file__).parent.parent / "fixtures" / "deploy_cases"
ROLE_DEFAULTS = ["preflight", "image", "sglang_server", "health"]


def host_facts(doc: dict) -> facts.HostFacts:
    doc = dict(doc)
    gpus = [facts.Gpu(**g) for g in doc.pop("gpus", [])]
    container = doc.pop("container", None)
    f = facts.HostFacts(**doc, gpus=gpus)
    f.container = facts.Container(**container) if container else None
    return f


def role_defaults() -> dict:
    from llmfleet import paths, yamlsrc

    merged: dict = {}
    for role in ROLE_DEFAULTS:
        path = paths.roles_dir() / role / "defaults.yml"
        if path.exists():
            merged.update(yamlsrc.load(path) or {})
    return merged


def run_case(case: dict) -> dict:
    cat = catalog.load()
    pb = playbook.Playbook(name="deploy", path=Path("deploy.yml"), roles=[], vars={})
    token = (case.get("secrets") or {}).get("HF_TOKEN")
    ctx = runner.RunContext(playbook=pb, catalog=cat, mode="check", cli_vars={},
                            resolve_vars=lambda *a: {}, secrets=[token] if token else [])  # fmt: skip
    ctx.shared["hf_token"] = token
    host = SimpleNamespace(name="gpu1", address="198.51.100.10", vars={})
    hctx = runner.HostContext(ctx, host, None)
    hctx.vars = {**role_defaults(), **case["vars"]}
    hctx.facts = host_facts(case["facts"])
    hctx.state["image_id"] = case.get("image_id")
    out: dict = {"steps": []}
    for fn in (host_actions.preflight, server_actions.ensure_container):
        hctx.planned = []
        try:
            status, message = fn(hctx, {})
        except runner.StepFailed as exc:
            out["steps"].append({"status": "failed", "message": str(exc)})
            break
        out["steps"].append({"status": status, "commands": list(hctx.planned)})
    return out


def load_cases() -> list[tuple[str, dict]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted(CASES.glob("*.json"))]
