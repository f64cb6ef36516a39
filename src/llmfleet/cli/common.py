"""What every task shares: the console, error handling and exit codes."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

from invoke.exceptions import Exit
from rich.console import Console

from ..errors import EXIT_INPUT, InputError

# Progress and tables go to stderr so that `--json` output on stdout stays parseable.
console = Console(stderr=True, highlight=False)


def run_task(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Turn InputError into a one-line message and exit code 2; pass other exit codes on."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except InputError as exc:
            console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            raise Exit(code=EXIT_INPUT) from None
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]")
            raise Exit(code=130) from None
        if code:
            raise Exit(code=code)

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
