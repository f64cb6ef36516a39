"""Running the real command line from tests, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def cli(*args: str, env: dict | None = None, timeout: float = 900, input_text: str | None = None) -> CliResult:
    """`python -m llmfleet ARGS` in the project root, with stdin closed (as in CI)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "llmfleet", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL if input_text is None else None,
        input=input_text,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
