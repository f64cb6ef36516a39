"""The simulated GPU of one simulated server: the memory its plan holds, the state the lab
host's fake amd-smi/rocm-smi read, the host's GPU faults, and SGLang's out-of-memory failure.

On a lab host the lab's runc wrapper mounts the host's live-state directory into every
container at STATE_DIR; elsewhere ($LLMFLEET_SIM_GPU_DIR unset, no such directory) the
server publishes nothing and has no faults. The reader is llmfleet/lab/files/labgpu.py.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

ENV_DIR = "LLMFLEET_SIM_GPU_DIR"
STATE_DIR = "/run/llmfleet-lab-gpu"
FAULTS = "faults.json"
DEFAULT_MEM_FRACTION = 0.85  # simulated: SGLang computes its own default per GPU and model
GRAPH_MEMORY_GB = 6.19  # Llama 4 Maverick's graphs on MI300X ("Capture cuda graph end ... mem usage=6.19 GB")
FAULT_REREAD_S = 0.5
HEARTBEAT_S = 3.0  # as labgpu.py: an older state is a server that is gone

# SGLang's message when graph capture fails (sglang/srt/model_executor/cuda_graph_runner.py,
# CUDA_GRAPH_CAPTURE_FAILED_MSG, 0.5.7 and 0.5.9), raised as
# Exception(f"Capture cuda graph failed: {e}\n{CUDA_GRAPH_CAPTURE_FAILED_MSG}"); the inner error is
# torch's OutOfMemoryError, whose text on ROCm reads "HIP out of memory. Tried to allocate ...".
CAPTURE_FAILED_MSG = (
    "Possible solutions:\n"
    "1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)\n"
    "2. set --cuda-graph-max-bs to a smaller value (e.g., 16)\n"
    "3. disable torch compile by not using --enable-torch-compile\n"
    "4. disable CUDA graph by --disable-cuda-graph. (Not recommended. Huge performance loss)\n"
    "Open an issue on GitHub https://github.com/sgl-project/sglang/issues/new/choose \n"
)


def state_dir() -> Path | None:
    """Where this server publishes its state: $LLMFLEET_SIM_GPU_DIR, else STATE_DIR if mounted."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    return Path(STATE_DIR) if os.path.isdir(STATE_DIR) else None


def planned_gb(total_gb: float, mem_fraction: float | None) -> float:
    """GPU memory a running server holds per GPU: its static pool (weights + KV) plus graphs."""
    fraction = DEFAULT_MEM_FRACTION if mem_fraction is None else mem_fraction
    return min(total_gb, fraction * total_gb + GRAPH_MEMORY_GB)


def capture_fits(mem_fraction: float | None, max_fraction: float) -> bool:
    """Graph capture needs what the static pool leaves free: over max_fraction it does not fit."""
    return mem_fraction is None or mem_fraction <= max_fraction


def oom_lines(total_gb: float, mem_fraction: float, free_gb: float | None = None) -> list[str]:
    """The lines a real server logs when graph capture runs out of memory (then it exits)."""
    free = max(total_gb * (1 - mem_fraction) - 1.5, 0.05) if free_gb is None else free_gb
    alloc = 2.0 if free < 2.0 else round(free + 0.5, 2)
    inner = (
        f"HIP out of memory. Tried to allocate {alloc:.2f} GiB. GPU 0 has a total capacity of {total_gb - 0.02:.2f} GiB "
        f"of which {free:.2f} GiB is free. Of the allocated memory {total_gb * mem_fraction:.2f} GiB is allocated by "
        "PyTorch, and 0.98 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large "
        "try setting PYTORCH_HIP_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
        "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
    )
    return [
        "Scheduler hit an exception: Traceback (most recent call last):",
        '  File "/sgl-workspace/sglang/python/sglang/srt/model_executor/cuda_graph_runner.py", line 358, in __init__',
        "    self.capture()",
        f"torch.OutOfMemoryError: {inner}",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        f"Exception: Capture cuda graph failed: {inner}",
        *CAPTURE_FAILED_MSG.rstrip("\n").split("\n"),
        "",
        "Received sigquit from a child process. It usually means the child failed.",
    ]


def read_faults(directory: Path | None) -> dict[str, Any]:
    if directory is None:
        return {}
    try:
        return json.loads((directory / FAULTS).read_text())
    except (OSError, ValueError):
        return {}


def slowdown(faults: dict[str, Any]) -> float:
    """Time factor of every GPU op under --slow-gpu PCT: PCT% slower = steps (1 + PCT/100) as long."""
    return 1.0 + max(float(faults.get("slow_gpu_pct") or 0), 0.0) / 100.0


class Gpu:
    """This server's simulated GPUs: publishes its state, answers the host's faults."""

    def __init__(self, directory: Path | None, gpus: int, total_gb: float):
        self.directory = directory
        self.gpus = gpus
        self.total_gb = total_gb
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.state: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "gpus": list(range(gpus)),
                                      "memory_mb": 0, "running": 0, "waiting": 0, "ready": False,
                                      "started": time.time(), "simulated": True}
        self._faults: dict[str, Any] = {}
        self._faults_at = 0.0
        self._written = 0.0

    def faults(self) -> dict[str, Any]:
        """The host's GPU faults, re-read at most every FAULT_REREAD_S (a fault applies to a running server)."""
        now = time.monotonic()
        if now - self._faults_at >= FAULT_REREAD_S:
            self._faults, self._faults_at = read_faults(self.directory), now
        return self._faults

    def slowdown(self) -> float:
        return slowdown(self.faults())

    def others_gb(self) -> float:
        """Memory per GPU that other servers on this host hold: running ones, and gone ones under
        the --hold-gpu-memory fault (a leaked process keeps its memory)."""
        if self.directory is None:
            return 0.0
        hold = bool(self.faults().get("hold_gpu_memory"))
        held = 0
        for path in self.directory.glob("*.json"):
            if path.name in (FAULTS, f"{self.name}.json"):
                continue
            try:
                other = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            alive = not other.get("stopped_at") and time.time() - float(other.get("heartbeat", 0)) < HEARTBEAT_S
            if alive or hold:
                held += int(other.get("memory_mb", 0))
        return held / 1024.0

    def set(self, force: bool = False, **values: Any) -> None:
        """Update the published state; written at most every 0.25 s unless forced (the heartbeat forces)."""
        self.state.update(values)
        now = time.monotonic()
        if force or now - self._written >= 0.25:
            self._write()
            self._written = now

    def load(self, running: int, waiting: int) -> None:
        self.set(running=running, waiting=waiting)

    def heartbeat(self) -> None:
        self.set(force=True)

    def stopped(self) -> None:
        """The server exits: its memory is freed (the reader drops it), unless the host holds it."""
        self.set(force=True, stopped_at=time.time(), running=0, waiting=0, ready=False)

    def _write(self) -> None:
        if self.directory is None:
            return
        self.state["heartbeat"] = time.time()
        tmp = self.directory / f".{self.name}.tmp"
        try:
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.directory / f"{self.name}.json")
        except OSError:
            pass  # telemetry is best effort: the server serves without it
