"""Shared fixtures: the lab (a session-wide simulated MI300X cluster) and ways to reach it.

The ``lab`` fixture brings a lab up once per test session with the default state
directory and inventory (so ``invoke``/``llmfleet`` commands run by tests see the
same lab) and always takes it down at the end, also after failures and Ctrl-C.
It skips, with the reason, where the lab cannot run (not root, no namespaces,
missing programs).

Environment:
  LLMFLEET_TEST_LAB_HOSTS   number of lab hosts (default 3)
  LLMFLEET_TEST_LAB_IMAGES  0 to skip building the SGLang images (quicker lab-only runs)
  LLMFLEET_TEST_LAB_PER_WORKER  1 to give each pytest-xdist worker a lab of its own (tests/parallel_labs.py)
  LLMFLEET_TEST_LAB_KEEP    1 to leave the default lab up at the end, for the next pytest run (scripts/test.sh)
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Sequence

import pytest

from tests import parallel_labs
from tests.helpers import ROOT

TEST_IMAGE = "llmfleet-labtest:1"


_OWN_PROJECT: Path | None = None  # a worker's own project folder (tests/parallel_labs.py)


def pytest_configure(config: pytest.Config) -> None:
    global _OWN_PROJECT
    config.addinivalue_line("markers", "lab: needs root, network namespaces and Docker engines (brings up the lab)")
    config.addinivalue_line("markers", "alone: measures the simulated GPUs' timing: runs while no other test runs")
    _OWN_PROJECT = parallel_labs.configure(ROOT)


def pytest_unconfigure(config: pytest.Config) -> None:
    parallel_labs.unconfigure(_OWN_PROJECT)
    parallel_labs.remove_lock_dir()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """A lab test's setup, call and teardown (so its module's and the session's fixtures too) under the workers' lock."""
    if item.get_closest_marker("lab") is None:
        yield
        return
    with parallel_labs.turn(item.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(scope="session", autouse=True)
def test_archive(tmp_path_factory) -> Path:
    """Runs archived by tests go to a temporary archive, never the project's."""
    path = tmp_path_factory.mktemp("archive")
    old = os.environ.get("LLMFLEET_ARCHIVE")
    os.environ["LLMFLEET_ARCHIVE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LLMFLEET_ARCHIVE", None)
    else:
        os.environ["LLMFLEET_ARCHIVE"] = old


@pytest.fixture(scope="session")
def lab():
    """The lab (``llmfleet.lab.LabInfo``), up for the whole session, down at its end."""
    from llmfleet.lab import lab_down, lab_up, unavailable_reason

    reason = unavailable_reason() or parallel_labs.shared_by_workers()
    if reason:
        pytest.skip(f"no lab here: {reason}")
    n = int(os.environ.get("LLMFLEET_TEST_LAB_HOSTS", "3"))
    images = os.environ.get("LLMFLEET_TEST_LAB_IMAGES", "1") != "0"
    try:
        info = lab_up(n, images=images)
    except BaseException:
        lab_down()
        raise
    try:
        yield info
    finally:
        if not parallel_labs.keep_for_next_run():
            lab_down()


SshRun = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def lab_ssh(lab) -> SshRun:
    """Run a command on a lab host with the real ssh client, strict host key checking on.

    ``lab_ssh(address_or_name, "command", timeout=30, input=None, options=[...])``.
    """

    def run(target: str, command: str, *, timeout: float = 60, input: bytes | str | None = None,
            options: Sequence[str] = (), connect_timeout: int = 5) -> subprocess.CompletedProcess:
        argv = [  # ssh keeps the first value of an option: the caller's options come first
            "ssh", "-F", "/dev/null", *options, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "IdentitiesOnly=yes",
            "-o", f"ConnectTimeout={connect_timeout}", "-i", str(lab.ssh_key),
            f"root@{target}", command,
        ]
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False,
                              text=not isinstance(input, bytes))

    return run


def _test_image_tar(dest: Path) -> Path:
    """A tiny image root: this machine's /bin/sh and a few tools with their libraries, and a video group.

    Nothing can be pulled from a registry here; ``docker import`` of this tar gives
    the engines something real to run.
    """
    root_files: dict[str, Path] = {}
    for tool in ("/bin/sh", "/bin/ls", "/bin/cat", "/bin/sleep", "/bin/grep"):
        root_files[tool] = Path(tool)
        ldd = subprocess.run(["ldd", tool], capture_output=True, text=True, check=True).stdout
        for token in ldd.split():
            if token.startswith("/"):
                root_files[token] = Path(token)
    etc = dest / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "group").write_text("root:x:0:\nvideo:x:44:\n")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    tar_path = dest / "image.tar"
    with tarfile.open(tar_path, "w") as tar:
        for inside, real in sorted(root_files.items()):
            tar.add(real.resolve(), arcname=inside.lstrip("/"))
        tar.add(etc / "group", arcname="etc/group")
        tar.add(etc / "passwd", arcname="etc/passwd")
    return tar_path


@pytest.fixture(scope="session")
def lab_test_image(lab, lab_ssh, tmp_path_factory) -> str:
    """A tiny test image, imported into every lab host's engine over SSH; returns its tag."""
    tar = _test_image_tar(tmp_path_factory.mktemp("labimage")).read_bytes()
    for host in lab.hosts:
        out = lab_ssh(host.address, f"docker import - {TEST_IMAGE}", input=tar, timeout=120)
        assert out.returncode == 0, out.stderr
    return TEST_IMAGE
