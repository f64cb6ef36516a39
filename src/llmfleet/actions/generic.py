"""Generic steps operators use in their own playbooks: command, shell, copy, template, directory,
sysctl, service, wait_for (reference: docs/playbooks.md).

Each is idempotent and honest about ``changed``: it reads the host first (one probe),
changes only what differs, and in ``--check`` mode records what it would do instead.
Arguments are typed Structs checked when the playbook loads (unknown key -> file:line
and a did-you-mean); string arguments may hold ``{{ variable }}`` expressions, rendered
in the sandbox (llmfleet.templating) with the host's resolved variables. Conditions
(``changed_when``, ``failed_when``, ``warn_when``) are a small fixed form, never code.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from .. import schema, shell, templating, yamlsrc
from ..steps import CHANGED, OK, Event, HostContext, StepFailed, spec
from ..transport import Result

T = TypeVar("T")

Mode = Annotated[str, msgspec.Meta(pattern=r"^0?[0-7]{3,4}$")]  # quoted octal: '0644' (a YAML 0644 is a number)
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.@:-]+$")]
Condition = bool | str
OUTPUT_KEEP = 16384  # characters of a command's stdout/stderr kept in the run's events
DIFF_MAX_BYTES = 1024 * 1024  # larger files are compared by checksum only, no diff shown
CONF_HEADER = "# Written by llmfleet (host tuning); edited by `invoke play`.\n"

_CONDITION = re.compile(r"^(?P<subject>rc|stdout|stderr)\s+(?P<op>==|!=|not contains|contains)\s+(?P<operand>.+)$", re.DOTALL)


def parse_condition(text: Condition) -> tuple[str, str, str] | bool:
    """``true``/``false`` or ``"rc == N"``, ``"rc != N"``, ``"stdout|stderr [not] contains TEXT"``."""
    if isinstance(text, bool):
        return text
    m = _CONDITION.match(text.strip())
    if not m:
        raise ValueError(f"condition {text!r}: write true, false, 'rc == N', 'rc != N', 'stdout contains TEXT', "
                         "'stdout not contains TEXT' (or stderr)")  # fmt: skip
    subject, op, operand = m.group("subject"), m.group("op"), m.group("operand").strip()
    if subject == "rc" and (op not in ("==", "!=") or not operand.lstrip("-").isdigit()):
        raise ValueError(f"condition {text!r}: rc is compared with == or != and a whole number")
    if subject != "rc" and op not in ("contains", "not contains"):
        raise ValueError(f"condition {text!r}: {subject} takes 'contains' or 'not contains'")
    return subject, op, operand


def holds(condition: Condition, result: Result) -> bool:
    """Whether a (load-time checked) condition holds for a command's result."""
    parsed = parse_condition(condition)
    if isinstance(parsed, bool):
        return parsed
    subject, op, operand = parsed
    if subject == "rc":
        return (result.exit_code == int(operand)) == (op == "==")
    text = result.stdout if subject == "stdout" else result.stderr
    return (operand in text) == (op == "contains")


# --- argument schemas (checked at load time) ----------------------------------------------


class _RunArgs(schema.Struct, frozen=True):
    creates: str | None = None  # skip when this path exists on the host
    removes: str | None = None  # skip unless this path exists on the host
    changed_when: Condition = True
    failed_when: Condition = "rc != 0"
    warn_when: Condition = False
    msg: str = ""  # shown when failed_when or warn_when holds
    read_only: bool = False  # changes nothing: runs in --check too, never reports changed
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 600

    def __post_init__(self) -> None:
        for cond in (self.changed_when, self.failed_when, self.warn_when):
            parse_condition(cond)


class CommandArgs(_RunArgs, kw_only=True, frozen=True):
    argv: Annotated[list[str], msgspec.Meta(min_length=1)]


class ShellArgs(_RunArgs, kw_only=True, frozen=True):
    cmd: Annotated[str, msgspec.Meta(min_length=1)]


class _FileArgs(schema.Struct, frozen=True):
    dest: str
    mode: Mode | None = None
    owner: Name | None = None
    group: Name | None = None


class CopyArgs(_FileArgs, kw_only=True, frozen=True):
    src: str | None = None  # a file on the control node (role's files/, the playbook's files/ or folder)
    content: str | None = None

    def __post_init__(self) -> None:
        if (self.src is None) == (self.content is None):
            raise ValueError("copy takes exactly one of src and content")


