"""Hostile run folders: the archive never vouches for, nor reads, anything outside its run.

Fixed probes (issue 7, class 4) and property-based tests (hypothesis) over the
manifest verifier: arbitrary manifests, hostile paths, symlinks and wrong types
give a verification failure or an InputError, never a traceback, and never
"verified" for a file outside the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from llmfleet import archive, report
from llmfleet.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
BLOCK = (ROOT / "tests/fixtures/bench_logs/seed_cookbook057_scout_low.txt").read_text()
RUN_ID = "20260101T000000Z-abcdef"
OTHER_ID = "20250101T000000Z-012345"
META = {"kind": "bench", "model": "scout", "hosts": {"lab1": {"hardware": "mi300x"}}}


def entry(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_manifest(run_dir: Path, **fields: Any) -> Path:
    """A manifest like the writer's, with ``fields`` replacing its keys."""
    manifest = {"format": 1, "run_id": run_dir.name, "complete": True, "status": "ok", **META, "files": [], **fields}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def good_run(root: Path, run_id: str = OTHER_ID) -> Path:
    """A run written by the archive writer itself (the control: it must stay verified)."""
    writer = archive.RunWriter(META, root)
    writer.run_id, writer.final_path, writer.path = run_id, root / run_id, root / f".{run_id}.partial"
    with writer as run:
        run.write("lab1/bench/low.log", BLOCK)
    return root / run_id


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file beside the archive with real numbers in it: what a hostile manifest points at."""
    path = tmp_path / "outside.txt"
    path.write_text(BLOCK)
    return path


# --- class 4 probes: each failed on the old code ---------------------------------------


def test_a_manifest_listing_dotdot_is_not_verified(tmp_path: Path, outside: Path) -> None:
    run_dir = write_manifest(tmp_path / "archive" / RUN_ID, files=[entry("../../outside.txt", outside.read_bytes())])
    problems = archive.verify_run(run_dir)
    assert problems == ["'../../outside.txt': listed in the manifest with '..' in the path: outside the run; not read"]
    (row,) = report.runs_table(tmp_path / "archive")
    assert row["verified"] is False and row["problems"] == problems


def test_a_manifest_listing_an_absolute_path_is_not_verified(tmp_path: Path, outside: Path) -> None:
    run_dir = write_manifest(tmp_path / "archive" / RUN_ID, files=[entry(str(outside), outside.read_bytes())])
    (problem,) = archive.verify_run(run_dir)
    assert "an absolute path" in problem and str(outside) in problem


def test_a_host_folder_symlinked_out_of_the_run_is_neither_followed_nor_read(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "bench").mkdir(parents=True)
    (elsewhere / "bench" / "low.log").write_text(BLOCK)
    run_dir = tmp_path / "archive" / RUN_ID
    run_dir.mkdir(parents=True)
    (run_dir / "lab1").symlink_to(elsewhere, target_is_directory=True)
    write_manifest(run_dir, files=[entry("lab1/bench/low.log", BLOCK.encode())])
    problems = archive.verify_run(run_dir)
    assert "lab1/bench/low.log: lab1 is a symlink (not followed)" in problems
    assert "lab1: a symlink (not followed)" in problems
    results = archive.run_results(archive.load_run(RUN_ID, tmp_path / "archive"))
    assert results["lab1"].bench == {}  # the numbers behind the symlink are never read


def test_a_listed_file_that_is_a_symlink_is_refused_even_inside_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / RUN_ID
    (run_dir / "lab1" / "bench").mkdir(parents=True)
    (run_dir / "real.log").write_text(BLOCK)
    (run_dir / "lab1" / "bench" / "low.log").symlink_to(run_dir / "real.log")
    write_manifest(run_dir, files=[entry("real.log", BLOCK.encode()), entry("lab1/bench/low.log", BLOCK.encode())])
    assert archive.verify_run(run_dir) == ["lab1/bench/low.log: a symlink (not followed)",
                                           "lab1/bench/low.log: a symlink (not followed)"]
    assert archive.run_results(archive.load_run(str(run_dir)))["lab1"].bench == {}


def test_a_host_key_climbing_out_of_the_run_reads_nothing_outside(tmp_path: Path) -> None:
    outside_host = tmp_path / "x"  # archive/<run>/../../x
    (outside_host / "bench").mkdir(parents=True)
    (outside_host / "bench" / "low.log").write_text(BLOCK)
    (outside_host / "accuracy").mkdir()
    (outside_host / "accuracy" / "gsm8k.log").write_text("Accuracy: 0.999\n")
    run_dir = write_manifest(tmp_path / "archive" / RUN_ID, hosts={"../../x": {"hardware": "mi300x"}})
    assert archive.verify_run(run_dir) == ["manifest.json: host name '../../x' is not a safe folder name"]
    run = archive.load_run(RUN_ID, tmp_path / "archive")
    assert run.hosts == [] and archive.run_results(run) == {}


def test_files_entries_that_are_not_objects_do_not_stop_the_listing(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    good = good_run(root)
    write_manifest(root / RUN_ID, files=["lab1/bench/low.log", 7, None])
    rows = {r["run_id"]: r for r in report.runs_table(root)}
    assert rows[good.name]["verified"] is True and rows[good.name]["problems"] == []
    assert rows[RUN_ID]["verified"] is False
    assert rows[RUN_ID]["problems"] == ["manifest.json: manifest files[0]: Expected `object`, got `str`"]
    with pytest.raises(InputError, match=r"files\[0\]: Expected `object`"):
        archive.load_run(RUN_ID, root)


def test_hosts_as_a_string_is_no_list_of_letters(tmp_path: Path) -> None:
    run_dir = write_manifest(tmp_path / RUN_ID, hosts="lab1")
    (info,) = archive.list_runs(tmp_path)
    assert info.hosts == [] and info.typed is None
    assert archive.verify_run(run_dir) == ["manifest.json: manifest hosts: Expected `object | array`, got `str`"]
    assert report.runs_table(tmp_path)[0]["hosts"] == []


def test_unlisted_files_fifos_and_symlinks_in_the_folder_are_reported(tmp_path: Path, outside: Path) -> None:
    run_dir = good_run(tmp_path)
    (run_dir / "lab1" / "extra.txt").write_text("not listed")
    os.mkfifo(run_dir / "lab1" / "pipe")
    (run_dir / "lab1" / "link").symlink_to(outside)
    assert archive.verify_run(run_dir) == [
        "lab1/extra.txt: not in the manifest", "lab1/link: a symlink (not followed)", "lab1/pipe: not a regular file",
    ]


def test_a_manifest_that_is_a_symlink_or_fifo_or_junk_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    run_dir = good_run(tmp_path)
    real = tmp_path / "real-manifest.json"
    shutil.move(run_dir / "manifest.json", real)
    (run_dir / "manifest.json").symlink_to(real)
    assert archive.verify_run(run_dir) == ["manifest.json: a symlink (not followed)"]
    (run_dir / "manifest.json").unlink()
    os.mkfifo(run_dir / "manifest.json")  # would hang a plain open()
    assert archive.verify_run(run_dir) == ["manifest.json: not a regular file"]
    (run_dir / "manifest.json").unlink()
    (run_dir / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    assert archive.verify_run(run_dir) == ["manifest.json: refused: nested too deeply (more than 100 levels)"]
    (run_dir / "manifest.json").write_bytes(b"\xff\xfe{}")
    assert archive.verify_run(run_dir) == ["manifest.json: not UTF-8 text"]
    assert report.runs_table(tmp_path)[0]["verified"] is False


def test_a_changed_result_file_is_reported_and_its_numbers_are_not_read(tmp_path: Path) -> None:
    run_dir = good_run(tmp_path)
    assert archive.run_results(archive.load_run(str(run_dir)))["lab1"].bench["low"]["completed"] == 10
    (run_dir / "lab1/bench/low.log").write_text(BLOCK.replace("Successful requests:                     10",
                                                              "Successful requests:                     99"))
    assert archive.verify_run(run_dir) == ["lab1/bench/low.log: sha256 mismatch"]
    assert archive.run_results(archive.load_run(str(run_dir)))["lab1"].bench == {}


def test_the_writer_redacts_registered_secrets_without_being_told(tmp_path: Path) -> None:
    from llmfleet import secrets

    token = "hf_RegisteredOnceEverywhere42"
    secrets.register(token)
    try:
        src = tmp_path / "docker.log"
        src.write_bytes(b"token=" + token.encode() + b"\n")
        with archive.new_run({**META, "note": token}, root=tmp_path / "a") as run:
            run.write("lab1/bench/low.log", f"HF_TOKEN={token}\n")
            run.copy_in("lab1/server/docker.log", src)
            run.event("x", detail=token)
        for p in run.path.rglob("*"):
            if p.is_file():
                assert token.encode() not in p.read_bytes(), p
        assert archive.verify_run(run.path) == []
    finally:
        secrets.forget_all()


# --- property-based: arbitrary manifests and folders --------------------------------------

HOSTILE_PARTS = ["..", ".", "", "lab1", "bench", "low.log", "outside.txt", "manifest.json", "a\\b", "x\0y", "link",
                 "/", "//", "%2e%2e", "\u202e", "[/x]", "\x1b[31m"]
hostile_paths = st.one_of(
    st.lists(st.sampled_from(HOSTILE_PARTS), min_size=1, max_size=5).map("/".join),
    st.text(max_size=30),
    st.sampled_from(["/etc/passwd", "../outside.txt", "../../outside.txt", "lab1/../../outside.txt", "link/outside.txt",
                     "lab1/bench/low.log", "./lab1/bench/low.log", "lab1//bench/low.log"]),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
file_entries = st.one_of(
    st.builds(lambda p, good: {"path": p, "size": len(BLOCK) if good else 3, "sha256": hashlib.sha256(
        BLOCK.encode()).hexdigest() if good else "0" * 64}, hostile_paths, st.booleans()),
    st.dictionaries(st.sampled_from(["path", "size", "sha256", "extra"]), json_values, max_size=4),
    json_values,
)
random_manifests = st.fixed_dictionaries(
    {},
    optional={
        "format": st.one_of(st.just(1), json_values), "run_id": st.one_of(st.just(RUN_ID), json_values),
        "complete": st.one_of(st.just(True), json_values), "status": json_values, "kind": json_values,
        "model": json_values, "sglang_version": json_values, "simulated": json_values,
        "hosts": st.one_of(st.dictionaries(hostile_paths, json_values, max_size=3), st.lists(hostile_paths, max_size=3),
                           json_values),
        "hardware": json_values, "image_ids": json_values, "flags": json_values,
        "files": st.one_of(st.lists(file_entries, max_size=5), json_values),
    },
)
well_formed_entries = st.builds(
    lambda p, good: {"path": p, "size": len(BLOCK) if good else 3,
                     "sha256": hashlib.sha256(BLOCK.encode()).hexdigest() if good else "0" * 64},
    st.one_of(st.just("lab1/bench/low.log"), hostile_paths), st.booleans())
shaped_manifests = st.fixed_dictionaries({  # passes the schema: only paths, host names and the folder are hostile
    "format": st.just(1), "run_id": st.just(RUN_ID), "complete": st.booleans(), "kind": st.just("bench"),
    "model": st.text(max_size=12), "status": st.text(max_size=8),
    "hosts": st.one_of(st.dictionaries(st.one_of(st.just("lab1"), hostile_paths), st.just({}), max_size=3),
                       st.lists(st.one_of(st.just("lab1"), hostile_paths), max_size=3)),
    "files": st.one_of(st.just([entry("lab1/bench/low.log", BLOCK.encode())]),
                       st.lists(well_formed_entries, max_size=4)),
})
manifests = st.one_of(random_manifests, shaped_manifests)
LAYOUTS = ["plain", "host-symlink", "file-symlink", "fifo", "extra"]


def build_run(base: Path, manifest: Any, layout: str) -> tuple[Path, Path]:
    """A fresh archive under ``base`` holding one hostile run; returns (archive root, outside file)."""
    if base.exists():
        shutil.rmtree(base)
    root = base / "archive"
    run_dir = root / RUN_ID
    (run_dir / "lab1" / "bench").mkdir(parents=True)
    outside = base / "outside.txt"
    outside.write_text(BLOCK)
    (base / "elsewhere" / "bench").mkdir(parents=True)
    (base / "elsewhere" / "bench" / "low.log").write_text(BLOCK)
    if layout == "host-symlink":
        shutil.rmtree(run_dir / "lab1")
        (run_dir / "lab1").symlink_to(base / "elsewhere", target_is_directory=True)
    elif layout == "file-symlink":
        (run_dir / "lab1" / "bench" / "low.log").symlink_to(outside)
    else:
        (run_dir / "lab1" / "bench" / "low.log").write_text(BLOCK)
    if layout == "fifo":
        os.mkfifo(run_dir / "lab1" / "pipe")
    if layout == "extra":
        (run_dir / "link").symlink_to(base, target_is_directory=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return root, outside


def inside_and_regular(run_dir: Path, rel: str) -> bool:
    """The truth, computed independently: a regular file under run_dir reached through no symlink."""
    if rel.startswith("/") or not rel:
        return False
    path = run_dir
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            return False
        path = path / part
        if path.is_symlink():
            return False
    return path.is_file() and path.resolve().is_relative_to(run_dir.resolve())


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])


@PROPERTY
@given(manifest=manifests, layout=st.sampled_from(LAYOUTS))
def test_any_manifest_is_verified_only_for_what_the_run_holds(tmp_path: Path, manifest: dict, layout: str) -> None:
    root, _ = build_run(tmp_path / "case", manifest, layout)
    run_dir = root / RUN_ID
    problems = archive.verify_run(run_dir)
    event("verified" if not problems else "schema-checked, not verified" if not problems[0].startswith(
        "manifest.json: manifest") else "schema refused")
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    if not problems:  # vouched for: every listed file is a regular file inside the run, no symlink on its way
        assert layout in ("plain",) and isinstance(manifest.get("files"), list)
        for f in manifest["files"]:
            assert inside_and_regular(run_dir, f["path"]), f
        assert all(archive.safe_name(h) for h in archive.host_names(manifest))
    (row,) = report.runs_table(root)  # never raises, always one row for the run
    assert row["verified"] is (not problems)


@PROPERTY
@given(manifest=manifests, layout=st.sampled_from(LAYOUTS))
def test_any_manifest_gives_results_or_an_input_error_never_outside_numbers(tmp_path: Path, manifest: dict,
                                                                            layout: str) -> None:
    root, _ = build_run(tmp_path / "case", manifest, layout)
    try:
        run = archive.load_run(RUN_ID, root)
    except InputError as exc:
        event("InputError")
        assert "manifest.json" in str(exc)
        return
    results = archive.run_results(run)
    event("results with numbers" if any(r.bench for r in results.values()) else "results without numbers")
    for host, res in results.items():
        assert archive.safe_name(host)
        if res.bench:  # only a verified regular file inside the run gives numbers
            assert layout not in ("host-symlink", "file-symlink") and host == "lab1"
            assert inside_and_regular(root / RUN_ID, "lab1/bench/low.log")
