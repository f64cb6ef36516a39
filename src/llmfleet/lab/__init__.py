"""The lab: a simulated MI300X cluster on one machine, real in every part that can be real.

Each lab host is a network namespace with its own address (10.213.0.11, .12, ...
on the bridge labbr0), its own hostname, a private mount namespace with fake GPU
device nodes and fake amd-smi/rocm-smi, its own OpenSSH server and its own Docker
engine. A Docker engine on the control side holds the lab's images. Only the GPUs
(and, in H2's image, the model) are simulated.

Engine API (the CLI in ``llmfleet.cli.lab`` is a thin layer over it):

- ``lab_up(n=4, images=True) -> LabInfo``: bring the lab to exactly n hosts; idempotent.
  Writes ``inventory/lab.yml``; state (PIDs, keys, known_hosts) lives in
  ``llmfleet.paths.lab_state_dir()``.
- ``lab_down(purge=False)``: remove every namespace, interface, process and mount the
  lab made, also after a crash; ``purge`` also drops the control engine's image cache.
- ``lab_status() -> list[dict]``: per host: processes, reachability, faults, memory.
- ``lab_fault(host, action, value=None)``: action is one of cut, restore, slow (Mbit/s),
  loss (percent), stop-docker, stop-ssh.
- ``lab_configure(host, amd_smi_json)``: "gpu_data" (newer amd-smi JSON) or "list" (older).
- ``host_exec(name, argv, **kw) -> CompletedProcess``: run a command inside a host.
- ``lab_info() -> LabInfo`` for the lab that is up; ``unavailable_reason()`` says why the
  lab cannot run here (not root, no namespaces, missing programs), or None.
"""

from __future__ import annotations

from typing import Any

# Imported lazily: llmfleet.lab.sim (the simulated server) runs inside lab containers and
# must not pull in the engine (and its dependencies) just by importing its package.
__all__ = [
    "LabError", "LabHost", "LabInfo", "control_status", "host_exec", "lab_configure",
    "lab_down", "lab_fault", "lab_info", "lab_status", "lab_up", "missing_tools", "unavailable_reason",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'llmfleet.lab' has no attribute {name!r}")
