"""Scripted MI300X hosts for unit tests of the runner and the real playbooks (llmfleet.testing).

The facts output has the shape of the gather script's sections (llmfleet.facts); the
GPU section is the amd-smi fixture of tests/fixtures/host_outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmfleet.testing import FakeHost, FakeNetwork

GPU_JSON = (Path(__file__).parent.parent / "fixtures" / "host_outputs" / "amd_smi_gpu_data.json").read_text()


def mi300x_facts(numa: int = 0, gpus: int = 8, container: dict | None = None, image_id: str | None = None) -> str:
    """What `gather_facts` reads back from a healthy MI300X host."""
    data = json.loads(GPU_JSON)
    first = data["gpu_data"][0]
    data["gpu_data"] = [{**first, "gpu": i} for i in range(gpus)]
    sections = {
        "hostname": "gpu-host",
        "docker": json.dumps({"Client": {"Version": "26.1.5"}, "Server": {"Version": "26.1.5"}}),
        "kfd": "crw-rw---- 1 root render 235, 0 Jan  1 00:00 /dev/kfd",
        "dri": "\n".join(["by-path"] + [f"card{i}" for i in range(gpus)] + [f"renderD{128 + i}" for i in range(gpus)]),
        "modules": "amdgpu 16384 0 - Live 0x0000000000000000",
        "amdgpu_sysfs": "/sys/module/amdgpu",
        "gpu": "source amd-smi\n" + json.dumps(data),
        "numa": str(numa),
        "df": "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/nvme0n1 8000000000000 1000000000000 7000000000000 13% /",
        "image": f"{image_id} 20000000000" if image_id else "Error: No such image",
        "container": json.dumps(container) if container else "Error: No such object",
        "model": "ls: cannot access: No such file or directory",
    }
    return "".join(f"@@{name}\n{body}\n" for name, body in sections.items())


LOCK = r"^sh -c 'mkdir -p \"\$1\" && mkdir \"\$2\"'"  # hostlock.acquire
FACTS = r"^printf '@@%s\\n' hostname"  # facts.gather_command
AUDIT = r"audit\.log'?(; rm -rf \S+/lock)?$"  # hostlock.audit (the runner sends it with the release)
RELEASE = r"(^|; )rm -rf \S+/lock$"  # hostlock.release


def healthy_host(net: FakeNetwork, name: str, numa: int = 0) -> FakeHost:
    """A host that answers the deploy lock, audit log and fact gathering."""
    return (
        net.host(name)
        .on(LOCK, 0)
        .on(FACTS, mi300x_facts(numa=numa))
        .on(AUDIT, 0)
        .on(RELEASE, 0)
    )
