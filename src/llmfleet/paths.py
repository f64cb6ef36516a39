"""Where the project's data lives: playbooks, roles, catalog, templates, inventory.

The tasks run from a checkout (``invoke ...``) or as the installed ``llmfleet``
script; both find the project directory the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

_MARKER = "playbooks"


def project_root() -> Path:
    """The directory holding playbooks/, roles/, catalog/ and templates/.

    Order: $LLMFLEET_HOME, the current directory, then the checkout this package
    was installed from (an editable install).
    """
    env = os.environ.get("LLMFLEET_HOME")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd()
    if (cwd / _MARKER).is_dir() and (cwd / "catalog").is_dir():
        return cwd
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / _MARKER).is_dir():
        return checkout
    return cwd


def catalog_dir() -> Path:
    return project_root() / "catalog"


def playbooks_dir() -> Path:
    return project_root() / "playbooks"


def roles_dir() -> Path:
    return project_root() / "roles"


def templates_dir() -> Path:
    return project_root() / "templates"


def default_inventory() -> Path:
    return project_root() / "inventory"


def archive_dir() -> Path:
    """Run archives; $LLMFLEET_ARCHIVE moves them (tests use a temporary one)."""
    env = os.environ.get("LLMFLEET_ARCHIVE")
    return Path(env) if env else project_root() / "archive"


def lab_state_dir() -> Path:
    """Lab bookkeeping (PIDs, keys, known_hosts); $LLMFLEET_LAB_STATE moves it."""
    env = os.environ.get("LLMFLEET_LAB_STATE")
    return Path(env) if env else project_root() / ".lab"


def shown(path: str | Path) -> str:
    """A path for messages: relative to the project when inside it (short, and the same on every machine)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(project_root().resolve()))
    except (ValueError, OSError):
        return str(path)
