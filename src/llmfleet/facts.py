"""Host facts: what one remote exec tells us about a host, parsed into typed values.

Like pyinfra's facts, a fact is a command plus a parser. Here all of a host's facts
come from one script (``gather_command``) so a fleet of dozens of hosts costs one
round trip each; the parsers are pure and tested on JSON fixtures of real outputs.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from . import shell
from .commands import docker

_SH_NEAREST_DF = 'd=$1; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; df -P -B1 "$d"'
_SH_GPU = (
    'PATH=$PATH:/opt/rocm/bin; if command -v amd-smi >/dev/null; then echo "source amd-smi"; amd-smi static --json; '
    'elif command -v rocm-smi >/dev/null; then echo "source rocm-smi"; rocm-smi --showproductname --showmeminfo vram --json; '
    'elif command -v nvidia-smi >/dev/null; then echo "source nvidia-smi"; '
    "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits; "
    'else echo "source none"; fi'
)


@dataclass
class Gpu:
    product: str
    arch: str | None = None
    vram_mb: int | None = None
    device_id: str | None = None  # PCI device ID, lower-case hex ("0x74a1")


@dataclass
class Container:
    id: str
    image_id: str
    status: str  # running, exited, created, restarting, ...
    exit_code: int
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class HostFacts:
    hostname: str = ""
    docker_version: str | None = None
    docker_error: str | None = None
    kfd: bool = False
    render_nodes: list[str] = field(default_factory=list)
    amdgpu_loaded: bool = False
    gpu_source: str | None = None
    gpus: list[Gpu] = field(default_factory=list)
    gpu_error: str | None = None
    numa_balancing: int | None = None
    disk_free_bytes: int | None = None
    disk_path: str | None = None
    image_id: str | None = None
    container: Container | None = None
    model_cached: bool = False

    @property
    def gpu_arch(self) -> str | None:
        arches = {g.arch for g in self.gpus if g.arch}
        return arches.pop() if len(arches) == 1 else None

    @property
    def gpu_product(self) -> str | None:
        products = {g.product for g in self.gpus}
        return products.pop() if len(products) == 1 else None

    @property
    def gpu_vram_mb(self) -> int | None:
        """The smallest VRAM any GPU reports (what a server can count on), None if none says."""
        sizes = [g.vram_mb for g in self.gpus if g.vram_mb]
        return min(sizes) if sizes else None

    @property
    def gpu_device_id(self) -> str | None:
        ids = {g.device_id for g in self.gpus if g.device_id}
        return ids.pop() if len(ids) == 1 else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FactQuery:
    """What the gather script needs to know: which image, container and cache to look at."""

    image: str
    container: str
    hf_home: str
    hf_id: str


def hf_cache_dir(hf_home: str, hf_id: str) -> str:
    """Where huggingface_hub keeps a model: HF_HOME/hub/models--org--name."""
    return f"{hf_home.rstrip('/')}/hub/models--{hf_id.replace('/', '--')}"


def gather_command(q: FactQuery) -> str:
    """One shell script printing every fact in its own ``@@section``."""
    return shell.sections(
        [
            ("hostname", ["hostname"]),
            ("docker", docker.version_json()),
            ("kfd", ["ls", "-l", "/dev/kfd"]),
            ("dri", ["ls", "-1", "/dev/dri"]),
            ("modules", ["grep", "-E", "^amdgpu ", "/proc/modules"]),
            ("amdgpu_sysfs", ["ls", "-d", "/sys/module/amdgpu"]),  # also set when amdgpu is built in
            ("gpu", ["sh", "-c", _SH_GPU]),
            ("numa", ["cat", "/proc/sys/kernel/numa_balancing"]),
            ("df", ["sh", "-c", _SH_NEAREST_DF, "sh", q.hf_home]),
            ("image", docker.image_id(q.image)),
            ("container", docker.inspect_container(q.container)),
            ("model", ["ls", "-1", hf_cache_dir(q.hf_home, q.hf_id) + "/snapshots"]),
        ]
    )


# --- parsers: pure, one per section ---------------------------------------------------


def parse_docker(text: str) -> tuple[str | None, str | None]:
    """(server version, error). The client answers even when the daemon does not."""
    text = text.strip()
    start = text.find("{")
    if start >= 0:
        try:
            data = json.loads(text[start : text.rfind("}") + 1])
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            server = data.get("Server") or {}
            if server.get("Version"):
                return server["Version"], None
    if "command not found" in text or "not found" in text.split("\n")[0]:
        return None, "docker is not installed"
    err = next((line for line in text.splitlines() if "daemon" in line.lower() or "error" in line.lower()), text[:200])
    return None, err.strip() or "docker did not answer"


def parse_render_nodes(text: str) -> list[str]:
    return sorted((n for n in text.split() if re.fullmatch(r"renderD\d+", n)), key=lambda n: int(n[7:]))


_VRAM_SIZE_KEYS = ("size", "vram_size", "vram_size_mb")


def _vram_mb(vram: Any) -> int | None:
    """amd-smi's VRAM size: {"size": {"value": 196592, "unit": "MB"}} in JSON since ROCm 6.1,
    {"vram_size_mb": 196592} in ROCm 6.0's JSON, "196592 MB" where a human-readable form is passed on."""
    size = next((vram[k] for k in _VRAM_SIZE_KEYS if k in vram), None) if isinstance(vram, dict) else vram
    if isinstance(size, dict):
        value, unit = size.get("value"), str(size.get("unit", "MB")).upper()
    elif isinstance(size, (int, float, str)):
        m = re.match(r"\s*([\d.]+)\s*([A-Za-z]*)", str(size))
        if not m:
            return None
        value, unit = m.group(1), (m.group(2) or "MB").upper()
    else:
        return None
    try:
        number = float(str(value))  # "N/A" (a value the tool could not read) is no size
    except ValueError:
        return None
    scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "MIB": 1, "GB": 1024, "GIB": 1024}.get(unit, 1)
    return int(number * scale)


