"""The contract between the runner and the actions: what a step sees, returns and needs.

An action is a function ``(HostContext, args) -> (status, message)``, registered as an
:class:`ActionSpec` that declares the step arguments it takes, the parts of the typed
per-host :class:`HostState` it ``requires`` and the ones it ``provides``. The playbook
loader refuses a playbook whose steps need something no earlier step provides, and the
runner skips a step whose inputs a failed step did not produce; so no action guards
its own order.

The runner reports through :class:`Event` records (never rich markup): the command line
renders them, the event log stores them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from . import shell
from .transport import Result, SessionLike

if TYPE_CHECKING:  # types only: the step contract does not depend on the domain
    from .catalog import Catalog
    from .deployment import Deployment
    from .facts import HostFacts
    from .playbook import Playbook, Step
    from .settings import Settings
    from .variables import ResolvedVars

OK, CHANGED, FAILED, SKIPPED = "ok", "changed", "failed", "skipped"
STATUSES = (OK, CHANGED, FAILED, SKIPPED)
MODES = ("apply", "check", "dry-run")


class StepFailed(Exception):
    """An action failed on a host; the message says what is wrong and how to fix it."""


@dataclass
class HostState:
    """What earlier steps found out about a host; `requires`/`provides` name these fields."""

    facts: HostFacts | None = None
    facts_image: str | None = None  # the image tag the facts looked at
    deployment: Deployment | None = None
    image_id: str | None = None
    container_changed: bool | None = None
    data: dict[str, str] | None = None  # staged data files: kind -> path in the container


STATE_FIELDS = frozenset(f.name for f in fields(HostState))

Action = Callable[["HostContext", Mapping[str, Any]], "tuple[str, str]"]


@dataclass(frozen=True)
class ActionSpec:
    """An action and its declared interface."""

    fn: Action
    args: frozenset[str] = frozenset()
    requires: frozenset[str] = frozenset()
    provides: frozenset[str] = frozenset()
    schema: type | None = None  # a schema.Struct for the step's args (checked at load time), else `args` names
    local_files: tuple[tuple[str, str], ...] = ()  # (arg, folder): args naming a file on the control node

    def __post_init__(self) -> None:
        unknown = (self.requires | self.provides) - STATE_FIELDS
        if unknown:
            raise ValueError(f"{self.fn.__name__}: unknown state {sorted(unknown)}; known: {sorted(STATE_FIELDS)}")


def spec(fn: Action, args: Iterable[str] = (), requires: Iterable[str] = (), provides: Iterable[str] = (),
         schema: type | None = None, local_files: Iterable[tuple[str, str]] = ()) -> ActionSpec:  # fmt: skip
    """Register an action; ``schema`` (a msgspec Struct) types its args, its fields are then the arg names."""
    names = frozenset(args) | frozenset(getattr(schema, "__struct_fields__", ()))
    return ActionSpec(fn, names, frozenset(requires), frozenset(provides), schema, tuple(local_files))


@dataclass
class StepResult:
    host: str
    role: str
    step: str
    status: str
    message: str = ""
    commands: list[str] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass(frozen=True)
class Event:
    """Something the operator should see now: a step's result, a note, a host's trouble."""

    kind: str  # "step" | "note" | "unreachable" | "locked" | "diff" (a file's unified diff, --diff)
    host: str
    text: str = ""
    result: StepResult | None = None
    mode: str = "apply"


@dataclass
class RunContext:
    """What all hosts of one run share."""

    playbook: Playbook
    catalog: Catalog
    mode: str
    run_id: str | None = None
    diff: bool = False  # --diff: steps that write files emit a "diff" event with the unified diff
    hf_token: str | None = None
    emit: Callable[[Event], None] = lambda event: None
    shared: dict[str, Any] = field(default_factory=dict)  # cross-host caches (the image tar, the progress display)
    events: list[dict[str, Any]] = field(default_factory=list)  # the run's event log (events.jsonl)
    host_files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # host -> relpath -> data, for the archive
    host_meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> hardware, image, image_id, ...
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, **record: Any) -> None:
        record["ts"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with self.lock:
            self.events.append(record)

    def note(self, host: str, **meta: Any) -> None:
        """Per-host facts for the run's manifest (hardware, image, image_id, sglang_version)."""
        with self.lock:
            self.host_meta.setdefault(host, {}).update({k: v for k, v in meta.items() if v is not None})

    def keep(self, host: str, relpath: str, data: bytes | str) -> None:
        """A file for the run's archive (the archive writer redacts secrets)."""
        if isinstance(data, str):
            data = data.encode()
        with self.lock:
            self.host_files.setdefault(host, {})[relpath] = data


