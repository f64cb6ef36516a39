"""What a host should run, derived from its variables, its facts and the catalog.

Pure: the same inputs give the same image tag, server command and `docker run`
argv on every call, which is what makes the config hash (and so idempotent
deploys) and the dry-run output trustworthy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from .catalog import Catalog, Hardware, Model
from .commands import docker, sglang
from .errors import InputError
from .facts import HostFacts

MANAGED_LABEL = "org.llmfleet.managed"
PORT_LABEL = "org.llmfleet.port"
CONTAINER_WORKDIR = "/llmfleet"  # the host's <remote_dir>/work inside the container
CONTAINER_HF_HOME = "/root/.cache/huggingface"


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


DEFAULT_REMOTE_DIR = "/var/lib/llmfleet"
DEFAULT_CONTAINER = "llmfleet-sglang"


def remote_dir(v: Mapping[str, Any]) -> str:
    """The toolkit's folder on a host (roles/preflight/defaults.yml documents it)."""
    return str(v.get("remote_dir") or DEFAULT_REMOTE_DIR).rstrip("/")


def container_name(v: Mapping[str, Any]) -> str:
    return str(v.get("container_name") or DEFAULT_CONTAINER)


def hf_home(v: Mapping[str, Any]) -> str:
    """The host's Hugging Face cache: `hf_home`, or <remote_dir>/hf."""
    return str(v.get("hf_home") or f"{remote_dir(v)}/hf")


def image_tag(catalog: Catalog, v: Mapping[str, Any], hardware: Hardware) -> tuple[str, str]:
    """(SGLang version, image tag): the `image` variable, or the catalog's tag for this hardware."""
    version = str(v.get("sglang_version") or catalog.images["default_version"])
    return version, str(v.get("image") or catalog.image_tag(version, hardware))


def detect_hardware(catalog: Catalog, facts: HostFacts | None, declared: str | None) -> Hardware:
    """The host's hardware kind: the inventory's `hardware` var, checked against what the GPUs say.

    Without a declared kind, it is inferred from the GPU product and gfx arch.
    """
    if declared:
        hw = catalog.hw(str(declared))
        if facts is None or not facts.gpus:
            return hw
        arch, product = facts.gpu_arch, facts.gpu_product or ""
        if hw.arch and arch and arch != hw.arch:
            guess = infer_hardware(catalog, product, arch)
            hint = f"; set hardware: {guess.key}" if guess else ""
            raise InputError(
                f"inventory says hardware {hw.key} ({hw.arch}) but the host's GPUs report {arch} ({product}){hint}"
            )
        return hw
    if facts is None or not facts.gpus:
        raise InputError("no `hardware` variable for this host and no GPU facts to infer it from")
    guess = infer_hardware(catalog, facts.gpu_product or "", facts.gpu_arch)
    if guess is None:
        raise InputError(f"cannot tell the hardware kind of GPUs {facts.gpu_product!r} ({facts.gpu_arch}); set `hardware`")
    return guess


def infer_hardware(catalog: Catalog, product: str, arch: str | None) -> Hardware | None:
    upper = product.upper()
    for hw in catalog.hardware.values():
        if any(p.upper() in upper for p in hw.products) and (arch is None or hw.arch in (None, arch)):
            return hw
    by_arch = catalog.hardware_for_arch(arch) if arch else []
    return by_arch[0] if by_arch else None


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
        return [(self.hf_home, CONTAINER_HF_HOME), (f"{self.remote_dir}/work", CONTAINER_WORKDIR)]

    def server_argv(self) -> list[str]:
        return sglang.server(self.server)

    def run_argv(self, config_hash: str | None = None) -> list[str]:
        labels = {
            MANAGED_LABEL: "true",
            f"{docker.LABEL_PREFIX}.model": self.model.key,
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


def build(catalog: Catalog, v: Mapping[str, Any], facts: HostFacts | None, has_secrets: bool) -> Deployment:
    """A host's Deployment from its resolved variables (see roles/*/defaults.yml for each)."""
    if not v.get("model"):
        raise InputError("no model given: pass --model scout|maverick")
    model = catalog.model(str(v["model"]))
    hardware = detect_hardware(catalog, facts, v.get("hardware"))
    version, image = image_tag(catalog, v, hardware)
    launcher = str(v.get("launcher") or catalog.launcher(version))
    quant = str(v.get("quant", "bf16"))
    if quant not in ("bf16", "fp8"):
        raise InputError(f"--quant takes bf16 or fp8, not {quant!r}")
    eagle3 = _bool(v.get("eagle3", False))
    if eagle3 and not model.eagle3_draft:
        raise InputError(f"model {model.key} has no EAGLE3 draft model in catalog/models.yml")
    extra = v.get("extra_server_args") or []
    if isinstance(extra, str):
        import shlex

        extra = shlex.split(extra)
    try:
        context_length = int(v.get("context_length", 65536))
        port = int(v.get("port", 8000))
        tp = int(v.get("tp") or hardware.gpus)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad number in variables: {exc}") from None
    spec = sglang.ServerSpec(
        hf_id=model.hf_id,
        tp=tp,
        quant=quant,
        tool_calls=_bool(v.get("tool_calls", False)),
        eagle3_draft=model.eagle3_draft if eagle3 else None,
        context_length=context_length,
        host=str(v.get("bind_host", "0.0.0.0")),
        port=port,
        launcher=launcher,
        extra_args=tuple(str(a) for a in extra),
    )
    root = remote_dir(v)
    container = container_name(v)
    return Deployment(
        model=model,
        hardware=hardware,
        version=version,
        image=image,
        container=container,
        server=spec,
        device_flags=tuple(catalog.device_flags[hardware.vendor]),
        remote_dir=root,
        hf_home=hf_home(v),
        env_file=f"{root}/secrets/{container}.env" if has_secrets else None,
    )
