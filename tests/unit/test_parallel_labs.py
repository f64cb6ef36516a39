"""The test workers' lock (tests/parallel_labs.py): an `alone` test runs with no other test, and is not starved."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import uuid

import pytest

from tests import parallel_labs
from tests.helpers import ROOT

# One "test" in another process: holds the lock (shared, or alone) from "in" until a line arrives on stdin.
HOLDER = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tests import parallel_labs; "
    "t = parallel_labs.turn(sys.argv[2] == 'alone'); t.__enter__(); print('in', flush=True); "
    "sys.stdin.readline(); t.__exit__(None, None, None); print('out', flush=True)"
)


def _start(kind: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)


def _said(proc: subprocess.Popen, timeout: float) -> str | None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else None


def _release(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()


@pytest.fixture
def run_env(monkeypatch):
    run = f"unit-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTEST_XDIST_TESTRUNUID": run, "PYTEST_XDIST_WORKER": "gw7"}
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", run)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    yield env
    parallel_labs.remove_lock_dir()


def test_an_alone_test_waits_for_the_running_ones_and_the_next_ones_wait_for_it(run_env):
    procs = []
    try:
        reader = _start("shared", run_env)
        procs.append(reader)
        assert _said(reader, 10) == "in"
        other = _start("shared", run_env)  # two ordinary tests at once: fine
        procs.append(other)
        assert _said(other, 10) == "in"
        _release(other)
        assert _said(other, 10) == "out"

        alone = _start("alone", run_env)
        procs.append(alone)
        assert _said(alone, 1.0) is None  # a test is still running
        late = _start("shared", run_env)
        procs.append(late)
        assert _said(late, 1.0) is None  # queued behind the waiting alone test, which is not starved
        _release(reader)
        assert _said(reader, 10) == "out"
        assert _said(alone, 10) == "in"
        assert _said(late, 1.0) is None  # nothing runs beside an alone test
        _release(alone)
        assert _said(alone, 10) == "out"
        assert _said(late, 10) == "in"
        _release(late)
        assert _said(late, 10) == "out"
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_outside_xdist_there_is_no_lock(monkeypatch):
    import tempfile

    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "unit-outside")
    with parallel_labs.turn(True):
        assert not os.path.exists(os.path.join(tempfile.gettempdir(), "llmfleet-tests-unit-outside"))


def test_only_asked_for_workers_get_a_lab_instance_and_a_project_folder(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.delenv(parallel_labs.PER_WORKER_ENV, raising=False)
    monkeypatch.delenv(parallel_labs.INSTANCE_ENV, raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert parallel_labs.configure(ROOT) is None  # not asked for: unit tests keep the default lab's names
    assert "share one lab" in (parallel_labs.shared_by_workers() or "")
    monkeypatch.setenv(parallel_labs.PER_WORKER_ENV, "1")
    monkeypatch.setenv("LLMFLEET_HOME", "unchanged")  # configure sets both; monkeypatch restores both
    home = parallel_labs.configure(ROOT)
    try:
        assert home is not None and os.environ[parallel_labs.INSTANCE_ENV] == "1"
        assert os.environ["LLMFLEET_HOME"] == str(home)
        assert (home / "catalog").resolve() == (ROOT / "catalog").resolve()
        assert not (home / ".lab").exists() and not (home / "inventory" / "lab.yml").exists()
        assert (home / "inventory").is_dir() and not (home / "inventory").is_symlink()
        assert parallel_labs.shared_by_workers() is None
    finally:
        parallel_labs.unconfigure(home)
    assert home is not None and not home.exists() and (ROOT / "catalog").is_dir()
