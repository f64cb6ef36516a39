"""The failure signatures on real log excerpts (tests/fixtures/failure_logs, sources in SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfleet import diagnose

FIX = Path(__file__).parent.parent / "fixtures" / "failure_logs"
EXPECTED: dict[str, list[str]] = json.loads((FIX / "expected.json").read_text())
# Signatures whose only fixtures are lines of other real excerpts joined (see SOURCES.md).
COMPOSED = {"scheduler-watchdog", "watchdog-during-jit-build"}


def _ids(text: str) -> list[str]:
    return [d.signature for d in diagnose.diagnose(text)]


def _lines(name: str) -> list[str]:
    return (FIX / name).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_real_excerpt_is_diagnosed_most_specific_first(name: str) -> None:
    found = diagnose.diagnose((FIX / name).read_text(encoding="utf-8"))
    assert [d.signature for d in found] == EXPECTED[name]
    top = found[0]
    assert top.evidence and top.evidence in (FIX / name).read_text(encoding="utf-8")
    assert "{" not in top.fix and "{" not in top.cause  # every placeholder was filled


def test_every_signature_has_a_real_excerpt_and_every_excerpt_a_source() -> None:
    covered = {sig for ids in EXPECTED.values() for sig in ids} | COMPOSED
    assert {s.id for s in diagnose.signatures()} <= covered
    sources = (FIX / "SOURCES.md").read_text()
    for log in FIX.glob("*.log"):
        assert log.name in EXPECTED, f"{log.name} has no expectation"
        assert f"| {log.name} |" in sources, f"{log.name} has no source"


def test_near_misses_case_units_and_spellings() -> None:
    assert _ids("OSError: [Errno 98] Address already in use") == ["port-in-use"]
    comfy = _lines("comfyui_9529_hip_oom_mib.log")[0]  # HIP, MiB, no torch. prefix
    assert _ids(comfy) == ["oom"]
    assert _ids(comfy.lower()) == ["oom"]
    old = _lines("aiter_257_failed_build_jit_old_spelling.log")[1]  # aiter's older word order
    assert _ids(old) == ["aiter-jit-build-failed"]


def test_fix_names_what_the_log_says() -> None:
    port = diagnose.diagnose((FIX / "chatchat_3577_uvicorn_bind.log").read_text())[0]
    assert "grep :20001" in port.fix
    rocblas = diagnose.diagnose((FIX / "llamacpp_14421_rocblas_no_such_file.log").read_text())[0]
    assert "gfx1036" in rocblas.fix
    jit = diagnose.diagnose((FIX / "rocm_5788_aiter_build_failed.log").read_text())[0]
    assert "module_aiter_enum" in jit.fix and "watchdog" not in jit.fix


def test_cold_jit_build_that_fails_is_never_told_to_raise_the_watchdog() -> None:
    """A build that cannot succeed plus the watchdog: the build failure, and no timeout advice."""
    watchdog = _lines("sglang_pr36408_watchdog_jit_rebuild.log")[0]
    text = "\n".join(_lines("flash_attention_2580_aiter_failed_jit_build.log") + [watchdog])
    found = diagnose.diagnose(text)
    assert found[0].signature == "aiter-jit-build-failed"
    assert not any("--watchdog-timeout 1" in d.fix or "watchdog-timeout, " in d.fix for d in found)
    assert {d.signature for d in found}.isdisjoint({"watchdog-during-jit-build", "scheduler-watchdog"})


def test_cold_jit_build_still_running_is_told_to_raise_the_watchdog() -> None:
    start = _lines("flash_attention_2580_aiter_failed_jit_build.log")[0]
    watchdog = _lines("sglang_pr36408_watchdog_jit_rebuild.log")[0]
    found = diagnose.diagnose(f"{start}\n{watchdog}\n")
    assert [d.signature for d in found] == ["watchdog-during-jit-build"]
    assert "--watchdog-timeout" in found[0].fix and "300" in found[0].cause


def test_watchdog_alone_is_a_hang_and_a_rebuild_loop_is_not_a_timeout_problem() -> None:
    lines = _lines("sglang_pr36408_watchdog_jit_rebuild.log")
    assert _ids(lines[0]) == ["scheduler-watchdog"]
    assert _ids("\n".join(lines)) == ["watchdog-during-jit-rebuild"]
    assert _ids("Watchdog timeout (self.watchdog_timeout=300)") == ["scheduler-watchdog"]  # 0.4 spelling


def test_ordering_when_two_signatures_match() -> None:
    assert _ids((FIX / "sglang_5755_scout_oom_80gib.log").read_text()) == ["oom-huge-startup-allocation", "oom"]
    assert _ids((FIX / "sgl_docs_17_tool_parser_llama4.log").read_text()) == ["tool-parser-too-old", "bad-server-flag"]
    # a 403 also says "Cannot access gated repo": only the authorization cause is reported
    gated_401 = _lines("mlx_examples_759_gated_401.log")[1]
    forbidden = _lines("hf_download_accelerator_39_gated_403.log")[0]
    assert _ids(f"{forbidden}\n{gated_401}") == ["hf-not-authorized"]
    # RCCL's shm allocation failure says "No space left on device" too: not a full disk
    shm = _lines("nccl_tests_166_shm_segment.log")[0]
    assert _ids(f"{shm}\n{(FIX / 'diffusers_4957_errno28.log').read_text()}") == ["shm-too-small"]