_NA = {"", "N/A", "NA", "UNKNOWN", "NONE"}


def known(value: Any) -> str | None:
    """A tool's value as text, or None for the placeholders the tools print ("N/A", "")."""
    text = str(value).strip() if value is not None else ""
    return None if text.upper() in _NA else text


def normalize_arch(value: Any) -> str | None:
    """The real gfx name: rocm-smi 6.x prints gfx_target_version digits ("gfx9010" for gfx90a).

    KFD's gfx_target_version is major*10000 + minor*100 + stepping; the arch name writes the
    stepping as one hex digit, so 9.0.10 is gfx90a, not gfx9010 (names like gfx1100 are already real).
    """
    text = known(value)
    if text is None:
        return None
    text = text.lower()
    m = re.fullmatch(r"gfx9(\d)(\d\d)", text)
    if m and 10 <= int(m.group(2)) <= 15:
        return f"gfx9{m.group(1)}{int(m.group(2)):x}"
    return text


def device_id(value: Any) -> str | None:
    """A PCI device ID as lower-case hex ("0x74A1" and "1002:74a1" -> "0x74a1"), None if it is not one."""
    m = re.fullmatch(r"(?:0x|1002:)(?:0x)?([0-9a-f]{4})", (known(value) or "").lower())
    return f"0x{m.group(1)}" if m else None


