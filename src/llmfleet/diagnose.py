"""Tell an operator why a server failed: match its last log lines against known signatures.

The signatures live in ``catalog/failure-signatures.yml`` (validated here with
:mod:`llmfleet.schema`, so a typo or a regex that does not compile is an InputError at
file:line). When several signatures match, the most specific cause (highest
``priority``) comes first. :func:`diagnose` never raises: it runs on the failure path
of a deploy, where an internal error would hide the server's own log tail.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import paths, schema, yamlsrc
from .errors import InputError

EVIDENCE_CHARS = 240
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class SignatureSpec(schema.Struct, frozen=True, kw_only=True):
    """One entry of failure-signatures.yml, as written."""

    id: str
    pattern: str
    cause: str
    fix: str
    priority: int = 50
    requires: list[str] = []
    unless: list[str] = []
    case_sensitive: bool = False


@dataclass(frozen=True)
class Signature:
    """A validated entry with its regexes compiled."""

    id: str
    pattern: re.Pattern[str]
    cause: str
    fix: str
    priority: int
    order: int
    requires: tuple[re.Pattern[str], ...] = ()
    unless: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    """One finding: what the log most likely means, what to do, and the line that says so."""

    signature: str
    cause: str
    fix: str
    evidence: str

    @property
    def meaning(self) -> str:  # the name the deploy's failure report used first
        return self.cause

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def default_path() -> Path:
    return paths.catalog_dir() / "failure-signatures.yml"


def _compile(regex: str, flags: int, where: str, path: Path, line: int | None) -> re.Pattern[str]:
    try:
        return re.compile(regex, flags)
    except re.error as exc:
        raise InputError(f"{where}: regex does not compile: {exc}", path, line) from None


def _line_of(node: Any, key: str) -> int | None:
    line_of = getattr(node, "line_of", None)
    return line_of(key) if line_of and isinstance(node, dict) and key in node else getattr(node, "line", None)


def load_signatures(path: Path | None = None) -> list[Signature]:
    """Read and validate the signature file; InputError (file:line) on any problem."""
    path = Path(path or default_path())
    doc = yamlsrc.load(path)
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise InputError("expected a list of signatures", path, getattr(doc, "line", 1))
    seen: dict[str, int] = {}
    out = []
    for i, node in enumerate(doc):
        if not isinstance(node, dict):
            raise InputError(f"signature {i + 1}: expected a mapping", path, getattr(node, "line", None))
        spec = schema.convert(node, SignatureSpec, path=str(path), what=f"signature {node.get('id', i + 1)}")
        if spec.id in seen:
            raise InputError(f"signature id {spec.id!r} used twice", path, _line_of(node, "id"))
        seen[spec.id] = i
        flags = 0 if spec.case_sensitive else re.IGNORECASE
        where = f"signature {spec.id}"
        out.append(
            Signature(
                id=spec.id,
                pattern=_compile(spec.pattern, flags, where, path, _line_of(node, "pattern")),
                cause=spec.cause,
                fix=spec.fix,
                priority=spec.priority,
                order=i,
                requires=tuple(_compile(r, flags, where, path, _line_of(node, "requires")) for r in spec.requires),
                unless=tuple(_compile(r, flags, where, path, _line_of(node, "unless")) for r in spec.unless),
            )
        )
    return out


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> tuple[Signature, ...]:
    return tuple(load_signatures(Path(path)))


def signatures(path: Path | None = None) -> tuple[Signature, ...]:
    """The signatures of ``path`` (default: the catalog's), re-read when the file changes."""
    path = Path(path or default_path())
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    return _cached(str(path), mtime)


def _fill(template: str, groups: dict[str, str | None]) -> str:
    """``{name}`` -> the named group's text; an unmatched group reads as NAME."""
    return _PLACEHOLDER.sub(lambda m: groups.get(m.group(1)) or m.group(1).upper(), template)


def _evidence(text: str, match: re.Match[str]) -> str:
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return text[start : end if end >= 0 else None].strip()[:EVIDENCE_CHARS]


def match(text: str, sigs: tuple[Signature, ...] | list[Signature]) -> list[Diagnosis]:
    """Every signature that applies to ``text``, most specific first (priority, then file order)."""
    hits: list[tuple[Signature, Diagnosis]] = []
    for sig in sigs:
        last = None
        groups: dict[str, str | None] = {}
        for last in sig.pattern.finditer(text):  # the last occurrence is the one nearest the crash
            groups.update({k: v for k, v in last.groupdict().items() if v is not None})
        if last is None:
            continue
        if not all(r.search(text) for r in sig.requires) or any(r.search(text) for r in sig.unless):
            continue
        hits.append((sig, Diagnosis(sig.id, _fill(sig.cause, groups), _fill(sig.fix, groups), _evidence(text, last))))
    hits.sort(key=lambda h: (-h[0].priority, h[0].order))
    return [d for _, d in hits]


def diagnose(log_text: str, path: Path | None = None) -> list[Diagnosis]:
    """Findings for a log; never raises (a broken signature file becomes a finding itself)."""
    try:
        return match(str(log_text), signatures(path))
    except InputError as exc:
        return [Diagnosis("signature-file-invalid", f"cannot diagnose: {exc}", "fix the signature file", "")]
    except Exception as exc:  # the failure path must keep the server's log tail visible
        return [Diagnosis("diagnose-error", f"cannot diagnose: {type(exc).__name__}: {exc}", "report this", "")]


def findings_json(found: list[Diagnosis]) -> dict[str, list[dict[str, str]]]:
    """``{"findings": [{"cause", "fix", "evidence", "signature"}, ...]}`` (the --json shape)."""
    return {"findings": [d.to_json() for d in found]}


def step_message(found: list[Diagnosis]) -> str:
    """A playbook step's message: a summary line, then the findings as one JSON line."""
    head = f"likely cause: {found[0].cause}" if found else "no known failure signature in the log"
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"{head}{more}\n{json.dumps(findings_json(found), sort_keys=True)}"


def parse_step_message(message: str) -> list[dict[str, str]]:
    """The findings :func:`step_message` wrote; [] for any other message."""
    last = message.rstrip().rpartition("\n")[2]
    try:
        data = json.loads(last)
    except ValueError:
        return []
    found = data.get("findings") if isinstance(data, dict) else None
    return found if isinstance(found, list) else []
