"""What a host should run, derived from its variables, its facts and the catalog.

Pure: the same inputs give the same image tag, server command and `docker run`
argv on every call, which is what makes the config hash (and so idempotent
deploys) and the dry-run output trustworthy.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Mapping

from .catalog import Catalog, Hardware, Model
from .commands import docker, sglang
from .errors import InputError
from .facts import HostFacts
from .settings import Settings

MANAGED_LABEL = "org.llmfleet.managed"
PORT_LABEL = "org.llmfleet.port"
MODEL_LABEL = f"{docker.LABEL_PREFIX}.model"
CONTAINER_WORKDIR = "/llmfleet"  # the host's <remote_dir>/work inside the container
CONTAINER_HF_HOME = "/root/.cache/huggingface"
CONTAINER_CACHE = "/llmfleet-cache"  # the host's <remote_dir>/cache: JIT and kernel caches that outlive a container
CACHE_ENV = {  # where SGLang's kernel compilers keep their output, inside the host volume
    "AITER_JIT_DIR": f"{CONTAINER_CACHE}/aiter",
    "TRITON_CACHE_DIR": f"{CONTAINER_CACHE}/triton",
    "TORCHINDUCTOR_CACHE_DIR": f"{CONTAINER_CACHE}/inductor",
}


def image_tag(catalog: Catalog, s: Settings, hardware: Hardware) -> tuple[str, str]:
    """(SGLang version, image tag): the `image` setting, or the catalog's tag for this hardware."""
    version = s.sglang_version or catalog.images.default_version
    return version, s.image or catalog.image_tag(version, hardware)


def detect_hardware(catalog: Catalog, facts: HostFacts | None, declared: str | None) -> Hardware:
    """The host's hardware kind: the inventory's `hardware` var, checked against what the GPUs say.

    Without a declared kind, it is inferred from the GPUs' product name, PCI ID, gfx arch and VRAM.
    A kind the cookbook has no configuration for (MI300A) is refused with its reason, declared or not.
    """
    hw = _declared_hardware(catalog, facts, str(declared)) if declared else _inferred_hardware(catalog, facts)
    if not hw.supported:
        raise InputError(hw.reason or f"hardware {hw.key} is not supported")
    return hw


def _declared_hardware(catalog: Catalog, facts: HostFacts | None, declared: str) -> Hardware:
    """The declared kind, unless the GPUs clearly are something else (another arch, or another named kind)."""
    hw = catalog.hw(declared)
    if facts is None or not facts.gpus:
        return hw
    guess = infer_hardware(catalog, facts.gpu_product or "", facts.gpu_arch, facts.gpu_vram_mb, facts.gpu_device_id)
    arch = facts.gpu_arch
    if (hw.arch and arch and arch != hw.arch) or (guess is not None and guess.key != hw.key):
        hint = "" if guess is None else f"; set hardware: {guess.key}" if guess.supported else f"; {guess.reason}"
        raise InputError(f"inventory says hardware {hw.key} ({hw.arch}) but the host's GPUs report {_describe(facts)}{hint}")
    return hw


def _inferred_hardware(catalog: Catalog, facts: HostFacts | None) -> Hardware:
    if facts is None or not facts.gpus:
        raise InputError("no `hardware` variable for this host and no GPU facts to infer it from")
    guess = infer_hardware(catalog, facts.gpu_product or "", facts.gpu_arch, facts.gpu_vram_mb, facts.gpu_device_id)
    if guess is None:
        raise InputError(f"cannot tell the hardware kind of GPUs {_describe(facts)}; set `hardware`")
    return guess


def _describe(facts: HostFacts) -> str:
    """What the GPUs say about themselves, for messages: "gfx942 (AMD Instinct MI300A, 64289 MB)"."""
    details = [facts.gpu_product or "mixed products"]
    if facts.gpu_vram_mb:
        details.append(f"{facts.gpu_vram_mb} MB")
    return f"{facts.gpu_arch or 'unknown arch'} ({', '.join(details)})"


_MODEL_NAME = re.compile(r"\b(MI\d{3}[A-Z]?|[HB]\d{3})\b")