def _mapping(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for what the tools print instead ("N/A", null)."""
    return value if isinstance(value, dict) else {}


def parse_amd_smi(data: Any) -> list[Gpu]:
    """`amd-smi static --json` in each shape it has had (ROCm/amdsmi amdsmi_cli/amdsmi_logger.py):

    {"gpu_data": [...]} from amd-smi 26 (ROCm 7.0); a bare list [{"gpu": 0, ...}, ...] in ROCm 6.1-6.4;
    in ROCm 6.0 a bare list with several GPUs but one bare object {"gpu": 0, ...} on a one-GPU host.
    """
    if isinstance(data, dict):
        data = data["gpu_data"] if "gpu_data" in data else [data] if "gpu" in data else []
    gpus = []
    for entry in data if isinstance(data, list) else []:
        entry = _mapping(entry)
        asic, board = _mapping(entry.get("asic")), _mapping(entry.get("board"))
        product = known(asic.get("market_name")) or known(board.get("product_name")) or "unknown"
        gpus.append(
            Gpu(
                product=product,
                arch=normalize_arch(asic.get("target_graphics_version")),
                vram_mb=_vram_mb(entry.get("vram")),
                device_id=device_id(asic.get("device_id")),
            )
        )
    return gpus


_ROCM_NAME_KEYS = ("card series", "device name", "card model", "card sku")
_ROCM_ID_KEYS = ("device id", "gpu id", "card model")


def _rocm_product(card: dict[str, Any]) -> str:
    """The most telling name of a card: a real name before a hex ID ("Card model" is "0x74a1" on some releases)."""
    names = [n for n in (known(card.get(k)) for k in _ROCM_NAME_KEYS) if n]
    return next((n for n in names if device_id(n) is None), names[0] if names else "unknown")


def _rocm_vram_mb(card: dict[str, Any]) -> int | None:
    """`--showmeminfo vram`: "VRAM Total Memory (B)" in bytes, as a string."""
    total = known(card.get("vram total memory (b)"))
    return int(total) // 2**20 if total and total.isdigit() else None


def parse_rocm_smi(data: Any) -> list[Gpu]:
    """`rocm-smi --showproductname --showmeminfo vram --json`: {"card0": {...}, "system": {...}}.

    Field names differ by release: 5.x "Card series"/"Card model"/"GPU ID", 6.x "Card Series"/"Device Name"/
    "Device ID" (keys are compared case-insensitively), and 6.x prints gfx_target_version digits as "GFX Version".
    """
    gpus = []
    if isinstance(data, dict):
        cards = [k for k in data if re.fullmatch(r"card\d+", str(k)) and isinstance(data[k], dict)]
        for key in sorted(cards, key=lambda k: int(k[4:])):
            card = {str(k).lower(): v for k, v in data[key].items()}
            ids = (device_id(card.get(k)) for k in _ROCM_ID_KEYS)
            gpus.append(
                Gpu(
                    product=_rocm_product(card),
                    arch=normalize_arch(card.get("gfx version")),
                    vram_mb=_rocm_vram_mb(card),
                    device_id=next((i for i in ids if i), None),
                )
            )
    return gpus


def parse_nvidia_smi(text: str) -> list[Gpu]:
    gpus = []
    for line in text.splitlines():
        name, _, mem = line.partition(",")
        if name.strip():
            gpus.append(Gpu(product=name.strip(), vram_mb=int(mem) if mem.strip().isdigit() else None))
    return gpus


def parse_gpu(text: str) -> tuple[str | None, list[Gpu], str | None]:
    """(source tool, GPUs, error) from the gpu section."""
    first, _, rest = text.partition("\n")
    source = first.removeprefix("source ").strip() if first.startswith("source ") else None
    if source in (None, "none"):
        return None, [], "no amd-smi, rocm-smi or nvidia-smi on the host (ROCm not installed?)"
    if source == "nvidia-smi":
        return source, parse_nvidia_smi(rest), None
    start = min((i for i in (rest.find("{"), rest.find("[")) if i >= 0), default=-1)
    if start < 0:
        return source, [], f"{source} printed no JSON: {rest.strip()[:200]}"
    try:
        data = json.loads(rest[start:])
    except json.JSONDecodeError as exc:
        return source, [], f"{source} printed invalid JSON ({exc.msg})"
    gpus = parse_amd_smi(data) if source == "amd-smi" else parse_rocm_smi(data)
    return source, gpus, None if gpus else f"{source} listed no GPUs"


def parse_df(text: str) -> tuple[str | None, int | None]:
    """`df -P -B1 PATH`: (mount point path asked, available bytes)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None, None
    cols = lines[-1].split()
    if len(cols) < 6 or not cols[3].isdigit():
        return None, None
    return cols[5], int(cols[3])


def parse_image(text: str) -> str | None:
    first = text.strip().split()
    return first[0] if first and first[0].startswith("sha256:") else None


def parse_container(text: str) -> Container | None:
    text = text.strip()
    if not text.startswith("{"):
        return None  # "Error: No such container"
    data = json.loads(text)
    state = data.get("State") or {}
    return Container(
        id=data.get("Id", ""),
        image_id=data.get("Image", ""),
        status=state.get("Status", "unknown"),
        exit_code=int(state.get("ExitCode", 0)),
        labels=(data.get("Config") or {}).get("Labels") or {},
    )


def parse(output: str) -> HostFacts:
    """All sections of the gather script's output into HostFacts."""
    s = shell.split_sections(output)
    facts = HostFacts(hostname=s.get("hostname", "").strip())
    facts.docker_version, facts.docker_error = parse_docker(s.get("docker", ""))
    facts.kfd = s.get("kfd", "").lstrip().startswith("c")
    facts.render_nodes = parse_render_nodes(s.get("dri", ""))
    facts.amdgpu_loaded = s.get("modules", "").startswith("amdgpu ") or s.get("amdgpu_sysfs", "").strip() == "/sys/module/amdgpu"
    facts.gpu_source, facts.gpus, facts.gpu_error = parse_gpu(s.get("gpu", ""))
    numa = s.get("numa", "").strip()
    facts.numa_balancing = int(numa) if numa.isdigit() else None
    facts.disk_path, facts.disk_free_bytes = parse_df(s.get("df", ""))
    facts.image_id = parse_image(s.get("image", ""))
    facts.container = parse_container(s.get("container", ""))
    facts.model_cached = any(line.strip() for line in s.get("model", "").splitlines() if "No such file" not in line)
    return facts


def assumed(hardware_vendor: str, gpus: int, arch: str | None, product: str) -> HostFacts:
    """Facts for `--dry-run`, taken from the inventory instead of the host: a bare host."""
    facts = HostFacts(hostname="(dry-run)", docker_version="(assumed)")
    if hardware_vendor == "amd":
        facts.kfd = True
        facts.amdgpu_loaded = True
        facts.render_nodes = [f"renderD{128 + i}" for i in range(gpus)]
        facts.gpu_source = "amd-smi"
    facts.gpus = [Gpu(product=product, arch=arch) for _ in range(gpus)]
    facts.numa_balancing = 0
    return facts
