"""The run archive: atomic runs, checksums, no overwrite, secrets masked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmfleet import archive
from llmfleet.errors import InputError

META = {"kind": "bench", "model": "scout", "hosts": {"lab1": {"hardware": "mi300x", "image": "x:v0.5.9-rocm720-mi30x"}}}


def make_run(root: Path, **files: str) -> archive.RunWriter:
    with archive.new_run(META, root=root) as run:
        for rel, text in (files or {"lab1/bench/low.log": "Successful requests: 10\n"}).items():
            run.write(rel.replace("__", "/"), text)
    return run


def test_complete_run_layout_and_manifest(tmp_path: Path) -> None:
    src = tmp_path / "docker.log"
    src.write_bytes(b"server log\n")
    with archive.new_run(META, root=tmp_path / "a") as run:
        assert run.path.name == f".{run.run_id}.partial"
        assert archive.RUN_ID_RE.match(run.run_id)
        p = run.write("lab1/bench/low.log", "block\n")
        assert p == run.path / "lab1/bench/low.log" and p.read_text() == "block\n"
        run.write("lab1/bench/low.jsonl", b'{"completed": 10}\n')
        run.copy_in("lab1/server/docker.log", src)
        run.event("bench.start", host="lab1", profile="low")
        run.update_meta(sglang_version="0.5.9", status="ok")
        assert archive.list_runs(tmp_path / "a") == []  # not visible while open
    assert run.path == tmp_path / "a" / run.run_id
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [run.run_id]
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["run_id"] == run.run_id and manifest["complete"] is True and manifest["status"] == "ok"
    assert manifest["kind"] == "bench" and manifest["sglang_version"] == "0.5.9"
    assert manifest["toolkit_version"] and manifest["started_at"] <= manifest["ended_at"]
    files = {f["path"]: f for f in manifest["files"]}
    assert set(files) == {"lab1/bench/low.log", "lab1/bench/low.jsonl", "lab1/server/docker.log", "events.jsonl"}
    assert files["lab1/bench/low.log"]["size"] == 6
    assert files["lab1/server/docker.log"]["sha256"] == archive.sha256_file(src)
    event = json.loads((run.path / "events.jsonl").read_text())
    assert event["event"] == "bench.start" and event["host"] == "lab1"
    assert archive.verify_run(run.path) == []


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = {archive.new_run_id() for _ in range(200)}
    assert len(ids) == 200
    import datetime as dt
    a = archive.new_run_id(dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    assert a.startswith("20250102T030405Z-") and len(a) == len("20250102T030405Z-abcdef")


def test_verify_detects_a_changed_byte_and_missing_and_extra_files(tmp_path: Path) -> None:
    run = make_run(tmp_path, lab1__bench__low__log="Successful requests: 10\n", lab1__facts__json="{}\n")
    log = run.path / "lab1/bench/low/log"
    data = bytearray(log.read_bytes())
    data[0] ^= 0x01
    log.write_bytes(bytes(data))
    assert archive.verify_run(run.path) == ["lab1/bench/low/log: sha256 mismatch"]
    (run.path / "lab1/facts/json").unlink()
    (run.path / "lab1/extra.txt").write_text("x")
    problems = archive.verify_run(run.path)
    assert "lab1/facts/json: missing" in problems and "lab1/extra.txt: not in the manifest" in problems
    log.write_text("shorter")
    assert any("size 7" in p for p in archive.verify_run(run.path))
    (run.path / "manifest.json").unlink()
    assert archive.verify_run(run.path) == ["manifest.json: missing"]


def test_an_existing_run_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = make_run(tmp_path)
    before = (first.path / "manifest.json").read_bytes()
    monkeypatch.setattr(archive, "new_run_id", lambda now=None: first.run_id)
    with pytest.raises(archive.ArchiveError, match="refusing to overwrite"):
        with archive.new_run(META, root=tmp_path):
            pass
    # and if it appears while the run is being written, the final rename refuses too
    writer = archive.new_run(META, root=tmp_path)
    writer.final_path = tmp_path / "other"
    with pytest.raises(archive.ArchiveError, match="refusing to overwrite"):
        with writer as run:
            run.write("a.txt", "new")
            (tmp_path / "other").mkdir()
            (tmp_path / "other" / "manifest.json").write_text("{}")
    assert (first.path / "manifest.json").read_bytes() == before
    assert (tmp_path / "other" / "manifest.json").read_text() == "{}"


def test_rename_noreplace_refuses_existing_targets(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(OSError):
        archive.rename_noreplace(tmp_path / "a", tmp_path / "b")  # even an empty dir
    archive.rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c").is_dir() and not (tmp_path / "a").exists()


def test_an_exception_leaves_a_failed_run_that_never_looks_complete(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="host lab1 unreachable"):
        with archive.new_run(META, root=tmp_path, secrets=["hf_abcdefSECRET"]) as run:
            run.write("lab1/bench/low.log", "half a log\n")
            raise RuntimeError("host lab1 unreachable (token hf_abcdefSECRET)")
    (entry,) = tmp_path.iterdir()
    assert entry.name == f".{run.run_id}.failed"
    assert not (entry / "manifest.json").exists()
    failed = json.loads((entry / "failed.json").read_text())
    assert failed["status"] == "failed" and "unreachable" in failed["error"]
    assert "hf_abcdefSECRET" not in (entry / "failed.json").read_text()
    assert archive.list_runs(tmp_path) == [] and archive.latest_run(tmp_path) is None


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from llmfleet import archive
    root = Path(sys.argv[1])
    with archive.new_run({"kind": "bench", "hosts": ["lab1"]}, root=root) as run:
        run.write("lab1/bench/low.log", "x" * 100000)
        run.write("lab1/bench/medium.log", "y")
        print(run.run_id, flush=True)
        time.sleep(60)  # killed here, halfway through the run
        run.write("lab1/bench/high.log", "never")
    """
)


