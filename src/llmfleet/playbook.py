"""Playbooks and roles: YAML that says which steps run, in what order, with which variables.

A playbook lists roles; a role is `roles/<name>/tasks.yml` (steps) plus
`roles/<name>/defaults.yml` (the settings it declares, read by ``llmfleet.settings``).
Every step names one of a small set of actions implemented in Python
(``llmfleet.actions``), each with its declared arguments, inputs and outputs
(``llmfleet.steps.ActionSpec``). All of it is validated before anything connects,
with file:line errors: an unknown action or argument, and a step that needs state
no earlier step provides.

Operators' playbooks (``invoke play --playbook FILE``) live anywhere: their roles are
looked up in ``<playbook dir>/roles/`` and then the project's ``roles/``. A step may
``notify`` handlers (a role's ``handlers.yml`` or the playbook's ``handlers:``), which run
once at the end of the play on each host where a notifying step reported changed.
See docs/playbooks.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths, schema, settings, yamlsrc
from .errors import InputError
from .steps import ActionSpec

_PLAYBOOK_KEYS = {"name", "description", "roles", "vars", "lock", "handlers", "serial_from"}
_STEP_KEYS = {"name", "action", "args", "always", "notify"}


@dataclass(frozen=True)
class Step:
    name: str
    action: str
    role: str
    args: dict[str, Any] = field(default_factory=dict)
    always: bool = False  # run even after an earlier step failed on this host (collect)
    where: str = ""  # file:line, for messages
    notify: tuple[str, ...] = ()  # handlers to run at the end of the play when this step reports changed


@dataclass
class Role:
    name: str
    steps: list[Step]
    handlers: list[Step] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)  # a user role's own defaults (template variables)


@dataclass
class Playbook:
    name: str
    path: Path
    roles: list[Role]
    vars: dict[str, Any]
    description: str = ""
    lock: bool = False  # take the host's deploy lock for the run (apply mode)
    handlers: list[Step] = field(default_factory=list)  # the roles' handlers, then the playbook's own
    serial_from: str | None = None  # with --serial: the role where batches start (earlier roles run on all hosts first)

    @property
    def steps(self) -> list[Step]:
        return [s for r in self.roles for s in r.steps]

    def run_order(self, notified: set[str]) -> Iterator[Step]:
        """The steps, then each handler named in ``notified`` (read lazily, as the runner fills it), once."""
        yield from self.steps
        for handler in self.handlers:
            if handler.name in notified:
                yield handler

    def role_vars(self, role: str) -> dict[str, Any]:
        """A user role's own defaults.yml (lowest precedence in templates)."""
        return next((dict(r.vars) for r in self.roles if r.name == role), {})


@dataclass(frozen=True)
class _Dirs:
    """Where a role's local files are looked up: its own folder, the playbook's, then the project's."""

    role_dir: Path
    playbook_dir: Path

    def search(self, sub: str) -> list[Path]:
        project = paths.templates_dir() if sub == "templates" else paths.project_root() / sub
        return [self.role_dir / sub, self.playbook_dir / sub, self.playbook_dir, project]


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    hint = schema.closest(word, choices)
    return f" (did you mean {hint!r}?)" if hint else ""


def _check_args(action: str, args: Any, spec: ActionSpec, path: Path, line: int | None) -> dict[str, Any]:
    """An action's arguments, checked against its schema (or its declared names): file:line on error."""
    if not isinstance(args, yamlsrc.LineDict):
        raise InputError("args must be a mapping", path, line)
    if spec.schema is not None:
        schema.convert(args, spec.schema, path=str(path), what=f"args of {action!r}")
    elif args:
        yamlsrc.check_keys(args, set(spec.args), f"args of action {action!r}")
    return dict(args)


def _local_file(value: Any, sub: str, dirs: _Dirs, path: Path, line: int | None) -> str:
    """A control-node file an arg names (``copy`` src, ``template`` src), found before anything connects."""
    text = str(value)
    candidates = [Path(text)] if Path(text).is_absolute() else [d / text for d in dirs.search(sub)]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    tried = ", ".join(str(c.parent) for c in candidates)
    raise InputError(f"{text!r}: no such file (looked in {tried})", path, line)


def _notify(raw: Any, path: Path, line: int | None) -> tuple[str, ...]:
    value = raw.get("notify")
    names = [value] if isinstance(value, str) else value
    if names is None:
        return ()
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InputError("notify takes a handler's name or a list of names", path, line)
    return tuple(names)


def load_step(raw: Any, path: Path, role: str, known_actions: Mapping[str, ActionSpec], dirs: _Dirs) -> Step:
    """One step (or handler) of a tasks.yml, handlers.yml or a playbook's handlers: checked, files found."""
    if not isinstance(raw, yamlsrc.LineDict):
        raise InputError("each step must be a mapping with name and action", path)
    yamlsrc.check_keys(raw, _STEP_KEYS, "a step")
    action = raw.get("action")
    if not isinstance(action, str) or action not in known_actions:
        raise InputError(
            f"unknown action {action!r}{_did_you_mean(str(action), known_actions)}; known: {', '.join(sorted(known_actions))}",
            path, raw.line_of("action"),
        )  # fmt: skip
    spec = known_actions[action]
    raw_args = raw.get("args")
    raw_args = yamlsrc.LineDict() if raw_args is None else raw_args
    args = _check_args(action, raw_args, spec, path, raw.line_of("args"))
    for arg, sub in spec.local_files:
        if args.get(arg) is not None:
            line = raw_args.line_of(arg)
            args[arg] = _local_file(args[arg], sub, dirs, path, line)
    return Step(
        name=str(raw.get("name") or action),
        action=action,
        role=role,
        args=args,
        always=bool(raw.get("always", False)),
        where=f"{path}:{raw.line}",
        notify=_notify(raw, path, raw.line_of("notify")),
    )


