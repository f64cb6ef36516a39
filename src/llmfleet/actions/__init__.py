"""The actions playbook steps can name: Python functions over a HostContext.

Each returns (status, message) and raises StepFailed with a message that says
what is wrong on the host and how to fix it. Each is registered with what it
takes, needs and provides (``llmfleet.steps.ActionSpec``).
"""

from __future__ import annotations

from ..steps import ActionSpec
from . import bench, diagnose, generic, host, image, rollout, router_bench, router_host, server

ACTIONS: dict[str, ActionSpec] = {**host.ACTIONS, **image.ACTIONS, **server.ACTIONS, **bench.ACTIONS, **diagnose.ACTIONS,
                               **generic.ACTIONS, **rollout.ACTIONS, **router_bench.ACTIONS,
                               **router_host.ACTIONS}
