"""The data behind a lab host's fake amd-smi / rocm-smi: built from files/gpus.yml, purely.

lab.up writes the result as JSON into the host's /opt/rocm/share/llmfleet-lab/,
where the scripts files/amd-smi and files/rocm-smi read it. A per-host setting
chooses the amd-smi JSON shape: ``gpu_data`` (newer, ``{"gpu_data": [...]}``,
the default) or ``list`` (older releases: a bare list).
"""

from __future__ import annotations

import copy
import zlib
from pathlib import Path
from typing import Any

import yaml

FILES = Path(__file__).resolve().parent / "files"
SHAPES = ("gpu_data", "list")
DEFAULT_SHAPE = "gpu_data"
SIMULATED = "llmfleet lab: simulated GPUs, no real hardware"
LIVE_DIR = "live"  # under the data dir: the simulated servers' state and the host's GPU faults (files/labgpu.py)
FAULTS_FILE = "faults.json"


def load_specs(path: Path | None = None) -> dict[str, Any]:
    return yaml.safe_load((path or FILES / "gpus.yml").read_text())


def render(spec: dict[str, Any], host: str) -> dict[str, Any]:
    """Per-GPU records for one host; serials and GUIDs say which lab host they belong to."""
    count = spec["count"]
    bdfs = spec["bdfs"]
    if len(bdfs) != count:
        raise ValueError(f"gpus.yml: {count} GPUs but {len(bdfs)} BDFs")
    host_tag = host.upper()
    amd: list[dict[str, Any]] = []
    rocm: dict[str, dict[str, str]] = {}
    mb = spec["amd_smi"]["vram"]["size"]["value"]
    for i in range(count):
        gpu = {"gpu": i}
        base = copy.deepcopy(spec["amd_smi"])
        base["asic"]["asic_serial"] = f"LABSIM-{host_tag}-{i}"
        base["asic"]["oam_id"] = i
        base["bus"] = {"bdf": bdfs[i], **base["bus"]}
        base["board"]["product_serial"] = f"LABSIM-{host_tag}-{i}"
        base["partition"]["partition_id"] = 0
        base["numa"] = {"node": 0 if i < count // 2 else 1, "affinity": 0 if i < count // 2 else 1}
        gpu.update(base)
        amd.append(gpu)
        card = dict(spec["rocm_smi"])
        card["Node ID"] = str(i + 2)  # nodes 0 and 1 are the CPU sockets
        card["GUID"] = str(10000 + i)
        card["Unique ID"] = f"0x{zlib.crc32(f'{host}/{i}'.encode()):08x}{i:04x}"
        card["Serial Number"] = f"LABSIM-{host_tag}-{i}"
        card["PCI Bus"] = bdfs[i]
        card["VRAM Total Memory (B)"] = str(mb * 1024 * 1024)
        card["VRAM Total Used Memory (B)"] = "0"
        rocm[f"card{i}"] = card
    return {"simulated": SIMULATED, "versions": spec["versions"], "amd_smi": amd, "rocm_smi": rocm}


def settings(shape: str = DEFAULT_SHAPE) -> dict[str, str]:
    if shape not in SHAPES:
        raise ValueError(f"amd-smi JSON shape must be one of {', '.join(SHAPES)}, not {shape!r}")
    return {"amd_smi_json": shape}


def gpu_faults(current: dict[str, Any], slow_gpu_pct: float | None = None, hold_memory: bool | None = None,
               restore: bool = False) -> dict[str, Any]:
    """The host's GPU faults after one change (what files/labgpu.py and the simulated server read)."""
    if restore:
        return {}
    out = dict(current)
    if slow_gpu_pct is not None:
        if not 0 < slow_gpu_pct <= 900:
            raise ValueError(f"--slow-gpu takes a percentage in (0, 900], not {slow_gpu_pct}")
        out["slow_gpu_pct"] = float(slow_gpu_pct)
    if hold_memory is not None:
        out["hold_gpu_memory"] = bool(hold_memory)
    return out
