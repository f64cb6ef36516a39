"""What every task shares: the console, redacted output, chosen short flags, exit codes."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from typing import Any, Callable, TextIO

from invoke import Task
from invoke import task as invoke_task
from invoke.exceptions import Exit
from rich.console import Console
from rich.markup import escape

from .. import secrets
from ..errors import EXIT_INPUT, InputError

# The few short flags operators type every day, the same on every task that has the flag.
# Everything else is long only (invoke's generated short flags collide and run out).
SHORT_FLAGS: dict[str, tuple[str, ...]] = {
    "hosts": ("H", "l"),  # -l: Ansible's --limit
    "inventory": ("i",),
}


class FleetTask(Task):
    """An invoke task whose short flags are chosen, never generated."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        opts["names"] = list(opts["names"]) + [s for s in SHORT_FLAGS.get(name, ()) if s not in taken_names]
        return opts


class RedactingStream:
    """A text stream that masks registered secrets before they leave the program."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(secrets.redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install_redaction() -> None:
    """Every byte printed from here on (rich, print, tracebacks) is masked; $HF_TOKEN is known from the start."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        secrets.register((os.environ.get(name) or "").strip())
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


install_redaction()

task = functools.partial(invoke_task, klass=FleetTask)  # every task of the CLI: chosen short flags only

# Progress and tables go to stderr so that `--json` output on stdout stays parseable.
console = Console(file=sys.stderr, highlight=False, emoji=False)


def run_task(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Turn InputError into a one-line message and exit code 2; pass other exit codes on."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except InputError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise Exit(code=EXIT_INPUT) from None
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]")
            raise Exit(code=130) from None
        if code:
            raise Exit(code=code)

    return wrapper


def _finite(obj: Any) -> Any:
    """JSON has no Infinity or NaN: non-finite numbers become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_finite(obj), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()
