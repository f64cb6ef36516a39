"""The catalog: models, hardware kinds, image tags and benchmark profiles, read from catalog/*.yml.

Users edit the YAML; this module only validates it and answers questions about it,
so a typo in a model or hardware name fails with the file and line before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from . import paths, schema, yamlsrc
from .errors import InputError


@dataclass(frozen=True)
class Model:
    key: str
    hf_id: str
    weights_gb: int
    gated: bool
    eagle3_draft: str | None
    description: str = ""


@dataclass(frozen=True)
class Hardware:
    key: str
    vendor: str  # "amd" | "nvidia"
    gpus: int
    gpu_memory_gb: int
    products: tuple[str, ...]
    arch: str | None = None  # gfx942 / gfx950 for AMD
    flavour: str | None = None  # image suffix: mi30x / mi35x
    device_ids: tuple[str, ...] = ()  # PCI device IDs (lower-case hex), for tools that print no product name
    shared_memory: bool = False  # an APU: the tools report a carve-out of memory shared with the CPUs
    supported: bool = True  # False: recognised, but the cookbook has no configuration for it
    reason: str = ""  # why an unsupported kind is refused (shown to the operator)

    def fits_vram(self, vram_mb: int) -> bool:
        """Whether a GPU reporting ``vram_mb`` can be this kind (within 10% below, 5% above).

        An APU's tools report only the carve-out of its shared memory, so any size up to the total fits.
        """
        total_mb = self.gpu_memory_gb * 1024
        low = 0 if self.shared_memory else total_mb * 0.9
        return low <= vram_mb <= total_mb * 1.05


class _HardwareSpec(schema.Struct, frozen=True, kw_only=True):
    """One kind in catalog/hardware.yml (the keys documented at the top of that file)."""

    vendor: Literal["amd", "nvidia"]
    gpu_memory_gb: Annotated[int, msgspec.Meta(ge=1)]
    products: tuple[str, ...]
    gpus: Annotated[int, msgspec.Meta(ge=1)] = 8
    arch: str | None = None
    flavour: str | None = None
    device_ids: tuple[Annotated[str, msgspec.Meta(pattern=r"^0x[0-9a-f]{4}$")], ...] = ()
    shared_memory: bool = False
    supported: bool = True
    reason: str = ""

    def __post_init__(self) -> None:
        if self.vendor == "amd" and self.supported and not (self.arch and self.flavour):
            raise ValueError("AMD kinds need arch and flavour (the image tag suffix)")
        if not self.supported and not self.reason:
            raise ValueError("an unsupported kind (supported: false) needs a reason")


@dataclass(frozen=True)
class Profile:
    name: str
    num_prompts: int
    max_concurrency: int
    warmup: bool = False


class _ModelSpec(schema.Struct, frozen=True, kw_only=True):
    hf_id: Annotated[str, msgspec.Meta(pattern=r"^[\w.-]+/[\w.-]+$")]
    description: str = ""
    weights_gb: Annotated[int, msgspec.Meta(ge=0)] = 0
    gated: bool = False
    eagle3_draft: Annotated[str, msgspec.Meta(pattern=r"^[\w.-]+/[\w.-]+$")] | None = None


class ImageVersion(schema.Struct, frozen=True, kw_only=True):
    """One SGLang version's images (catalog/images.yml `versions:`)."""

    rocm: str
    launcher: Literal["serve", "module"]


class Images(schema.Struct, frozen=True, kw_only=True):
    """catalog/images.yml: tag patterns and the versions they exist for."""

    default_version: str
    amd_tag: str
    nvidia_tag: str
    versions: dict[str, ImageVersion]


class BenchDefaults(schema.Struct, frozen=True, kw_only=True):
    """The cookbook's bench_serving workload (catalog/profiles.yml `defaults:`)."""

    dataset: Literal["random", "random-ids", "sharegpt-file"]
    input_len: Annotated[int, msgspec.Meta(ge=1)]
    output_len: Annotated[int, msgspec.Meta(ge=1)]
    request_rate: str


class AccuracyDefaults(schema.Struct, frozen=True, kw_only=True):
    num_questions: Annotated[int, msgspec.Meta(ge=1)]


class _ProfileSpec(schema.Struct, frozen=True, kw_only=True):
    num_prompts: Annotated[int, msgspec.Meta(ge=1)]
    max_concurrency: Annotated[int, msgspec.Meta(ge=1)]
    warmup: bool = False


class _ProfilesFile(schema.Struct, frozen=True, kw_only=True):
    defaults: BenchDefaults
    profiles: dict[str, _ProfileSpec]
    accuracy: AccuracyDefaults


