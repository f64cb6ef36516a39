"""GPU telemetry: parsers over real output shapes (tests/fixtures/telemetry/SOURCES.md),
the energy derivation and its validity rule, and the real sampler script run locally
against a stand-in amd-smi (it must sample, stop when told, and stop by itself)."""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from llmfleet import telemetry as tm

FIX = Path(__file__).parent.parent / "fixtures" / "telemetry"


def load(name: str) -> object:
    return json.loads((FIX / name).read_text())


def test_amd_smi_gpu_data_shape_of_mi300x_reads_hotspot_not_the_missing_edge() -> None:
    gpus = tm.parse_amd_smi_metric(load("amd_smi_metric_gpu_data_mi300x.json"))
    assert [g["gpu"] for g in gpus] == [0, 1, 2, 3]
    assert gpus[0] == {"gpu": 0, "power_w": 717.0, "gfx_pct": 100.0, "vram_used_mb": 180611.0, "hotspot_c": 79.0,
                       "mem_c": 63.0, "throttled": False}  # fmt: skip
    assert gpus[2]["throttled"] is True and gpus[2]["hotspot_c"] == 97.0
    assert gpus[3]["vram_used_mb"] == 283.0


def test_amd_smi_bare_list_shape() -> None:
    (gpu,) = tm.parse_amd_smi_metric(load("amd_smi_metric_list.json"))
    assert gpu["power_w"] == 20.0 and gpu["gfx_pct"] == 42.0 and gpu["hotspot_c"] == 43.0
    assert gpu["vram_used_mb"] == 794.0 and gpu["throttled"] is False


def test_amd_smi_watch_records_with_na_sections_give_none_not_errors() -> None:
    (gpu,) = tm.parse_amd_smi_metric(load("amd_smi_metric_watch_na.json"))
    assert gpu["power_w"] is None and gpu["gfx_pct"] is None and gpu["throttled"] is None
    assert gpu["hotspot_c"] == 35.0  # no hotspot: the edge sensor is the best there is
    assert gpu["vram_used_mb"] == 87.0


def test_rocm_smi_mi300x_socket_power_and_junction_temperature() -> None:
    gpus = tm.parse_rocm_smi(load("rocm_smi_mi300x.json"))
    assert [g["power_w"] for g in gpus] == [191.0, 652.0]
    assert [g["hotspot_c"] for g in gpus] == [39.0, 71.0]
    assert gpus[1]["gfx_pct"] == 100.0 and gpus[1]["mem_c"] == 58.0
    assert gpus[1]["vram_used_mb"] == pytest.approx(189421002752 / 1048576)
    assert gpus[0]["throttled"] is None  # rocm-smi says nothing about throttling here


def test_rocm_smi_average_power_key_and_secondary_die() -> None:
    (card,) = tm.parse_rocm_smi(load("rocm_smi_average_power.json"))
    assert card["power_w"] == 19.0 and card["hotspot_c"] == 49.0
    primary, secondary = tm.parse_rocm_smi(load("rocm_smi_secondary_die.json"))
    assert primary["power_w"] == 237.0 and secondary["power_w"] is None
    assert tm.host_power({"gpus": [primary, secondary]}) == 237.0


@pytest.mark.parametrize("value,expected", [
    ({"value": 41, "unit": "C"}, 41.0), ("41.5", 41.5), ("N/A", None), ("N/A (Secondary die)", None),
    (None, None), (True, None), (float("nan"), None), ([1], None), (7, 7.0),
])  # fmt: skip
def test_number(value: object, expected: float | None) -> None:
    assert tm.number(value) == expected


def test_megabytes_follows_the_unit() -> None:
    assert tm.megabytes({"value": 2, "unit": "GB"}) == 2048.0
    assert tm.megabytes({"value": 1048576, "unit": "B"}) == 1.0
    assert tm.megabytes("N/A") is None


def test_raw_lines_parse_and_broken_lines_are_dropped() -> None:
    gd = json.dumps(load("amd_smi_metric_gpu_data_mi300x.json"))
    rs = json.dumps(load("rocm_smi_mi300x.json"))
    raw = f"100.5 amd-smi {gd}\n101.5 amd-smi \n102.5 amd-smi {{broken\n103.5 rocm-smi {rs}\ngarbage\n"
    samples = tm.parse_raw(raw)
    assert [(s["t"], s["source"], len(s["gpus"])) for s in samples] == [(100.5, "amd-smi", 4), (103.5, "rocm-smi", 2)]


