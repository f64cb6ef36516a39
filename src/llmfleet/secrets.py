"""Secrets from the control node: read once, kept in memory, never on a command line.

The Hugging Face token comes from $HF_TOKEN or a file (`--hf-token-file`, mode
0600 recommended). It reaches hosts only inside a 0600 env file written over SFTP,
and every log, event and archived file is masked with it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping

from .errors import InputError


def load_hf_token(env: Mapping[str, str] | None = None, token_file: str | None = None) -> str | None:
    env = os.environ if env is None else env
    if token_file:
        path = Path(token_file).expanduser()
        try:
            mode = path.stat().st_mode
            token = path.read_text().strip()
        except OSError as exc:
            raise InputError(f"cannot read the HF token file: {exc.strerror}", path) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError("the HF token file is readable by others: chmod 600 it", path)
        return token or None
    token = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN")
    return token.strip() if token else None


def env_file_text(values: Mapping[str, str]) -> str:
    """docker --env-file format: KEY=VALUE lines, no quoting (docker takes the rest of the line)."""
    for key, value in values.items():
        if "\n" in value or "\n" in key:
            raise InputError(f"secret {key} contains a newline")
    return "".join(f"{k}={v}\n" for k, v in sorted(values.items()))
