"""The one templating path for values users write (inventory connection variables today).

Jinja runs in ``ImmutableSandboxedEnvironment``: no attribute that reaches Python
internals (``__class__``, ``__globals__``, ...), no mutation of values, and here
also no ``{% %}`` statements, no big repetition (``'x' * 10**9``, ``''.ljust(10**9)``)
and a bounded result. A template is data from an inventory file: it must never run
code or exhaust the control node, even under ``--dry-run``.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_RESULT_CHARS = 65536  # a rendered value longer than this is refused
MAX_INT_ARGUMENT = 1_000_000  # integers passed to functions/methods (ljust, center, range ...)
MAX_POWER = 4096  # largest exponent of **
MAX_INT_BITS = 1 << 16  # largest integer a power may produce


class TemplateValueError(ValueError):
    """A template that cannot be rendered (syntax, undefined variable, refused by the sandbox)."""


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with repetition, powers and function arguments kept small."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            _check_power(left, right)
        else:
            _check_repetition(left, right)
        return {"*": operator.mul, "**": operator.pow}[op](left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_INT_ARGUMENT:
                raise SecurityError(f"argument {arg} is too large")
        return super().call(context, obj, *args, **kwargs)


def _check_power(base: Any, exponent: Any) -> None:
    """``a ** b`` only while the result stays a small number."""
    if isinstance(exponent, (int, float)) and abs(exponent) > MAX_POWER:
        raise SecurityError(f"exponent {exponent} is too large")
    if isinstance(base, int) and isinstance(exponent, int) and abs(base).bit_length() * abs(exponent) > MAX_INT_BITS:
        raise SecurityError("the power is too large")


def _check_repetition(left: Any, right: Any) -> None:
    """``'x' * n`` / ``[x] * n`` only while the result stays short."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_RESULT_CHARS:
            raise SecurityError("repetition result is too long")


def _environment(keep_trailing_newline: bool = False) -> ImmutableSandboxedEnvironment:
    env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=keep_trailing_newline)
    for name in ("lipsum", "cycler", "joiner"):  # not needed for values; less surface
        env.globals.pop(name, None)
    return env


_ENV = _environment()
_FILE_ENV = _environment(keep_trailing_newline=True)  # a file keeps its last newline


def is_template(text: str) -> bool:
    """Whether a string holds Jinja markers (plain values are used as written)."""
    return "{{" in text or "{%" in text or "{#" in text


def render_template_value(text: str, variables: Mapping[str, Any]) -> str:
    """Render one value's ``{{ expressions }}`` with ``variables``, sandboxed; raise TemplateValueError.

    Only expressions are rendered: ``{% %}`` statements (loops) are refused, so a
    value cannot spin the control node.
    """
    if "{%" in text:
        raise TemplateValueError("only {{ expressions }} are allowed in a value, not {% statements %}")
    try:
        result = _ENV.from_string(text).render(dict(variables))
    except SecurityError as exc:
        raise TemplateValueError(f"refused by the template sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateValueError(str(exc)) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError, MemoryError) as exc:
        raise TemplateValueError(f"{type(exc).__name__}: {exc}") from None
    if len(result) > MAX_RESULT_CHARS:
        raise TemplateValueError(f"the rendered value is longer than {MAX_RESULT_CHARS} characters")
    return result


MAX_FILE_RESULT_CHARS = 4 * 1024 * 1024  # a rendered file longer than this is refused


def render_file_template(text: str, variables: Mapping[str, Any], name: str = "template") -> str:
    """Render a template file (``template`` steps) with ``variables``, in the same bounded sandbox.

    Unlike a value, a file may use ``{% if %}``/``{% for %}``: it is written by the
    operator next to the playbook, not read from an inventory. An undefined
    variable is an error (StrictUndefined), never an empty string.
    """
    try:
        result = _FILE_ENV.from_string(text).render(dict(variables))
    except SecurityError as exc:
        raise TemplateValueError(f"{name}: refused by the template sandbox: {exc}") from None
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise TemplateValueError(f"{name}{f':{line}' if line else ''}: {exc}") from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError, MemoryError) as exc:
        raise TemplateValueError(f"{name}: {type(exc).__name__}: {exc}") from None
    if len(result) > MAX_FILE_RESULT_CHARS:
        raise TemplateValueError(f"{name}: the rendered file is longer than {MAX_FILE_RESULT_CHARS} characters")
    return result