def _step_list(path: Path, what: str) -> list[Any]:
    doc = yamlsrc.load(path)
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise InputError(f"{what} must be a list of steps", path, 1)
    return doc


def load_role(name: str, roles_dir: Path, known_actions: Mapping[str, ActionSpec],
              playbook_dir: Path | None = None) -> Role:  # fmt: skip
    role_dir = roles_dir / name
    tasks_path = role_dir / "tasks.yml"
    if not tasks_path.is_file():
        raise InputError(f"role {name!r} has no tasks.yml in {role_dir}")
    dirs = _Dirs(role_dir, playbook_dir or paths.playbooks_dir())
    steps = [load_step(raw, tasks_path, name, known_actions, dirs) for raw in _step_list(tasks_path, "tasks.yml")]
    handlers_path = role_dir / "handlers.yml"
    handlers = []
    if handlers_path.is_file():
        handlers = [load_step(raw, handlers_path, name, known_actions, dirs) for raw in _step_list(handlers_path, "handlers.yml")]
    return Role(name=name, steps=steps, handlers=handlers, vars=_user_role_vars(role_dir, roles_dir))


def _user_role_vars(role_dir: Path, roles_dir: Path) -> dict[str, Any]:
    """A user role's defaults.yml: its own variables (the shipped roles' defaults are settings)."""
    path = role_dir / "defaults.yml"
    if roles_dir.resolve() == paths.roles_dir().resolve() or not path.is_file():
        return {}
    doc = yamlsrc.load(path) or yamlsrc.LineDict()
    if not isinstance(doc, yamlsrc.LineDict):
        raise InputError("defaults.yml must be a mapping", path, 1)
    for key in doc:
        if key in settings.SETTING_NAMES:
            raise InputError(f"{key!r} is a setting: set it in the inventory, the playbook's vars or --set, "
                             "not in a role's defaults", path, doc.line_of(key))  # fmt: skip
    return dict(doc)


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


def check_handlers(steps: list[Step], handlers: list[Step]) -> None:
    """Handler names are unique and every `notify` names one (with a did-you-mean)."""
    names: set[str] = set()
    for h in handlers:
        if h.name in names:
            path, _, line = h.where.rpartition(":")
            raise InputError(f"two handlers are named {h.name!r}", path or None, int(line) if line.isdigit() else None)
        names.add(h.name)
    for step in [*steps, *handlers]:
        for target in step.notify:
            if target not in names:
                path, _, line = step.where.rpartition(":")
                known = f"; handlers: {', '.join(sorted(names))}" if names else "; the play has no handlers"
                raise InputError(f"step {step.name!r} notifies {target!r}, which is no handler{_did_you_mean(target, names)}{known}",
                                 path or None, int(line) if line.isdigit() else None)  # fmt: skip


def find_role(name: str, search: list[Path]) -> Path:
    """The roles folder holding role ``name``: the playbook's own roles/ first, then the project's."""
    for roles_dir in search:
        if (roles_dir / name).is_dir():
            return roles_dir
    raise InputError(f"unknown role {name!r} (looked in {', '.join(str(d) for d in search)})")


def load_playbook(name: str, known_actions: Mapping[str, ActionSpec], root: Path | None = None) -> Playbook:
    """Load `playbooks/<name>.yml` (or a path) and its roles (from `<playbook dir>/roles`, then `roles/`)."""
    pb_path = Path(name) if name.endswith((".yml", ".yaml")) else (root or paths.playbooks_dir()) / f"{name}.yml"
    shipped = (root.parent / "roles") if root else paths.roles_dir()
    search = list(dict.fromkeys([pb_path.parent.resolve() / "roles", shipped.resolve()]))
    doc = yamlsrc.load(pb_path)
    if not isinstance(doc, yamlsrc.LineDict):
        raise InputError("a playbook is a mapping with name and roles", pb_path, 1)
    yamlsrc.check_keys(doc, _PLAYBOOK_KEYS, "the playbook")
    role_names = doc.get("roles")
    if not isinstance(role_names, list) or not role_names:
        raise InputError("roles must be a non-empty list", pb_path, doc.line_of("roles"))
    roles = []
    for role_name in role_names:
        try:
            roles_dir = find_role(str(role_name), search)
        except InputError as exc:
            raise InputError(exc.message, pb_path, doc.line_of("roles")) from None
        roles.append(load_role(str(role_name), roles_dir, known_actions, pb_path.parent))
    pb_vars = doc.get("vars") or {}
    if not isinstance(pb_vars, dict):
        raise InputError("vars must be a mapping", pb_path, doc.line_of("vars"))
    own = doc.get("handlers") or []
    if not isinstance(own, list):
        raise InputError("handlers must be a list of steps", pb_path, doc.line_of("handlers"))
    dirs = _Dirs(pb_path.parent, pb_path.parent)
    handlers = [h for r in roles for h in r.handlers] + [load_step(raw, pb_path, "handlers", known_actions, dirs) for raw in own]
    steps = [s for r in roles for s in r.steps]
    check_order(steps + handlers, known_actions)
    check_handlers(steps, handlers)
    serial_from = doc.get("serial_from")
    if serial_from is not None and serial_from not in role_names:
        raise InputError(f"serial_from names role {serial_from!r}, which the playbook does not list", pb_path,
                         doc.line_of("serial_from"))  # fmt: skip
    return Playbook(
        name=str(doc.get("name", pb_path.stem)),
        path=pb_path,
        roles=roles,
        vars=dict(pb_vars),
        description=str(doc.get("description", "")),
        lock=bool(doc.get("lock", False)),
        handlers=handlers,
        serial_from=str(serial_from) if serial_from is not None else None,
    )
