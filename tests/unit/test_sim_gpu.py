"""The simulated GPU: telemetry that follows the simulated server, its faults, SGLang's OOM failure.

Pure parts only (no lab): files/labgpu.py (what the fake amd-smi/rocm-smi compute), the
server's side (llmfleet.lab.sim.gpu), the fault file and the runc wrapper's live mount.
"""

from __future__ import annotations

import importlib.util
import json
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from llmfleet.lab import netns, smi
from llmfleet.lab.sim import gpu

FILES = Path(smi.__file__).resolve().parent / "files"


def _load(name: str):
    loader = SourceFileLoader(name.replace("-", "_").replace(".py", ""), str(FILES / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


labgpu = _load("labgpu.py")
TOTAL_MB = 196592


def _server(running: int = 0, memory_mb: int = 150000, **extra) -> dict:
    return {"gpus": list(range(8)), "memory_mb": memory_mb, "running": running, "waiting": 0, "ready": True,
            "heartbeat": time.time(), **extra}


def test_idle_host_reports_idle_gpus():
    m = labgpu.gpu_metrics(8, TOTAL_MB, {}, [])
    assert len(m) == 8
    assert m[0]["used_vram_mb"] == labgpu.IDLE_VRAM_MB and m[0]["gfx_activity"] == 0
    assert m[0]["socket_power_w"] == round(labgpu.IDLE_POWER_W) and not m[0]["throttled"]


def test_memory_is_held_while_a_server_runs_and_freed_when_it_stops():
    running = labgpu.gpu_metrics(8, TOTAL_MB, {}, [_server()])[3]
    assert running["used_vram_mb"] == 150000 + labgpu.IDLE_VRAM_MB
    stopped = labgpu.gpu_metrics(8, TOTAL_MB, {}, [_server(stopped_at=time.time())])[3]
    dead = labgpu.gpu_metrics(8, TOTAL_MB, {}, [_server(heartbeat=time.time() - 10)])[3]  # killed: no heartbeat
    assert stopped["used_vram_mb"] == dead["used_vram_mb"] == labgpu.IDLE_VRAM_MB
    held = labgpu.gpu_metrics(8, TOTAL_MB, {"hold_gpu_memory": True}, [_server(stopped_at=time.time())])[3]
    assert held["used_vram_mb"] == running["used_vram_mb"] and held["gfx_activity"] == 0


def test_power_and_use_rise_with_running_requests():
    readings = [labgpu.gpu_metrics(8, TOTAL_MB, {}, [_server(running=n)])[0] for n in (0, 1, 16, 100)]
    powers = [r["socket_power_w"] for r in readings]
    uses = [r["gfx_activity"] for r in readings]
    assert powers == sorted(powers) and powers[0] < powers[1] < powers[2] <= labgpu.MAX_POWER_W
    assert uses[0] == 0 and 0 < uses[1] < uses[2] <= uses[3] == 100
    assert readings[3]["hotspot_c"] > readings[0]["hotspot_c"]


def test_a_slow_gpu_is_capped_throttled_and_hot_under_load():
    fast = labgpu.gpu_metrics(8, TOTAL_MB, {}, [_server(running=100)])[0]
    slow = labgpu.gpu_metrics(8, TOTAL_MB, {"slow_gpu_pct": 20}, [_server(running=100)])[0]
    assert slow["throttled"] and not fast["throttled"]
    assert slow["socket_power_w"] <= slow["power_cap_w"] == round(labgpu.MAX_POWER_W * 0.8)
    assert slow["socket_power_w"] < fast["socket_power_w"]
    assert slow["hotspot_c"] >= 95 > fast["hotspot_c"]


def test_gpu_fault_file_changes_and_validation():
    assert smi.gpu_faults({}, slow_gpu_pct=20) == {"slow_gpu_pct": 20.0}
    assert smi.gpu_faults({"slow_gpu_pct": 20.0}, hold_memory=True) == {"slow_gpu_pct": 20.0, "hold_gpu_memory": True}
    assert smi.gpu_faults({"slow_gpu_pct": 20.0}, restore=True) == {}
    with pytest.raises(ValueError):
        smi.gpu_faults({}, slow_gpu_pct=0)
    assert gpu.slowdown({"slow_gpu_pct": 20.0}) == pytest.approx(1.2)
    assert gpu.slowdown({}) == 1.0


def test_server_publishes_its_state_and_reads_faults(tmp_path):
    dev = gpu.Gpu(tmp_path, 8, 192.0)
    dev.set(force=True, memory_mb=1000, ready=True)
    dev.load(5, 1)  # throttled write (within 0.25 s): the heartbeat forces it out
    dev.heartbeat()
    (state,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert state["running"] == 5 and state["memory_mb"] == 1000 and state["simulated"] is True
    faults, states = labgpu.read_live_dir(tmp_path)
    assert faults == {} and len(states) == 1
    (tmp_path / "faults.json").write_text(json.dumps({"slow_gpu_pct": 50}))
    dev._faults_at = 0.0  # re-read now instead of in 0.5 s
    assert dev.slowdown() == pytest.approx(1.5)
    other = gpu.Gpu(tmp_path, 8, 192.0)
    other.name = "other"
    assert other.others_gb() == pytest.approx(1000 / 1024)
    dev.stopped()
    assert other.others_gb() == 0.0  # stopped: freed
    (tmp_path / "faults.json").write_text(json.dumps({"hold_gpu_memory": True}))
    other._faults_at = 0.0
    assert other.others_gb() == pytest.approx(1000 / 1024)  # ... unless the host holds it


def test_overcommitted_memory_fails_graph_capture_with_sglangs_lines():
    assert gpu.capture_fits(None, 0.94) and gpu.capture_fits(0.85, 0.94)
    assert not gpu.capture_fits(0.95, 0.94)
    text = "\n".join(gpu.oom_lines(192.0, 0.97))
    assert "Exception: Capture cuda graph failed: HIP out of memory. Tried to allocate" in text
    assert "torch.OutOfMemoryError: HIP out of memory." in text
    assert "1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)" in text
    assert gpu.planned_gb(192.0, 0.85) == pytest.approx(0.85 * 192 + gpu.GRAPH_MEMORY_GB)


def test_labrunc_mounts_the_live_state_once(tmp_path):
    labrunc = _load("labrunc")
    config: dict = {"mounts": [{"destination": "/proc"}]}
    assert labrunc.add_live_mount(config, str(tmp_path)) is True
    assert config["mounts"][-1] == {"destination": labrunc.LIVE_TARGET, "type": "bind", "source": str(tmp_path),
                                    "options": ["rbind", "rw"]}
    assert labrunc.add_live_mount(config, str(tmp_path)) is False  # once
    assert labrunc.add_live_mount({"mounts": []}, str(tmp_path / "absent")) is False  # not a lab host
    assert labrunc.LIVE_TARGET == gpu.STATE_DIR


def test_control_link_cap_is_a_tbf_on_the_bridge():
    cmd = netns.control_slow_cmd(100)
    assert cmd[:6] == ["tc", "qdisc", "replace", "dev", "labbr0", "root"] and "100mbit" in cmd
    assert netns.control_unslow_cmd() == ["tc", "qdisc", "del", "dev", "labbr0", "root"]
