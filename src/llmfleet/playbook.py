"""Playbooks and roles: YAML that says which steps run, in what order, with which variables.

A playbook lists roles; a role is `roles/<name>/tasks.yml` (steps) plus
`roles/<name>/defaults.yml` (the settings it declares, read by ``llmfleet.settings``).
Every step names one of a small set of actions implemented in Python
(``llmfleet.actions``), each with its declared arguments, inputs and outputs
(``llmfleet.steps.ActionSpec``). All of it is validated before anything connects,
with file:line errors: an unknown action or argument, and a step that needs state
no earlier step provides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import paths, yamlsrc
from .errors import InputError
from .steps import ActionSpec

_PLAYBOOK_KEYS = {"name", "description", "roles", "vars", "lock"}
_STEP_KEYS = {"name", "action", "args", "always"}


@dataclass(frozen=True)
class Step:
    name: str
    action: str
    role: str
    args: dict[str, Any] = field(default_factory=dict)
    always: bool = False  # run even after an earlier step failed on this host (collect)
    where: str = ""  # file:line, for messages


@dataclass
class Role:
    name: str
    steps: list[Step]


@dataclass
class Playbook:
    name: str
    path: Path
    roles: list[Role]
    vars: dict[str, Any]
    description: str = ""
    lock: bool = False  # take the host's deploy lock for the run (apply mode)

    @property
    def steps(self) -> list[Step]:
        return [s for r in self.roles for s in r.steps]


def load_role(name: str, roles_dir: Path, known_actions: Mapping[str, ActionSpec]) -> Role:
    role_dir = roles_dir / name
    tasks_path = role_dir / "tasks.yml"
    if not tasks_path.is_file():
        raise InputError(f"role {name!r} has no tasks.yml in {role_dir}")
    steps_doc = yamlsrc.load(tasks_path)
    if not isinstance(steps_doc, list):
        raise InputError("tasks.yml must be a list of steps", tasks_path, 1)
    steps = []
    for raw in steps_doc:
        if not isinstance(raw, dict):
            raise InputError("each step must be a mapping with name and action", tasks_path)
        yamlsrc.check_keys(raw, _STEP_KEYS, "a step")
        action = raw.get("action")
        if action not in known_actions:
            raise InputError(
                f"unknown action {action!r}; known: {', '.join(sorted(known_actions))}", tasks_path, raw.line_of("action")
            )
        args = raw.get("args") or {}
        if not isinstance(args, dict):
            raise InputError("args must be a mapping", tasks_path, raw.line_of("args"))
        if args:
            yamlsrc.check_keys(args, set(known_actions[action].args), f"args of action {action!r}")
        steps.append(
            Step(
                name=str(raw.get("name") or action),
                action=action,
                role=name,
                args=dict(args),
                always=bool(raw.get("always", False)),
                where=f"{tasks_path}:{raw.line}",
            )
        )
    return Role(name=name, steps=steps)


def check_order(steps: list[Step], known_actions: Mapping[str, ActionSpec]) -> None:
    """Every step's inputs are provided by an earlier step (checked once, here, not by each action)."""
    provided: set[str] = set()
    for step in steps:
        spec = known_actions[step.action]
        missing = sorted(spec.requires - provided)
        if missing:
            path, _, line = step.where.rpartition(":")
            raise InputError(
                f"step {step.name!r} ({step.action}) needs {', '.join(missing)}, which no earlier step provides",
                path or None, int(line) if line.isdigit() else None,
            )  # fmt: skip
        provided |= spec.provides


def load_playbook(name: str, known_actions: Mapping[str, ActionSpec], root: Path | None = None) -> Playbook:
    """Load `playbooks/<name>.yml` (or a path) and its roles."""
    pb_path = Path(name) if name.endswith((".yml", ".yaml")) else (root or paths.playbooks_dir()) / f"{name}.yml"
    roles_dir = (root.parent / "roles") if root else paths.roles_dir()
    doc = yamlsrc.load(pb_path)
    if not isinstance(doc, dict):
        raise InputError("a playbook is a mapping with name and roles", pb_path, 1)
    yamlsrc.check_keys(doc, _PLAYBOOK_KEYS, "the playbook")
    role_names = doc.get("roles")
    if not isinstance(role_names, list) or not role_names:
        raise InputError("roles must be a non-empty list", pb_path, doc.line_of("roles"))
    roles = []
    for role_name in role_names:
        if not (roles_dir / str(role_name)).is_dir():
            raise InputError(f"unknown role {role_name!r} (no {roles_dir / str(role_name)})", pb_path, doc.line_of("roles"))
        roles.append(load_role(str(role_name), roles_dir, known_actions))
    pb_vars = doc.get("vars") or {}
    if not isinstance(pb_vars, dict):
        raise InputError("vars must be a mapping", pb_path, doc.line_of("vars"))
    check_order([s for r in roles for s in r.steps], known_actions)
    return Playbook(
        name=str(doc.get("name", pb_path.stem)),
        path=pb_path,
        roles=roles,
        vars=dict(pb_vars),
        description=str(doc.get("description", "")),
        lock=bool(doc.get("lock", False)),
    )
