"""Read a host's server container log and say what its failure most likely means.

The step message carries the findings: a one-line summary, then one JSON line
(``{"findings": [...]}``) that ``invoke diagnose --json`` reads back per host.
"""

from __future__ import annotations

from typing import Any, Mapping

from .. import diagnose
from ..steps import OK, HostContext, spec
from .server import read_log


def diagnose_server(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    text = read_log(ctx)
    ctx.run.keep(ctx.name, "server/docker-tail.log", text)
    found = diagnose.diagnose(text)
    for d in found:
        ctx.say(f"{d.cause}\n    fix: {d.fix}\n    log: {d.evidence}")
    return OK, diagnose.step_message(found)


ACTIONS = {"diagnose_server": spec(diagnose_server)}