def test_a_run_killed_halfway_leaves_only_a_partial_folder(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    env = {**os.environ, "PYTHONPATH": str(Path(archive.__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_id = proc.stdout.readline().strip()
        assert archive.RUN_ID_RE.match(run_id), run_id
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    entries = sorted(p.name for p in root.iterdir())
    assert entries == [f".{run_id}.partial"]
    assert not (root / run_id).exists()
    assert not (root / f".{run_id}.partial" / "manifest.json").exists()
    assert archive.list_runs(root) == []
    with pytest.raises(InputError):
        archive.load_run(None, root)


def test_secrets_are_masked_in_text_files_and_the_manifest(tmp_path: Path) -> None:
    token = "hf_SuperSecretToken123"
    src = tmp_path / "docker.log"
    src.write_text(f"HF_TOKEN={token}\n")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01" + token.encode())
    with archive.new_run({**META, "flags": {"token": token}}, root=tmp_path / "a", secrets=[token]) as run:
        run.write("lab1/env.txt", f"token {token} and other-secret-xyz", secrets=["other-secret-xyz"])
        run.copy_in("lab1/server/docker.log", src)
        run.copy_in("lab1/blob.bin", binary)  # not text: left as is
        run.event("x", note=token)
    for p in run.path.rglob("*"):
        if p.is_file() and p.name != "blob.bin":
            assert token not in p.read_text(), p
    assert "other-secret-xyz" not in (run.path / "lab1/env.txt").read_text()
    assert (run.path / "lab1/blob.bin").read_bytes() == binary.read_bytes()
    assert archive.verify_run(run.path) == []


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "", "a//b", "manifest.json", "failed.json", "a\\b"])
def test_unsafe_paths_are_refused(tmp_path: Path, bad: str) -> None:
    with archive.new_run(META, root=tmp_path) as run:
        with pytest.raises(archive.ArchiveError):
            run.write(bad, "x")
    assert not (tmp_path.parent / "x").exists()


def test_writing_after_close_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(archive.ArchiveError, match="closed"):
        run.write("late.txt", "x")


def test_list_latest_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["20250101T000000Z-aaaaaa", "20250102T000000Z-bbbbbb", "20250103T000000Z-cccccc"])
    monkeypatch.setattr(archive, "new_run_id", lambda now=None: next(ids))
    for _ in range(3):
        make_run(tmp_path)
    (tmp_path / ".20250104T000000Z-dddddd.partial").mkdir()
    (tmp_path / "20250105T000000Z-eeeeee").mkdir()  # no manifest: not a run
    (tmp_path / "notes.txt").write_text("x")
    runs = archive.list_runs(tmp_path)
    assert [r.run_id for r in runs] == ["20250103T000000Z-cccccc", "20250102T000000Z-bbbbbb", "20250101T000000Z-aaaaaa"]
    assert runs[0].kind == "bench" and runs[0].hosts == ["lab1"] and runs[0].status == "complete"
    assert archive.latest_run(tmp_path).run_id == "20250103T000000Z-cccccc"
    assert archive.load_run("latest", tmp_path).run_id == "20250103T000000Z-cccccc"
    assert archive.load_run("20250102", tmp_path).run_id == "20250102T000000Z-bbbbbb"
    assert archive.load_run(str(tmp_path / "20250101T000000Z-aaaaaa")).run_id == "20250101T000000Z-aaaaaa"
    with pytest.raises(InputError, match="several"):
        archive.load_run("2025", tmp_path)
    with pytest.raises(InputError, match="no archived run"):
        archive.load_run("1999", tmp_path)
    monkeypatch.setenv("LLMFLEET_ARCHIVE", str(tmp_path))
    assert archive.latest_run().run_id == "20250103T000000Z-cccccc"


def test_host_meta_accepts_both_manifest_shapes() -> None:
    assert archive.host_meta({"hardware": "mi300x", "image_ids": {"a": "sha256:1"}, "hosts": ["a"]}, "a") == {
        "hardware": "mi300x", "image_id": "sha256:1"}
    assert archive.host_meta({"hardware": {"a": "mi325x"}, "hosts": {"a": {"image": "i"}}}, "a") == {
        "hardware": "mi325x", "image": "i"}
    assert archive.host_names({"hosts": {"b": {}, "a": {}}}) == ["a", "b"]
    assert archive.host_names({"hosts": ["z", "y"]}) == ["z", "y"]


def test_run_results_prefers_jsonl_and_keeps_text_only_lines(tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    block = (fixtures / "bench_logs" / "seed_cookbook057_scout_medium.txt").read_text()
    record = {"completed": 80, "output_throughput": 1152.4712345, "max_concurrency": 16}
    with archive.new_run(META, root=tmp_path) as run:
        run.write("lab1/bench/medium.log", "warm-up\n" + block)
        run.write("lab1/bench/medium.jsonl", json.dumps(record) + "\n")
        run.copy_in("lab1/accuracy/gsm8k.log", fixtures / "gsm8k_logs" / "seed_cookbook059_scout_gsm8k.txt")
        run.write("lab2/bench/low.log", "")  # a host whose bench printed nothing
    res = archive.run_results(archive.load_run(run.run_id, tmp_path))
    assert set(res) == {"lab1", "lab2"}
    med = res["lab1"].bench["medium"]
    assert med["output_throughput"] == 1152.4712345  # JSONL precision wins
    assert med["max_itl_ms"] == 74.05  # only in the text block
    assert res["lab1"].gsm8k["accuracy"] == 0.945
    assert res["lab2"].bench == {}
