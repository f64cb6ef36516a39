"""Small pure parts of the runner: batches, secrets, the deploy lock's commands, diagnosis."""

import os
import subprocess
import time

import pytest

from llmfleet import deployment, diagnose, hostlock, runner, secrets, shell
from llmfleet.errors import InputError


def test_serial_batches():
    hosts = list("abcdefg")
    assert runner.batches(hosts, None) == [hosts]
    assert runner.batches(hosts, "3") == [list("abc"), list("def"), list("g")]
    assert runner.batches(hosts, "50%") == [list("abc"), list("def"), list("g")]
    assert runner.batches(hosts, "1%") == [[h] for h in hosts]
    with pytest.raises(InputError):
        runner.batches(hosts, "two")
    with pytest.raises(InputError):
        runner.batches(hosts, "0")


def test_token_file_must_be_private(tmp_path):
    f = tmp_path / "token"
    f.write_text("hf_fromAFile123\n")
    os.chmod(f, 0o644)
    with pytest.raises(InputError, match="chmod 600"):
        secrets.load_hf_token({}, str(f))
    os.chmod(f, 0o600)
    assert secrets.load_hf_token({}, str(f)) == "hf_fromAFile123"
    assert secrets.load_hf_token({"HF_TOKEN": " hf_env \n"}) == "hf_env"
    assert secrets.load_hf_token({}) is None


def test_env_file_refuses_newlines():
    assert secrets.env_file_text({"HF_TOKEN": "abc"}) == "HF_TOKEN=abc\n"
    with pytest.raises(InputError):
        secrets.env_file_text({"HF_TOKEN": "abc\nEVIL=1"})


def test_secret_fingerprint_changes_with_the_secret_and_hides_it():
    a = deployment.secret_fingerprint({"HF_TOKEN": "hf_aaaa"})
    b = deployment.secret_fingerprint({"HF_TOKEN": "hf_bbbb"})
    assert a != b and "hf_aaaa" not in a and deployment.secret_fingerprint({}) == ""


def test_lock_is_atomic_and_audit_appends(tmp_path):
    remote = str(tmp_path / "remote dir")
    run = lambda argv: subprocess.run(["sh", "-c", shell.join(argv)], capture_output=True, text=True)  # noqa: E731
    assert run(hostlock.acquire(remote)).returncode == 0
    assert run(hostlock.acquire(remote)).returncode != 0  # the second taker fails
    line = hostlock.audit_line("deploy", "r1", "ok", "it's $HOME; `x`")
    assert run(hostlock.audit(remote, line)).returncode == 0
    assert run(hostlock.audit(remote, "second")).returncode == 0
    assert (tmp_path / "remote dir" / "audit.log").read_text() == line + "\nsecond\n"
    assert run(hostlock.release(remote)).returncode == 0
    assert run(hostlock.acquire(remote)).returncode == 0


def test_diagnose_finds_known_signatures():
    log = "INFO loading\nRuntimeError: HIP error: invalid device function\nmore"
    found = diagnose.diagnose(log)
    assert found and "flavour" in found[0].fix and "invalid device function" in found[0].evidence
    assert diagnose.diagnose("all is well\nThe server is fired up and ready to roll!") == []


def test_saved_images_are_pruned_to_the_newest(tmp_path):
    from llmfleet.actions.image import prune

    for i, name in enumerate(["a.tar", "b.tar", "c.tar"]):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / "keep.partial").write_bytes(b"x")
    for made in ("a.tar.lock", "a.tar.zst", "a.less1.tar", "a.less1.tar.zst", "c.less1.tar"):  # made from a.tar, c.tar
        (tmp_path / made).write_bytes(b"x")
        os.utime(tmp_path / made, (2000, 2000))  # newer than every whole tar: never counted as one
    removed = prune(tmp_path, keep=2)
    assert [p.name for p in removed] == ["a.tar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "c.less1.tar", "c.tar", "keep.partial"]


def test_prune_skips_a_saved_image_another_run_is_streaming(tmp_path):
    """Two runs on one control node: the older image the other run still pushes is not deleted under it."""
    import subprocess
    import sys

    from llmfleet.actions.image import hold_in_use, prune

    for i, name in enumerate(["a.tar", "b.tar", "c.tar"]):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    holder = subprocess.Popen(  # the other run: another process, holding a.tar until told to stop
        [sys.executable, "-c", "import sys, pathlib; from llmfleet.actions.image import hold_in_use; "
         "h = hold_in_use(pathlib.Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()",
         str(tmp_path / "a.tar")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert prune(tmp_path, keep=1) == [tmp_path / "b.tar"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.inuse", "a.tar", "c.tar"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert prune(tmp_path, keep=1) == [tmp_path / "a.tar"]  # let go: now it goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tar"]
    with hold_in_use(tmp_path / "c.tar"):  # this run's own image is never a candidate either
        assert prune(tmp_path, keep=0) == []
        assert (tmp_path / "c.tar").exists()


def test_a_cache_file_is_made_once_by_concurrent_runs(tmp_path):
    """Hosts' threads (and other llmfleet processes) asking for the same saved image: one maker, no torn file."""
    import multiprocessing
    import threading

    from llmfleet.actions.image import cached_file

    target = tmp_path / "cache" / "img.tar"
    count = tmp_path / "makers"

    def make(tmp) -> None:
        with open(count, "a") as fh:  # counted in a file: the other process's calls count too
            fh.write("made\n")
        tmp.write_bytes(b"a" * 1000)
        time.sleep(0.1)
        tmp.write_bytes(b"b" * 2000)

    # forked before any thread holds the lock (a fork would share the holder's lock)
    child = multiprocessing.get_context("fork").Process(target=cached_file, args=(target, make))
    child.start()
    threads = [threading.Thread(target=cached_file, args=(target, make)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    child.join(10)
    assert target.read_bytes() == b"b" * 2000 and count.read_text() == "made\n" and child.exitcode == 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["img.tar", "img.tar.lock"]  # no partial file left


def test_a_failed_cache_maker_leaves_no_partial_file(tmp_path):
    from llmfleet.actions.image import cached_file

    def broken(tmp) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("docker save died")

    with pytest.raises(RuntimeError):
        cached_file(tmp_path / "img.tar", broken)
    assert [p.name for p in tmp_path.iterdir()] == ["img.tar.lock"]
