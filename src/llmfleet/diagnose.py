"""Tell an operator why a server failed: match its last log lines against known signatures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import paths, yamlsrc


@dataclass(frozen=True)
class Diagnosis:
    meaning: str
    fix: str
    evidence: str


@lru_cache(maxsize=2)
def _signatures(path: str) -> list[tuple[re.Pattern[str], str, str]]:
    doc = yamlsrc.load(Path(path)) or []
    return [(re.compile(e["pattern"]), e["meaning"], e["fix"]) for e in doc]


def diagnose(log_text: str, path: Path | None = None) -> list[Diagnosis]:
    found = []
    for pattern, meaning, fix in _signatures(str(path or paths.catalog_dir() / "failure-signatures.yml")):
        match = pattern.search(log_text)
        if match:
            line_start = log_text.rfind("\n", 0, match.start()) + 1
            line_end = log_text.find("\n", match.end())
            evidence = log_text[line_start : line_end if line_end >= 0 else None].strip()[:240]
            found.append(Diagnosis(meaning, fix, evidence))
    return found