@dataclass
class Catalog:
    models: dict[str, Model]
    hardware: dict[str, Hardware]
    device_flags: dict[str, list[str]]
    images: Images
    profiles: dict[str, Profile]
    bench_defaults: BenchDefaults
    accuracy_defaults: AccuracyDefaults
    source: Path = Path("catalog")

    def model(self, key: str) -> Model:
        if key not in self.models:
            raise InputError(f"unknown model {key!r}; known: {', '.join(sorted(self.models))}", self.source / "models.yml")
        return self.models[key]

    def hw(self, key: str) -> Hardware:
        if key not in self.hardware:
            raise InputError(
                f"unknown hardware kind {key!r}; known: {', '.join(sorted(self.hardware))}", self.source / "hardware.yml"
            )
        return self.hardware[key]

    def hardware_for_arch(self, arch: str) -> list[Hardware]:
        return [h for h in self.hardware.values() if h.arch == arch]

    def version(self, version: str) -> ImageVersion:
        versions = self.images.versions
        if version not in versions:
            raise InputError(
                f"unknown SGLang version {version!r}; known: {', '.join(sorted(versions))}", self.source / "images.yml"
            )
        return versions[version]

    def image_tag(self, version: str, hardware: Hardware) -> str:
        info = self.version(version)
        if hardware.vendor == "amd":
            return self.images.amd_tag.format(version=version, rocm=info.rocm, flavour=hardware.flavour)
        return self.images.nvidia_tag.format(version=version)

    def launcher(self, version: str) -> str:
        return self.version(version).launcher

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise InputError(f"unknown profile {name!r}; known: {', '.join(self.profiles)}, all", self.source / "profiles.yml")
        return self.profiles[name]

    def select_profiles(self, spec: str) -> list[Profile]:
        names = list(self.profiles) if spec == "all" else [p.strip() for p in spec.split(",") if p.strip()]
        return [self.profile(n) for n in names]


def _mapping(data: Any, path: Path) -> yamlsrc.LineDict:
    if not isinstance(data, yamlsrc.LineDict):
        raise InputError("expected a mapping at the top level", path, 1)
    return data


def _load_hardware(doc: yamlsrc.LineDict, path: Path) -> tuple[dict[str, Hardware], dict[str, list[str]]]:
    """Hardware kinds and the per-vendor `docker run` device flags, checked with file:line errors."""
    device_flags = schema.convert(doc.get("device_flags", {}), dict[str, list[str]], path=str(path), what="device_flags")
    hardware = {}
    for key, spec in doc.items():
        if key == "device_flags":
            continue
        hw = schema.convert(spec, _HardwareSpec, path=str(path), what=f"hardware {key!r}")
        if hw.vendor not in device_flags:
            line = spec.line_of("vendor") if isinstance(spec, yamlsrc.LineDict) else None
            raise InputError(f"hardware {key!r}: no device_flags for vendor {hw.vendor!r}", path, line)
        hardware[str(key)] = Hardware(key=str(key), **msgspec.structs.asdict(hw))
    return hardware, device_flags


def load(directory: Path | None = None) -> Catalog:
    """Read and validate every catalog file."""
    directory = directory or paths.catalog_dir()
    models_path = directory / "models.yml"
    model_specs = schema.convert(yamlsrc.load(models_path), dict[str, _ModelSpec], path=str(models_path), what="model")
    models = {
        key: Model(key=key, hf_id=m.hf_id, weights_gb=m.weights_gb, gated=m.gated, eagle3_draft=m.eagle3_draft,
                   description=m.description)
        for key, m in model_specs.items()
    }  # fmt: skip

    hw_path = directory / "hardware.yml"
    hardware, device_flags = _load_hardware(_mapping(yamlsrc.load(hw_path), hw_path), hw_path)

    images_path = directory / "images.yml"
    images = schema.convert(yamlsrc.load(images_path), Images, path=str(images_path))
    if images.default_version not in images.versions:
        raise InputError(f"default_version {images.default_version!r} is not one of versions", images_path)

    prof_path = directory / "profiles.yml"
    prof = schema.convert(yamlsrc.load(prof_path), _ProfilesFile, path=str(prof_path))
    profiles = {
        str(name): Profile(str(name), p.num_prompts, p.max_concurrency, p.warmup) for name, p in prof.profiles.items()
    }
    return Catalog(
        models=models,
        hardware=hardware,
        device_flags=device_flags,
        images=images,
        profiles=profiles,
        bench_defaults=prof.defaults,
        accuracy_defaults=prof.accuracy,
        source=directory,
    )


@lru_cache(maxsize=4)
def load_cached(directory: str | None = None) -> Catalog:
    return load(Path(directory) if directory else None)