def infer_hardware(
    catalog: Catalog, product: str, arch: str | None, vram_mb: int | None = None, device: str | None = None
) -> Hardware | None:
    """The one kind these GPUs can be, or None when the facts do not decide it.

    A kind is named by its product name or PCI ID; only when the tools print neither (a bare hex ID,
    "N/A") does the gfx arch stand in, and then the VRAM must single one kind out: MI300X, MI325X
    and MI300A are all gfx942, so the arch alone never picks one. A named model the catalog does
    not know (MI308X, MI250X) is not guessed at. A VRAM size that does not fit the named kind is not
    that kind.
    """
    pool = [hw for hw in catalog.hardware.values() if arch is None or hw.arch in (None, arch)]
    upper = product.upper()
    named = [hw for hw in pool if any(p.upper() in upper for p in hw.products) or (device and device in hw.device_ids)]
    if not named and _MODEL_NAME.search(upper):
        return None
    candidates = named or ([hw for hw in pool if hw.arch] if arch else [])
    if vram_mb:
        candidates = [hw for hw in candidates if hw.fits_vram(vram_mb)]
    return candidates[0] if len(candidates) == 1 else None


@dataclass(frozen=True)
class Deployment:
    """Everything `docker run` needs for one host; the config hash covers all of it."""

    model: Model
    hardware: Hardware
    version: str
    image: str
    container: str
    server: sglang.ServerSpec
    device_flags: tuple[str, ...]
    remote_dir: str
    hf_home: str
    env_file: str | None

    @property
    def volumes(self) -> list[tuple[str, str]]:
        return [(self.hf_home, CONTAINER_HF_HOME), (f"{self.remote_dir}/work", CONTAINER_WORKDIR),
                (self.cache_dir, CONTAINER_CACHE)]  # fmt: skip

    @property
    def cache_dir(self) -> str:
        return f"{self.remote_dir}/cache"

    def server_argv(self) -> list[str]:
        return sglang.server(self.server)

    def run_argv(self, config_hash: str | None = None) -> list[str]:
        labels = {
            MANAGED_LABEL: "true",
            MODEL_LABEL: self.model.key,
            PORT_LABEL: str(self.server.port),  # `status` and `logs` find the server without flags
        }
        if config_hash:
            labels[docker.CONFIG_LABEL] = config_hash
        return docker.run(
            self.container,
            self.image,
            self.server_argv(),
            device_flags=self.device_flags,
            volumes=self.volumes,
            env_file=self.env_file,
            env=CACHE_ENV,
            labels=labels,
        )

    def config_hash(self, image_id: str | None, secret_fingerprint: str = "") -> str:
        """Hash of what the container is: argv, image content, and a fingerprint of the secrets."""
        doc = {"argv": self.run_argv(), "image_id": image_id or self.image, "secrets": secret_fingerprint}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def secret_fingerprint(secrets: Mapping[str, str]) -> str:
    """Changes when a secret changes, reveals nothing usable about it."""
    if not secrets:
        return ""
    text = "\n".join(f"{k}={v}" for k, v in sorted(secrets.items()))
    return hashlib.sha256(b"llmfleet-secret-fingerprint\n" + text.encode()).hexdigest()[:16]


def build(catalog: Catalog, s: Settings, facts: HostFacts | None, has_secrets: bool, model: str | None = None) -> Deployment:
    """A host's Deployment from its settings (roles/*/defaults.yml documents each).

    ``model`` overrides the `model` setting (status and stop read it from the running container).
    """
    model_key = model or s.model
    if not model_key:
        raise InputError("no model given: pass --model scout|maverick")
    m = catalog.model(model_key)
    hardware = detect_hardware(catalog, facts, s.hardware)
    version, image = image_tag(catalog, s, hardware)
    if s.eagle3 and not m.eagle3_draft:
        raise InputError(f"model {m.key} has no EAGLE3 draft model in catalog/models.yml")
    spec = sglang.ServerSpec(
        hf_id=m.hf_id,
        tp=s.tp or hardware.gpus,
        quant=s.quant,
        tool_calls=s.tool_calls,
        eagle3_draft=m.eagle3_draft if s.eagle3 else None,
        context_length=s.context_length,
        host=s.bind_host,
        port=s.port,
        launcher=s.launcher or catalog.launcher(version),
        extra_args=s.server_extra_args,
        mem_fraction_static=s.mem_fraction_static,
    )
    return Deployment(
        model=m,
        hardware=hardware,
        version=version,
        image=image,
        container=s.container_name,
        server=spec,
        device_flags=tuple(catalog.device_flags[hardware.vendor]),
        remote_dir=s.remote_root,
        hf_home=s.hf_cache,
        env_file=f"{s.remote_root}/secrets/{s.container_name}.env" if has_secrets else None,
    )
