"""The server's command line, as the real SGLang would parse it.

The real parser lives in ``sglang/srt/server_args.py`` (``ServerArgs.add_cli_args``),
which imports torch, so it cannot be imported here. Instead its source is read with
``ast``: option strings, actions, int/float types, literal choices, nargs, defaults. A
flag the installed SGLang does not know is rejected exactly as the real server would
(argparse's message, exit code 2). Without an installed sglang (the control node) a
small built-in list from ``lab-sim.yml`` is used.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_TYPES = {"int": int, "float": float, "str": str}


@dataclass
class OptionSpec:
    """One `add_argument` call, reduced to what argparse needs to accept or reject input."""

    flags: list[str]
    action: str | None = None  # store_true, store_false, append, count, store_const, deprecated
    type: str | None = None  # int, float, str (anything else is taken as str)
    choices: list[Any] | None = None
    nargs: str | int | None = None
    required: bool = False
    default: Any = None
    dest: str | None = None
    const: Any = None
    help: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def find_server_args_source() -> Path | None:
    """The installed sglang's server_args.py, found without importing sglang."""
    env = os.environ.get("LLMFLEET_SIM_SERVER_ARGS")
    if env:
        return Path(env)
    try:
        spec = importlib.util.find_spec("sglang")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "srt" / "server_args.py"
        if candidate.is_file():
            return candidate
    return None


def _literal(node: ast.AST, names: dict[str, Any]) -> Any:
    """A constant, a list/tuple/set of constants, or a module-level name bound to one."""
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left, names), _literal(node.right, names)
        if isinstance(left, list) and isinstance(right, list):
            return left + right
        raise ValueError("not a literal")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "sorted") and len(node.args) == 1:
        value = _literal(node.args[0], names)
        if isinstance(value, (list, tuple, set)):
            return sorted(value) if node.func.id == "sorted" else list(value)
        raise ValueError("not a literal")
    value = ast.literal_eval(node)
    if isinstance(value, (set, tuple)):
        return sorted(value, key=str) if isinstance(value, set) else list(value)
    return value


def _module_literals(tree: ast.Module) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        else:
            continue
        try:
            names[target] = _literal(value, names)
        except (ValueError, TypeError, SyntaxError):
            pass
    return names


def _class_defaults(tree: ast.Module, class_name: str) -> dict[str, Any]:
    """Field defaults of the ServerArgs dataclass (`tp_size: int = 1`) that are literals."""
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
                    try:
                        out[item.target.id] = ast.literal_eval(item.value)
                    except (ValueError, TypeError, SyntaxError):
                        pass
    return out


def extract_options(source: str) -> list[OptionSpec]:
    """Every `parser.add_argument(...)` in server_args.py's source, in source order."""
    tree = ast.parse(source)
    names = _module_literals(tree)
    defaults = _class_defaults(tree, "ServerArgs")
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
    ]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    specs: list[OptionSpec] = []
    for call in calls:
        flags = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if not flags or not all(f.startswith("-") for f in flags):
            continue
        spec = OptionSpec(flags=flags)
        for kw in call.keywords:
            if kw.arg is None:
                continue
            value = kw.value
            if kw.arg == "action":
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    spec.action = value.value
                elif isinstance(value, ast.Name) and value.id == "DeprecatedAction":
                    spec.action = "deprecated"
                else:
                    spec.action = None  # a custom Action that stores values (e.g. LoRAPathAction)
            elif kw.arg == "type":
                name = value.id if isinstance(value, ast.Name) else None
                spec.type = name if name in _TYPES else "str"
            elif kw.arg == "choices":
                try:
                    choices = _literal(value, names)
                    spec.choices = list(choices) if isinstance(choices, (list, tuple, set)) else None
                except (ValueError, TypeError, SyntaxError):
                    spec.choices = None  # computed at import time (parsers registry): accept any
            elif kw.arg == "default":
                if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "ServerArgs":
                    spec.default = defaults.get(value.attr)
                else:
                    try:
                        spec.default = _literal(value, names)
                    except (ValueError, TypeError, SyntaxError):
                        spec.default = None
            elif kw.arg in ("nargs", "required", "dest", "const", "help"):
                try:
                    setattr(spec, kw.arg, ast.literal_eval(value))
                except (ValueError, TypeError, SyntaxError):
                    pass
        specs.append(spec)
    return specs


def specs_from_fallback(entries: Sequence[dict[str, Any]]) -> list[OptionSpec]:
    """The built-in list from lab-sim.yml (`fallback_server_args`)."""
    out = []
    for e in entries:
        kind = e.get("type", "str")
        out.append(
            OptionSpec(
                flags=list(e["flags"]),
                action="store_true" if kind == "bool" else None,
                type=None if kind == "bool" else kind,
                choices=e.get("choices"),
                required=bool(e.get("required", False)),
                default=e.get("default", False if kind == "bool" else None),
            )
        )
    return out


class _Deprecated(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, nargs: int = 0, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        print(f"The command line argument '{option_string}' is deprecated and will be removed in future versions.")


def build_parser(specs: Sequence[OptionSpec], prog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser that accepts and rejects what the real server's parser does."""
    parser = argparse.ArgumentParser(prog=prog)
    for spec in specs:
        kwargs: dict[str, Any] = {}
        if spec.action == "deprecated":
            kwargs["action"] = _Deprecated
        elif spec.action in ("store_true", "store_false", "count", "append", "store_const", "append_const", "extend"):
            kwargs["action"] = spec.action
        if spec.action in (None, "append", "extend", "store"):
            if spec.type:
                kwargs["type"] = _TYPES.get(spec.type, str)
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            if spec.nargs is not None:
                kwargs["nargs"] = spec.nargs
        if spec.action in ("store_const", "append_const") or (spec.nargs == "?" and spec.const is not None):
            kwargs["const"] = spec.const
        if spec.required:
            kwargs["required"] = True
        if spec.dest:
            kwargs["dest"] = spec.dest
        if spec.default is not None and spec.action != "deprecated":
            kwargs["default"] = spec.default
        if spec.help:
            kwargs["help"] = spec.help.replace("%", "%%")
        try:
            parser.add_argument(*spec.flags, **kwargs)
        except (argparse.ArgumentError, ValueError, TypeError):
            continue  # a flag added twice under a condition in the real source: keep the first
    return parser


def load_parser(fallback: Sequence[dict[str, Any]], prog: str | None = None) -> tuple[argparse.ArgumentParser, str]:
    """(parser, where its flags came from)."""
    source = find_server_args_source()
    if source is not None:
        specs = extract_options(source.read_text())
        if specs:
            return build_parser(specs, prog), str(source)
    return build_parser(specs_from_fallback(fallback), prog), "built-in list (no sglang package installed)"


def value(ns: argparse.Namespace, *names: str, default: Any = None) -> Any:
    """The first attribute present (the dest names changed across versions)."""
    for name in names:
        if getattr(ns, name, None) is not None:
            return getattr(ns, name)
    return default
