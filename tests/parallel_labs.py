"""Lab tests on several pytest-xdist workers: a lab of its own for each worker, and tests that run alone.

``LLMFLEET_TEST_LAB_KEEP=1 pytest -m alone tests --ignore=tests/unit`` without xdist, then
``LLMFLEET_TEST_LAB_PER_WORKER=1 pytest -n 2 --dist loadfile -m "not alone" tests --ignore=tests/unit`` (scripts/test.sh).

Most of a lab test's time is waiting (simulated model loads and decoding, health gates, SSH
and Docker round trips), so two workers with a lab each finish the lab suite much sooner
on two cores. Worker gwN (N >= 1) gets lab instance N (``$LLMFLEET_LAB_INSTANCE``: its
own bridge, subnet and namespace names) and a project folder of its own
(``$LLMFLEET_HOME``: the checkout's folders linked in, its own inventory/, .lab/ and
.router/), so ``--hosts lab`` means that worker's hosts in every command a test runs.
Worker gw0 uses the default lab, as a run without xdist does.

Tests marked ``alone`` measure the simulated GPUs' timing against the cookbook or against
each other; other work on the same cores would skew them. scripts/test.sh runs them first, by
themselves, on a fresh lab, which worker gw0 then goes on with. In a run that mixes them with
the others on several workers, they wait until no other test runs (a readers-writer lock over
files shared by the workers, writers first).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

INSTANCE_ENV = "LLMFLEET_LAB_INSTANCE"  # llmfleet.lab.topology reads it (not imported here: it reads it once)
PER_WORKER_ENV = "LLMFLEET_TEST_LAB_PER_WORKER"
KEEP_ENV = "LLMFLEET_TEST_LAB_KEEP"
# What each worker keeps for itself; everything else in the checkout is linked in.
OWN = {"inventory", ".lab", ".router", "archive", ".git"}
# The default lab's inventory file, written by lab.up; a worker's lab writes its own.
LAB_INVENTORY = "lab.yml"


def worker_number() -> int | None:
    """N for xdist worker gwN, None outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def project_of_its_own(checkout: Path, instance: int) -> Path:
    """A project folder for one worker: the checkout's entries linked in, its own inventory/ and state."""
    home = Path(tempfile.mkdtemp(prefix=f"llmfleet-lab{instance}-"))  # short: the control socket lives under it
    for entry in checkout.iterdir():
        if entry.name not in OWN:
            (home / entry.name).symlink_to(entry)
    inventory = home / "inventory"
    inventory.mkdir()
    for entry in (checkout / "inventory").iterdir():
        if entry.name != LAB_INVENTORY:
            (inventory / entry.name).symlink_to(entry)
    return home


def per_worker() -> bool:
    """Asked for by the runner (scripts/test.sh): unit tests, which check the default lab's names, never are."""
    return os.environ.get(PER_WORKER_ENV, "0") == "1"


def shared_by_workers() -> str | None:
    """Why the session lab cannot be used here: several workers would share (and take down) one lab."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if count > 1 and not per_worker():
        return f"{count} xdist workers would share one lab: set {PER_WORKER_ENV}=1 to give each its own"
    return None


def keep_for_next_run() -> bool:
    """scripts/test.sh: the timing tests' run leaves the default lab up (its hosts hold the images) for worker
    gw0 of the next run, which takes it down. A worker's own lab always goes: its project folder goes with it."""
    return os.environ.get(KEEP_ENV, "0") == "1" and INSTANCE_ENV not in os.environ


def configure(checkout: Path) -> Path | None:
    """In worker gwN (N >= 1), when asked for: lab instance N and a project folder of its own; returns that folder.

    Runs before any test module (and so llmfleet.lab.topology) is imported.
    """
    n = worker_number()
    if not n or not per_worker() or INSTANCE_ENV in os.environ:
        return None
    if n > 9:
        raise RuntimeError(f"the lab has instances 1..9: run the lab tests on at most 10 workers, not gw{n}")
    home = project_of_its_own(checkout, n)
    os.environ[INSTANCE_ENV] = str(n)
    os.environ["LLMFLEET_HOME"] = str(home)
    return home


def unconfigure(home: Path | None) -> None:
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)  # links are removed, not followed


def _lock_dir() -> Path | None:
    """Files the workers of one run share; None outside xdist."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run or worker_number() is None:
        return None
    path = Path(tempfile.gettempdir()) / f"llmfleet-tests-{run}"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def turn(alone: bool) -> Iterator[None]:
    """Hold the room shared (any test) or exclusive (an ``alone`` test) for one test's setup, call and teardown.

    A writer takes the gate first and keeps it while it waits, so readers queue behind it
    instead of starving it.
    """
    where = _lock_dir()
    if where is None:
        yield
        return
    with open(where / "gate", "a") as gate, open(where / "room", "a") as room:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)


def remove_lock_dir() -> None:
    """At a worker's end: by then no other worker needs the lock (it has its last module, or none)."""
    where = _lock_dir()
    if where is not None:
        shutil.rmtree(where, ignore_errors=True)
