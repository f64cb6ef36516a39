"""The catalog: models, hardware kinds, image tags and benchmark profiles, read from catalog/*.yml.

Users edit the YAML; this module only validates it and answers questions about it,
so a typo in a model or hardware name fails with the file and line before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Profile:
    name: str
    num_prompts: int
    max_concurrency: int
    warmup: bool = False


class BenchDefaults(schema.Struct):
    """The cookbook's bench_serving workload (catalog/profiles.yml `defaults:`)."""

    dataset: Literal["random", "random-ids", "sharegpt-file"]
    input_len: Annotated[int, msgspec.Meta(ge=1)]
    output_len: Annotated[int, msgspec.Meta(ge=1)]
    request_rate: str


class AccuracyDefaults(schema.Struct):
    num_questions: Annotated[int, msgspec.Meta(ge=1)]


class _ProfileSpec(schema.Struct):
    num_prompts: Annotated[int, msgspec.Meta(ge=1)]
    max_concurrency: Annotated[int, msgspec.Meta(ge=1)]
    warmup: bool = False


class _ProfilesFile(schema.Struct):
    defaults: BenchDefaults
    profiles: dict[str, _ProfileSpec]
    accuracy: AccuracyDefaults


@dataclass
class Catalog:
    models: dict[str, Model]
    hardware: dict[str, Hardware]
    device_flags: dict[str, list[str]]
    images: dict[str, Any]
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

    def version(self, version: str) -> dict[str, Any]:
        versions = self.images["versions"]
        if version not in versions:
            raise InputError(
                f"unknown SGLang version {version!r}; known: {', '.join(sorted(versions))}", self.source / "images.yml"
            )
        return versions[version]

    def image_tag(self, version: str, hardware: Hardware) -> str:
        info = self.version(version)
        if hardware.vendor == "amd":
            return self.images["amd_tag"].format(version=version, rocm=info["rocm"], flavour=hardware.flavour)
        return self.images["nvidia_tag"].format(version=version)

    def launcher(self, version: str) -> str:
        return self.version(version)["launcher"]

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise InputError(f"unknown profile {name!r}; known: {', '.join(self.profiles)}, all", self.source / "profiles.yml")
        return self.profiles[name]

    def select_profiles(self, spec: str) -> list[Profile]:
        names = list(self.profiles) if spec == "all" else [p.strip() for p in spec.split(",") if p.strip()]
        return [self.profile(n) for n in names]


def _require(mapping: yamlsrc.LineDict, key: str, what: str) -> Any:
    if key not in mapping:
        raise InputError(f"{what}: missing key {key!r}", mapping.path, mapping.line)
    return mapping[key]


def _mapping(data: Any, path: Path) -> yamlsrc.LineDict:
    if not isinstance(data, dict):
        raise InputError("expected a mapping at the top level", path, 1)
    return data


_MODEL_KEYS = {"hf_id", "description", "weights_gb", "gated", "eagle3_draft"}
_HW_KEYS = {"vendor", "arch", "flavour", "gpus", "gpu_memory_gb", "products"}


def load(directory: Path | None = None) -> Catalog:
    """Read and validate every catalog file."""
    directory = directory or paths.catalog_dir()
    models_doc = _mapping(yamlsrc.load(directory / "models.yml"), directory / "models.yml")
    models = {}
    for key, spec in models_doc.items():
        yamlsrc.check_keys(spec, _MODEL_KEYS, f"model {key!r}")
        models[key] = Model(
            key=key,
            hf_id=_require(spec, "hf_id", f"model {key!r}"),
            weights_gb=int(spec.get("weights_gb", 0)),
            gated=bool(spec.get("gated", False)),
            eagle3_draft=spec.get("eagle3_draft"),
            description=spec.get("description", ""),
        )

    hw_doc = _mapping(yamlsrc.load(directory / "hardware.yml"), directory / "hardware.yml")
    device_flags = hw_doc.get("device_flags", {})
    hardware = {}
    for key, spec in hw_doc.items():
        if key == "device_flags":
            continue
        yamlsrc.check_keys(spec, _HW_KEYS, f"hardware {key!r}")
        vendor = _require(spec, "vendor", f"hardware {key!r}")
        if vendor not in device_flags:
            raise InputError(f"hardware {key!r}: no device_flags for vendor {vendor!r}", spec.path, spec.line_of("vendor"))
        if vendor == "amd" and not (spec.get("arch") and spec.get("flavour")):
            raise InputError(f"hardware {key!r}: AMD kinds need arch and flavour", spec.path, spec.line)
        hardware[key] = Hardware(
            key=key,
            vendor=vendor,
            gpus=int(spec.get("gpus", 8)),
            gpu_memory_gb=int(spec.get("gpu_memory_gb", 0)),
            products=tuple(spec.get("products", [])),
            arch=spec.get("arch"),
            flavour=spec.get("flavour"),
        )

    images = _mapping(yamlsrc.load(directory / "images.yml"), directory / "images.yml")
    for key in ("default_version", "amd_tag", "nvidia_tag", "versions"):
        _require(images, key, "images.yml")

    prof_path = directory / "profiles.yml"
    prof = schema.convert(yamlsrc.load(prof_path), _ProfilesFile, path=str(prof_path))
    profiles = {
        str(name): Profile(str(name), p.num_prompts, p.max_concurrency, p.warmup) for name, p in prof.profiles.items()
    }
    return Catalog(
        models=models,
        hardware=hardware,
        device_flags={k: list(v) for k, v in device_flags.items()},
        images=images,
        profiles=profiles,
        bench_defaults=prof.defaults,
        accuracy_defaults=prof.accuracy,
        source=directory,
    )


@lru_cache(maxsize=4)
def load_cached(directory: str | None = None) -> Catalog:
    return load(Path(directory) if directory else None)
