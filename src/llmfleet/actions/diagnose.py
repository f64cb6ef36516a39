"""Read a host's server container log and say what its failure most likely means.

The step message carries the findings: a one-line summary, then one JSON line
(``{"findings": [...]}``) that ``invoke diagnose --json`` reads back per host.
"""

from __future__ import annotations

from typing import Any, Mapping

from .. import diagnose
from ..commands import docker
from ..steps import OK, HostContext, StepFailed, spec


def diagnose_server(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    name = ctx.settings.container_name
    result = ctx.probe(docker.logs(name, tail=ctx.settings.log_lines), timeout=60)
    if not result.ok and "No such container" in result.stderr:
        raise StepFailed(f"no container {name}")
    text = (result.stdout + result.stderr).rstrip()
    ctx.run.keep(ctx.name, "server/docker-tail.log", text)
    found = diagnose.diagnose(text)
    for d in found:
        ctx.say(f"{d.cause}\n    fix: {d.fix}\n    log: {d.evidence}")
    return OK, diagnose.step_message(found)


ACTIONS = {"diagnose_server": spec(diagnose_server)}