class HostContext:
    """What an action sees: its host, settings, state, and a way to run commands."""

    def __init__(self, run: RunContext, host: Any, settings: Settings, resolved: ResolvedVars | Mapping[str, Any],
                 session: SessionLike | None = None):  # fmt: skip
        self.run = run
        self.host = host
        self.name: str = host.name
        self.settings = settings
        self.vars = resolved  # every variable, the operator's own too (for templates)
        self.session = session
        self.state = HostState()
        self.step: Step | None = None
        self.planned: list[str] = []
        self.outcome = ""  # what happened to the host in one line ("upgraded", "rolled back (cause)"): the recap's note

    @property
    def mode(self) -> str:
        return self.run.mode

    @property
    def catalog(self) -> Catalog:
        return self.run.catalog

    @property
    def facts(self) -> HostFacts:
        """The host's facts (a step that reads them `requires` facts)."""
        if self.state.facts is None:
            raise RuntimeError("no facts: the step must declare requires=facts")
        return self.state.facts

    @property
    def deployment(self) -> Deployment:
        """The host's deployment (a step that reads it `requires` deployment)."""
        if self.state.deployment is None:
            raise RuntimeError("no deployment: the step must declare requires=deployment")
        return self.state.deployment

    def say(self, message: str) -> None:
        """A progress note for the operator (plain text, shown as it is)."""
        self.run.emit(Event("note", self.name, message, mode=self.mode))

    def _log(self, command: str, result: Result | None, note: str = "") -> None:
        self.run.event(
            host=self.name,
            step=self.step.name if self.step else "",
            role=self.step.role if self.step else "",
            command=command,
            exit_code=None if result is None else result.exit_code,
            duration_s=None if result is None else round(result.duration_s, 4),
            mode=self.mode,
            note=note,
        )

    def probe(self, command: str | Sequence[str], timeout: float | None = 60) -> Result:
        """A read-only command: runs in apply and check mode (never in dry-run)."""
        text = command if isinstance(command, str) else shell.join(command)
        if self.session is None:
            raise RuntimeError("probe() in dry-run: actions must not read hosts in dry-run")
        result = self.session.run(text, timeout=timeout)
        self._log(text, result, "probe")
        return result

    def change(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        stdin: bytes | Iterable[bytes] | None = None,
        on_sent: Callable[[int], None] | None = None,
        check: bool = True,
        display: str | None = None,
    ) -> Result | None:
        """A command that changes the host: runs in apply mode, is only recorded otherwise."""
        text = command if isinstance(command, str) else shell.join(command)
        shown = display or text
        if self.mode != "apply":
            self.planned.append(shown)
            return None
        assert self.session is not None
        result = self.session.run(text, timeout=timeout, stdin=stdin, on_sent=on_sent)
        self._log(shown, result)
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip()[-800:]
            raise StepFailed(f"`{shown[:160]}` exited {result.exit_code}: {detail}")
        return result

    def put(self, data: bytes, remote_path: str, mode: int = 0o644, display: str | None = None) -> None:
        """Upload a file (secrets too: content never appears in a command or a log)."""
        shown = display or f"upload {len(data)} bytes to {remote_path} (mode {mode:o})"
        if self.mode != "apply":
            self.planned.append(shown)
            return
        assert self.session is not None
        start = time.monotonic()
        self.session.put_bytes(data, remote_path, mode)
        self.run.event(host=self.name, step=self.step.name if self.step else "", command=shown,
                       exit_code=0, duration_s=round(time.monotonic() - start, 4), mode=self.mode, note="sftp")  # fmt: skip
