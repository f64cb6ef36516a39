"""The actions playbook steps can name: Python functions over a HostContext.

Each returns (status, message) and raises StepFailed with a message that says
what is wrong on the host and how to fix it.
"""

from __future__ import annotations

from ..runner import Action
from . import bench, host, image, server

_ALL = {**host.ACTIONS, **image.ACTIONS, **server.ACTIONS, **bench.ACTIONS}

ACTIONS: dict[str, Action] = {name: fn for name, (fn, _) in _ALL.items()}
ARGS: dict[str, set[str]] = {name: allowed for name, (_, allowed) in _ALL.items()}
