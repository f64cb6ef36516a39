"""The peer tools the benchmarks compare against, each in its own virtualenv with a pinned version.

Installed from PyPI on first use under ~/.cache/llmfleet/bench-venvs/<name>-<version>, so the
comparison runs the same versions everywhere and never touches the toolkit's own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PINS: dict[str, tuple[str, str]] = {  # peer -> (pip requirement, the executable it provides)
    "ansible": ("ansible-core==2.18.12", "ansible"),
    "ansible-playbook": ("ansible-core==2.18.12", "ansible-playbook"),
    "pyinfra": ("pyinfra==3.5.1", "pyinfra"),
    "fabric": ("fabric==3.2.2", "python"),
}


def venv_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmfleet" / "bench-venvs"


def ensure(peer: str) -> Path:
    """The peer's executable in its pinned virtualenv, created and installed on first use."""
    requirement, exe = PINS[peer]
    venv = venv_root() / requirement.replace("==", "-")
    path = venv / "bin" / exe
    if path.exists():
        return path
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", requirement], check=True)
    return path


if __name__ == "__main__":
    for name in sys.argv[1:] or list(PINS):
        print(name, ensure(name))
