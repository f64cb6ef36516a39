"""`invoke diagnose --log` on real excerpts, through the real command line."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli

FIX = Path(__file__).parent.parent / "fixtures" / "failure_logs"


def test_log_json_names_cause_fix_and_evidence() -> None:
    r = cli("diagnose", "--log", str(FIX / "sglang_5755_scout_oom_80gib.log"), "--json")
    assert r.code == 0, r.stderr[-2000:]
    first = r.json["findings"][0]
    assert first["signature"] == "oom-huge-startup-allocation" and "--context-length" in first["fix"]
    assert "80.04 GiB" in first["evidence"]


def test_log_text_prints_markup_like_log_lines_verbatim(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("[bold]x[/] OSError: [Errno 98] Address already in use\n")
    r = cli("diagnose", "--log", str(log))
    assert r.code == 0 and "[bold]x[/] OSError: [Errno 98]" in r.stderr


def test_bad_input_is_exit_2() -> None:
    assert cli("diagnose", "--log", "/no/such/file").code == 2
    assert cli("diagnose").code == 2