def sample(t: float, watts: float, gpus: int = 2, throttled: bool = False, hot: float = 50.0) -> dict:
    return {"kind": "sample", "t": t, "source": "amd-smi", "gpus": [
        {"gpu": i, "power_w": watts / gpus, "gfx_pct": 90.0, "vram_used_mb": 100.0, "hotspot_c": hot, "mem_c": 40.0,
         "throttled": throttled} for i in range(gpus)]}  # fmt: skip


def test_energy_of_a_constant_load_is_power_times_time() -> None:
    samples = [sample(float(t), 800.0) for t in range(21)]
    e = tm.derive(samples, 2.5, 12.5, output_tokens=4000)
    assert e.valid and e.why_invalid == ""
    assert e.energy_j == pytest.approx(8000.0)
    assert e.avg_power_w == pytest.approx(800.0)
    assert e.j_per_output_token == pytest.approx(2.0)
    assert e.samples == 10 and e.max_gap_s == 1.0
    assert e.throttled_pct == 0.0 and e.max_vram_used_mb == 200.0


def test_energy_of_a_ramp_is_the_trapezoid_with_interpolated_edges() -> None:
    samples = [sample(float(t), 100.0 * t) for t in range(11)]  # P(t) = 100 t
    e = tm.derive(samples, 2.5, 7.5, output_tokens=None)
    assert e.energy_j == pytest.approx(50 * (7.5**2 - 2.5**2))
    assert e.j_per_output_token is None


@pytest.mark.parametrize("times,why", [
    ([0, 1, 2, 6, 7, 8, 9, 10], "gap"),      # 4 s without a sample inside the window
    ([3, 4, 5, 6, 7, 8, 9, 10], "start"),    # sampling began after the client
    ([0, 1, 2, 3, 4, 5, 6], "end"),          # sampling stopped before the client ended
    ([], "no samples"),
])  # fmt: skip
def test_gaps_and_uncovered_windows_are_invalid(times: list[int], why: str) -> None:
    e = tm.derive([sample(float(t), 500.0) for t in times], 1.0, 9.0, output_tokens=100)
    assert not e.valid and why in e.why_invalid
    assert e.energy_j is None and e.j_per_output_token is None


def test_samples_without_power_count_as_gaps() -> None:
    samples = [sample(float(t), 500.0) for t in range(11)]
    for s in samples[3:8]:
        for g in s["gpus"]:
            g["power_w"] = None
    assert not tm.derive(samples, 1.0, 9.0, 10).valid


def test_throttle_and_temperature_summaries() -> None:
    samples = [sample(float(t), 500.0, throttled=t % 2 == 0, hot=60.0 + t) for t in range(11)]
    e = tm.derive(samples, 0.0, 10.0, 10)
    assert e.throttled_pct == pytest.approx(100 * 6 / 11)
    assert e.peak_hotspot_c == 70.0


def test_bench_window_is_the_reported_duration_ending_with_the_client() -> None:
    assert tm.bench_window(100.0, 160.0, 50.0) == (110.0, 160.0)
    assert tm.bench_window(100.0, 160.0, 90.0) == (100.0, 160.0)
    assert tm.bench_window(100.0, 160.0, None) == (100.0, 160.0)


def test_archived_file_round_trip() -> None:
    samples = [sample(float(t), 600.0) for t in range(11)]
    head = tm.window_record("medium", (0.5, 9.5), (2.0, 9.0), 700, "amd-smi", 0.12)
    text = tm.dumps([head, *samples]) + "not json\n[1]\n"
    window, back = tm.loads(text)
    assert window == json.loads(json.dumps(head)) and len(back) == 11
    e = tm.summarize(text)
    assert e is not None and e.valid and e.energy_j == pytest.approx(600 * 7)
    assert e.j_per_output_token == pytest.approx(6.0)
    assert tm.summarize(tm.dumps(samples)) is None


# --- the real sampler script, run here against a stand-in amd-smi -------------------------

