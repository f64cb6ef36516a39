"""The live state of a lab host's SIMULATED GPUs, read by its fake amd-smi and rocm-smi.

Standard library only: it runs under the host's system python, beside the smi scripts
(lab.up copies it into /opt/rocm/share/llmfleet-lab/). Nothing here touches hardware.

Where the numbers come from: each simulated SGLang server on the host writes its state
(GPUs, memory held, running and waiting requests, a heartbeat) into
live/<id>.json (llmfleet.lab.sim.gpu; the lab's runc wrapper mounts live/ into every
container). `invoke lab.fault --slow-gpu PCT / --hold-gpu-memory` write live/faults.json.
A server is running while its heartbeat is fresh; its memory is freed when it stops or
dies, unless the hold-gpu-memory fault keeps it (a leaked process, as real hosts have).
"""

import json
import os
import time

LIVE = "live"
FAULTS = "faults.json"
HEARTBEAT_S = 3.0  # a state older than this: the server is gone (stopped, killed or its container died)
IDLE_VRAM_MB = 283  # what a real idle MI300X reports used (driver and firmware)
IDLE_POWER_W = 138.0
MAX_POWER_W = 750.0  # MI300X OAM board power limit
SIMULATED_NOTE = "llmfleet lab: simulated GPU telemetry (no real hardware): follows the simulated server's load"


def read_json(path, default):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def read_live(data_dir):
    """(faults, [server states]) from data_dir/live."""
    return read_live_dir(os.path.join(data_dir, LIVE))


def read_live_dir(live):
    faults = read_json(os.path.join(live, FAULTS), {})
    states = []
    try:
        names = sorted(os.listdir(live))
    except OSError:
        names = []
    for name in names:
        if name.endswith(".json") and name != FAULTS:
            state = read_json(os.path.join(live, name), None)
            if isinstance(state, dict):
                states.append(state)
    return faults, states


def is_running(state, now):
    return not state.get("stopped_at") and now - float(state.get("heartbeat", 0)) < HEARTBEAT_S


def gpu_metrics(count, total_mb, faults, states, now=None):
    """Per GPU: used VRAM (MB), gfx activity (%), power (W), hotspot/memory temperature (C), throttled."""
    now = time.time() if now is None else now
    slow = float(faults.get("slow_gpu_pct") or 0)
    hold = bool(faults.get("hold_gpu_memory"))
    out = []
    for gpu in range(count):
        used, load = IDLE_VRAM_MB, 0.0
        for state in states:
            if gpu not in state.get("gpus", []):
                continue
            running = is_running(state, now)
            if running or hold:
                used += int(state.get("memory_mb", 0))
            if running and state.get("ready"):
                busy = int(state.get("running", 0)) + int(state.get("waiting", 0))
                load = max(load, activity(busy))
        out.append(one_gpu(used, total_mb, load, slow))
    return out


def activity(busy_requests):
    """gfx activity (%) with this many requests in the batch: a decode step keeps the GPU busy,
    a bigger batch keeps it busier."""
    if busy_requests <= 0:
        return 0.0
    return min(100.0, 45.0 + 55.0 * min(1.0, busy_requests / 64.0))


def one_gpu(used_mb, total_mb, load_pct, slow_pct):
    """One GPU's readings. A slowed GPU (the --slow-gpu fault) is power-capped and hot, and says so."""
    cap = MAX_POWER_W * (1.0 - min(slow_pct, 90.0) / 100.0) if slow_pct else MAX_POWER_W
    power = IDLE_POWER_W + (MAX_POWER_W - IDLE_POWER_W) * 0.85 * load_pct / 100.0
    hotspot = 38.0 + 42.0 * load_pct / 100.0
    mem_temp = 34.0 + 30.0 * load_pct / 100.0
    throttled = bool(slow_pct) and load_pct > 0
    if slow_pct:
        power = min(power, cap)
        hotspot = max(hotspot, 96.0) if load_pct else hotspot
    return {
        "used_vram_mb": min(int(used_mb), int(total_mb)),
        "total_vram_mb": int(total_mb),
        "gfx_activity": int(round(load_pct)),
        "umc_activity": int(round(load_pct * 0.6)),
        "socket_power_w": int(round(power)),
        "power_cap_w": int(round(cap)),
        "hotspot_c": int(round(hotspot)),
        "mem_c": int(round(mem_temp)),
        "throttled": throttled,
    }
