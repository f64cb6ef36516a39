"""The lab's record of what it made, written as it goes so lab.down can undo a crashed lab.up.

One JSON file (``<state>/lab.json``), rewritten atomically after every change,
under an exclusive lock file so two lab commands never interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

VERSION = 1


def empty() -> dict[str, Any]:
    return {"version": VERSION, "made": {}, "control": {}, "hosts": {}, "datasets": {}, "images": {}}


class State:
    """The state dict plus a save() that is safe to call from several threads."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data
        self._mutex = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> "State":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            data = empty()
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{path}: unreadable lab state ({exc}); remove the lab by hand") from None
        for key, value in empty().items():
            data.setdefault(key, value)
        return cls(path, data)

    @property
    def hosts(self) -> dict[str, dict[str, Any]]:
        return self.data["hosts"]

    @property
    def made(self) -> dict[str, Any]:
        """Things outside the state dir the lab created (bridge, guard table, mount points)."""
        return self.data["made"]

    def host(self, name: str) -> dict[str, Any]:
        return self.data["hosts"].setdefault(name, {})

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Change the data and save it, one thread at a time."""
        with self._mutex:
            yield self.data
            self._save_locked()

    def save(self) -> None:
        with self._mutex:
            self._save_locked()

    def _save_locked(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold the lab's exclusive lock (blocks while another lab command runs)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
