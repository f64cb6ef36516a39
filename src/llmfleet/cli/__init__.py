"""The invoke namespace: `invoke X` in a checkout and the `llmfleet X` console script.

Each sub-module holds the tasks of one concern and stays thin: it parses flags,
calls the engine and turns errors into exit codes (see ``common.run_task``).
"""

from __future__ import annotations

from invoke import Collection, Program

from .. import __version__
from . import deploy, diagnose_tasks, exec_tasks, inventory_tasks, lab, play_tasks, results, router_tasks, settings_tasks

namespace = Collection()
for module in (deploy, results, diagnose_tasks, inventory_tasks, settings_tasks, exec_tasks, play_tasks):
    for task in module.TASKS:
        namespace.add_task(task)
namespace.add_collection(lab.collection, name="lab")
namespace.add_collection(router_tasks.collection, name="router")

program = Program(namespace=namespace, version=__version__, name="llmfleet", binary="llmfleet")