FAKE_AMD_SMI = """#!/bin/sh
echo x >> "$(dirname "$0")/calls"
cat "$(dirname "$0")/metric.json"
"""


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "amd-smi"
    tool.write_text(FAKE_AMD_SMI)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "metric.json").write_text((FIX / "amd_smi_metric_gpu_data_mi300x.json").read_text())
    return bin_dir


def sh(argv: list[str], bin_dir: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat_line = Path(f"/proc/{pid}/stat").read_text()
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def test_sampler_samples_once_a_second_and_stops_after_a_sample_past_the_end(tools: Path, tmp_path: Path) -> None:
    p = tm.SamplerPaths.under(str(tmp_path / "tel"), "medium")
    started = sh(tm.start_argv(p, lifetime_s=60, interval_s=0.5), tools)
    assert started.returncode == 0, started.stderr
    assert started.stdout.split()[0] == "amd-smi"
    assert Path(p.raw).stat().st_size > 0  # it returns after the first sample: the client starts inside the samples
    pid = int(Path(p.pid).read_text())
    deadline = time.time() + 5
    while os.getpgid(pid) != pid and time.time() < deadline:  # setsid runs just after the start returns
        time.sleep(0.05)
    assert alive(pid) and os.getpgid(pid) == pid  # its own process group: killed as one
    time.sleep(2.2)
    end = time.time()
    stopped = sh(tm.stop_argv(p, end), tools)
    cpu, _ = tm.parse_stop(stopped.stdout)
    assert stopped.stdout.startswith("stopped") and cpu is not None and cpu >= 0
    assert not alive(pid) and not Path(p.pid).exists()
    samples = tm.parse_raw(Path(p.raw).read_text())
    assert len(samples) >= 4 and all(len(s["gpus"]) == 4 for s in samples)
    assert samples[-1]["t"] >= int(end)  # the last sample is past the client's end
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(samples)]
    assert max(gaps) < 1.5


def test_stop_wakes_the_sampler_for_its_last_sample_instead_of_waiting_out_its_interval(tools: Path, tmp_path: Path) -> None:
    """Every bench client's end waits for this: with a 5 s interval the stop still returns at once."""
    p = tm.SamplerPaths.under(str(tmp_path / "tel"), "low")
    assert sh(tm.start_argv(p, lifetime_s=60, interval_s=5), tools).returncode == 0
    time.sleep(0.5)
    end = time.time()
    began = time.monotonic()
    stopped = sh(tm.stop_argv(p, end), tools)
    assert stopped.stdout.startswith("stopped"), stopped
    assert time.monotonic() - began < 2.5  # not the 5 s nap
    samples = tm.parse_raw(Path(p.raw).read_text())
    assert len(samples) == 2 and samples[-1]["t"] >= end  # the first, and one taken past the end (to the ms)


def test_sampler_stops_by_itself_at_its_deadline(tools: Path, tmp_path: Path) -> None:
    p = tm.SamplerPaths.under(str(tmp_path / "tel"), "low")
    assert sh(tm.start_argv(p, lifetime_s=1, interval_s=0.2), tools).returncode == 0
    pid = int(Path(p.pid).read_text())
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def test_stop_all_kills_every_sampler_of_the_run(tools: Path, tmp_path: Path) -> None:
    folder = str(tmp_path / "tel")
    pids = []
    for name in ("low", "gsm8k"):
        p = tm.SamplerPaths.under(folder, name)
        sh(tm.start_argv(p, lifetime_s=120, interval_s=0.5), tools)
        pids.append(int(Path(p.pid).read_text()))
    out = sh(tm.stop_all_argv(folder), tools)
    assert out.stdout.strip() == "2"
    time.sleep(0.3)
    assert not any(alive(pid) for pid in pids)
    assert sh(tm.stop_all_argv(folder), tools).stdout.strip() == "0"


def test_stop_without_a_sampler_says_so(tools: Path, tmp_path: Path) -> None:
    p = tm.SamplerPaths.under(str(tmp_path / "none"), "x")
    out = sh(tm.stop_argv(p, time.time()), tools)
    assert out.stdout.strip() == "no-sampler" and tm.parse_stop(out.stdout) == (None, None)