class TemplateArgs(_FileArgs, kw_only=True, frozen=True):
    src: str  # a jinja2 file: role's templates/, the playbook's templates/, or the project's templates/


class DirectoryArgs(schema.Struct, frozen=True):
    path: str | list[str]
    mode: Mode | None = None
    owner: Name | None = None
    group: Name | None = None


class SysctlArgs(schema.Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$")]
    value: str | int
    persist: bool = True
    file: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+\.conf$")] = "90-llmfleet.conf"


class ServiceArgs(schema.Struct, frozen=True):
    name: Name
    state: Literal["restarted", "reloaded"] = "restarted"
    manager: Literal["auto", "systemd", "signal"] = "auto"
    pidfile: str | None = None  # signal manager: default /run/<name>.pid


class WaitForArgs(schema.Struct, frozen=True):
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    host: str = "127.0.0.1"
    url: str | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 60
    interval: Annotated[float, msgspec.Meta(gt=0)] = 1

    def __post_init__(self) -> None:
        if (self.port is None) == (self.url is None):
            raise ValueError("wait_for takes exactly one of port and url")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")


# --- shared parts ------------------------------------------------------------------------


def template_vars(ctx: HostContext) -> dict[str, Any]:
    """What templates see: a user role's own defaults < every resolved variable < a few derived paths."""
    s = ctx.settings
    role = ctx.step.role if ctx.step else ""
    derived = {"inventory_hostname": ctx.name, "remote_root": s.remote_root, "hf_cache": s.hf_cache,
               "jit_cache": s.jit_cache}  # fmt: skip
    return {**ctx.run.playbook.role_vars(role), **dict(ctx.vars), **derived}


def _render(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and templating.is_template(value):
        return templating.render_template_value(value, variables)
    if isinstance(value, list):
        return [_render(v, variables) for v in value]
    return value


def typed_args(ctx: HostContext, args: Mapping[str, Any], type_: type[T]) -> T:
    """The step's args with ``{{ }}`` rendered for this host, as their Struct."""
    variables = template_vars(ctx)
    try:
        rendered = {k: _render(v, variables) for k, v in args.items()}
    except templating.TemplateValueError as exc:
        raise StepFailed(f"args: {exc}") from None
    try:
        return msgspec.convert(rendered, type_)
    except msgspec.ValidationError as exc:
        raise StepFailed(f"args after rendering: {exc}") from None


def _keep_output(ctx: HostContext, result: Result) -> None:
    """A command's output, for the run's events (events.jsonl; the archive redacts secrets)."""
    ctx.run.event(host=ctx.name, step=ctx.step.name if ctx.step else "", command=result.command,
                  exit_code=result.exit_code, stdout=result.stdout[-OUTPUT_KEEP:], stderr=result.stderr[-OUTPUT_KEEP:],
                  mode=ctx.mode, note="output")  # fmt: skip


@dataclass(frozen=True)
class FileState:
    """A path on the host: what it is, its mode and owner, its content's checksum."""

    kind: str  # "absent" | "file" | "dir" | "other"
    mode: int | None = None
    owner: str = ""
    group: str = ""
    sha256: str = ""


_STATE_SCRIPT = (
    'if [ -d "$1" ]; then echo dir; elif [ -f "$1" ]; then echo file; elif [ -e "$1" ]; then echo other; '
    'else echo absent; exit 0; fi; stat -c "%a %U %G" -- "$1"; '
    'if [ -f "$1" ]; then sha256sum < "$1"; fi'
)


def parse_state(stdout: str) -> FileState:
    """Parse the state probe's answer (kind, then `mode owner group`, then the checksum)."""
    lines = stdout.split("\n")
    kind = lines[0].strip()
    if kind == "absent" or len(lines) < 2:
        return FileState("absent" if kind == "absent" else kind)
    mode, owner, group = (lines[1].split() + ["", "", ""])[:3]
    sha = lines[2].split()[0] if len(lines) > 2 and lines[2].strip() else ""
    return FileState(kind, int(mode, 8), owner, group, sha)


def file_state(ctx: HostContext, path: str) -> FileState:
    """One probe: kind, mode, owner, group and sha256 of ``path`` on the host."""
    r = ctx.probe(["sh", "-c", _STATE_SCRIPT, "_", path])
    if not r.ok:
        raise StepFailed(f"cannot inspect {path}: {(r.stderr or r.stdout).strip()[-300:]}")
    return parse_state(r.stdout)


def _ownership_fix(state: FileState, owner: str | None, group: str | None) -> str | None:
    """The `chown` argument needed, or None when the owner and group are already right."""
    if (owner and owner != state.owner) or (group and group != state.group):
        return f"{owner or ''}:{group}" if group else str(owner)
    return None


def unified_diff(path: str, old: str, new: str) -> str:
    """The unified diff an operator reads before the file changes."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=f"{path} (on the host)", tofile=f"{path} (new)")  # fmt: skip
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def show_diff(ctx: HostContext, path: str, old: str | None, new: bytes) -> None:
    """--diff: emit the file's diff (masked on the way out like every output)."""
    if not ctx.run.diff:
        return
    try:
        new_text = new.decode()
    except UnicodeDecodeError:
        new_text = None
    if old is None or new_text is None or len(new) > DIFF_MAX_BYTES:
        text = f"--- {path}: not shown (binary, too large or unreadable)\n"
    else:
        text = unified_diff(path, old, new_text)
    ctx.run.emit(Event("diff", ctx.name, text, mode=ctx.mode))
    ctx.run.event(host=ctx.name, step=ctx.step.name if ctx.step else "", command=f"diff {path}", exit_code=None,
                  mode=ctx.mode, note="diff", diff=text)  # fmt: skip


def _read_text(ctx: HostContext, path: str, state: FileState) -> str | None:
    """The host file's current text for a diff (only with --diff, only for a readable small file)."""
    if state.kind == "absent":
        return ""
    if state.kind != "file":
        return None
    r = ctx.probe(["head", "-c", str(DIFF_MAX_BYTES + 1), "--", path])
    if not r.ok or len(r.stdout) > DIFF_MAX_BYTES:
        return None
    return r.stdout


def ensure_file(ctx: HostContext, dest: str, data: bytes, mode: str | None, owner: str | None,
                group: str | None) -> tuple[str, str]:  # fmt: skip
    """Make ``dest`` hold ``data`` (and mode/owner): changed only when content, mode or owner differ."""
    if not posixpath.isabs(dest):
        raise StepFailed(f"dest {dest!r} must be an absolute path")
    state = file_state(ctx, dest) if ctx.mode != "dry-run" else FileState("absent")
    if state.kind in ("dir", "other"):
        raise StepFailed(f"{dest} exists and is not a regular file -> remove it or choose another dest")
    want_mode = int(mode, 8) if mode else (state.mode if state.mode is not None else 0o644)
    reasons = []
    if state.sha256 != hashlib.sha256(data).hexdigest():
        reasons.append("created" if state.kind == "absent" else "content differs")
        if ctx.run.diff and ctx.mode != "dry-run":
            show_diff(ctx, dest, _read_text(ctx, dest, state), data)
        ctx.change(["mkdir", "-p", "--", posixpath.dirname(dest) or "/"])
        ctx.put(data, dest, want_mode)
    elif state.mode != want_mode:
        reasons.append(f"mode {state.mode:o} -> {want_mode:o}")
        ctx.change(["chmod", f"{want_mode:o}", "--", dest])
    chown = _ownership_fix(state, owner, group) if state.kind != "absent" else (f"{owner or ''}:{group or ''}".rstrip(":") or None)
    if chown:
        reasons.append(f"owner -> {chown}")
        ctx.change(["chown", chown, "--", dest])
    if not reasons:
        return OK, f"{dest} up to date"
    return CHANGED, f"{dest}: {', '.join(reasons)}"


# --- the actions --------------------------------------------------------------------------


def _run_command(ctx: HostContext, a: _RunArgs, command: list[str] | str) -> tuple[str, str]:
    if ctx.mode != "dry-run":
        if a.creates and ctx.probe(["test", "-e", a.creates]).ok:
            return OK, f"skipped: {a.creates} exists"
        if a.removes and not ctx.probe(["test", "-e", a.removes]).ok:
            return OK, f"skipped: {a.removes} does not exist"
    if a.read_only and ctx.mode == "dry-run":
        ctx.planned.append(command if isinstance(command, str) else shell.join(command))
        return OK, "read-only: not run in dry-run"
    if a.read_only:
        result = ctx.probe(command, timeout=a.timeout)
    else:
        got = ctx.change(command, timeout=a.timeout, check=False)
        if got is None:
            return CHANGED, "would run"
        result = got
    _keep_output(ctx, result)
    tail = (result.stderr or result.stdout).strip()[-600:]
    if holds(a.failed_when, result):
        raise StepFailed(f"{a.msg or 'exit code ' + str(result.exit_code)}" + (f": {tail}" if tail else ""))
    first = result.stdout.strip().splitlines()[0][:200] if result.stdout.strip() else ""
    message = f"warning: {a.msg or 'warn_when holds'}" if holds(a.warn_when, result) else first
    changed = not a.read_only and holds(a.changed_when, result)
    return (CHANGED if changed else OK), message


def command(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Run an argv (no shell) on the host."""
    a = typed_args(ctx, args, CommandArgs)
    return _run_command(ctx, a, a.argv)


def shell_step(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Run a shell command line (``sh -c``) on the host."""
    a = typed_args(ctx, args, ShellArgs)
    return _run_command(ctx, a, ["sh", "-c", a.cmd])


def copy(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Put a control-node file or inline content at ``dest``."""
    a = typed_args(ctx, args, CopyArgs)
    if a.src is not None:
        data = yamlsrc.read_text(a.src, "copy src").encode()
    else:
        data = (a.content or "").encode()
    return ensure_file(ctx, a.dest, data, a.mode, a.owner, a.group)


def template(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Render a jinja2 template (sandboxed, undefined variables are errors) and put it at ``dest``."""
    a = typed_args(ctx, args, TemplateArgs)
    text = yamlsrc.read_text(a.src, "template")
    try:
        data = templating.render_file_template(text, template_vars(ctx), posixpath.basename(a.src)).encode()
    except templating.TemplateValueError as exc:
        raise StepFailed(f"template {exc}") from None
    return ensure_file(ctx, a.dest, data, a.mode, a.owner, a.group)


def directory(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Make directories exist (with mode/owner): changed only for what was missing or differed."""
    a = typed_args(ctx, args, DirectoryArgs)
    done = []
    for path in [a.path] if isinstance(a.path, str) else a.path:
        state = file_state(ctx, path) if ctx.mode != "dry-run" else FileState("absent")
        if state.kind not in ("absent", "dir"):
            raise StepFailed(f"{path} exists and is not a directory")
        if state.kind == "absent":
            ctx.change(["mkdir", "-p", "--", path])
            done.append(f"{path} created")
        if a.mode and state.mode != int(a.mode, 8):
            ctx.change(["chmod", a.mode, "--", path])
            if state.kind != "absent":
                done.append(f"{path} mode -> {a.mode}")
        chown = _ownership_fix(state, a.owner, a.group)
        if chown:
            ctx.change(["chown", chown, "--", path])
            if state.kind != "absent":
                done.append(f"{path} owner -> {chown}")
    return (CHANGED, "; ".join(done)) if done else (OK, "present")


def conf_with(text: str, name: str, value: str) -> str:
    """A sysctl.d file's text with ``name = value`` set once (other lines kept)."""
    out, written = [], False
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith(("#", ";")) else None
        if key == name:
            if not written:
                out.append(f"{name} = {value}")
                written = True
            continue
        out.append(line)
    if not written:
        out.append(f"{name} = {value}")
    head = "" if text.strip() else CONF_HEADER
    return head + "\n".join(out).strip("\n") + "\n"


def _normal(value: str) -> str:
    return " ".join(str(value).split())


def sysctl(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Set a kernel parameter now (/proc/sys) and persist it in <sysctl_conf_dir>/<file>."""
    a = typed_args(ctx, args, SysctlArgs)
    want = _normal(str(a.value))
    proc = "/proc/sys/" + a.name.replace(".", "/")
    conf = f"{ctx.settings.sysctl_conf_dir.rstrip('/')}/{a.file}"
    live, old_conf = None, ""
    if ctx.mode != "dry-run":
        r = ctx.probe(["sh", "-c", 'cat -- "$1" || exit 3; echo @@llmfleet@@; cat -- "$2" 2>/dev/null; exit 0', "_", proc, conf])
        if r.exit_code == 3 or "@@llmfleet@@" not in r.stdout:
            raise StepFailed(f"cannot read {proc}: is {a.name} a parameter of this kernel?")
        live_text, _, old_conf = r.stdout.partition("@@llmfleet@@\n")
        live = _normal(live_text)
    done = []
    if live != want:
        ctx.change(["sh", "-c", 'printf "%s\\n" "$1" > "$2"', "_", want, proc])
        done.append(f"{a.name} {live if live is not None else '?'} -> {want}")
    if a.persist:
        new_conf = conf_with(old_conf, a.name, want)
        if new_conf != old_conf:
            show_diff(ctx, conf, old_conf, new_conf.encode())
            ctx.change(["mkdir", "-p", "--", posixpath.dirname(conf)])
            ctx.put(new_conf.encode(), conf, 0o644)
            done.append(f"persisted in {conf}")
    if done:
        return CHANGED, "; ".join(done)
    return OK, f"{a.name} = {want}" + (f" (persisted in {conf})" if a.persist else "")


def _manager(ctx: HostContext, wanted: str) -> str:
    """systemd when the host booted with it (sd_booted: /run/systemd/system), else the signal fallback."""
    if wanted != "auto":
        return wanted
    if ctx.mode == "dry-run":
        return "systemd"
    return "systemd" if ctx.probe(["test", "-d", "/run/systemd/system"]).ok else "signal"


def service(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Restart or reload a service: systemctl, or SIGHUP from its pidfile on hosts without systemd.

    Used as a handler it runs only when notified; as a plain step it runs every time (asked).
    """
    a = typed_args(ctx, args, ServiceArgs)
    verb = "restart" if a.state == "restarted" else "reload"
    manager = _manager(ctx, a.manager)
    if manager == "systemd":
        ctx.change(["systemctl", verb, a.name])
        return CHANGED, f"{a.state} {a.name} (systemd)" + (" (assumed in dry-run)" if ctx.mode == "dry-run" else "")
    pidfile = a.pidfile or f"/run/{a.name}.pid"
    pid = "PID"
    if ctx.mode != "dry-run":
        r = ctx.probe(["sh", "-c", 'pid=$(cat -- "$1") && kill -0 "$pid" && echo "$pid"', "_", pidfile])
        if not r.ok or not r.stdout.strip().isdigit():
            raise StepFailed(f"no systemd on this host and no running {a.name} in {pidfile} -> "
                             f"restart {a.name} with the host's init, or give the service step its pidfile")  # fmt: skip
        pid = r.stdout.strip()
    ctx.change(["kill", "-HUP", pid])
    note = " (no systemd: a full restart is up to the host's init)" if a.state == "restarted" else ""
    return CHANGED, f"sent SIGHUP to {a.name} (pid {pid}, no systemd): it re-reads its configuration{note}"


def wait_for(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Wait until a TCP port or an HTTP URL answers on the host (read-only: not waited in check/dry-run)."""
    a = typed_args(ctx, args, WaitForArgs)
    if a.url is not None:
        what, probe = a.url, ["curl", "-fsS", "-o", "/dev/null", "--max-time", "5", "--", a.url]
    else:
        what, probe = f"{a.host}:{a.port}", ["bash", "-c", 'exec 3<>"/dev/tcp/$1/$2"', "_", a.host, str(a.port)]
    if ctx.mode != "apply":
        return OK, f"{what}: not waited ({ctx.mode})"
    start = time.monotonic()
    last = ""
    while True:
        r = ctx.probe(probe, timeout=15)
        if r.ok:
            return OK, f"{what} answers ({time.monotonic() - start:.1f}s)"
        last = (r.stderr or r.stdout).strip()[-200:]
        if time.monotonic() - start + a.interval > a.timeout:
            raise StepFailed(f"{what} did not answer within {a.timeout:g}s ({last or 'no answer'}) -> "
                             "check that the service runs and listens there")  # fmt: skip
        time.sleep(a.interval)


ACTIONS = {
    "command": spec(command, schema=CommandArgs),
    "shell": spec(shell_step, schema=ShellArgs),
    "copy": spec(copy, schema=CopyArgs, local_files=[("src", "files")]),
    "template": spec(template, schema=TemplateArgs, local_files=[("src", "templates")]),
    "directory": spec(directory, schema=DirectoryArgs),
    "sysctl": spec(sysctl, schema=SysctlArgs),
    "service": spec(service, schema=ServiceArgs),
    "wait_for": spec(wait_for, schema=WaitForArgs),
}
