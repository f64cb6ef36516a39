"""A host's settings: declared once by the roles, resolved, checked, typed.

Every variable llmfleet reads is a field of :class:`Settings` (its type, and so the
check) and has exactly one default, in one ``roles/<role>/defaults.yml`` (its value
and its documentation). Nothing else holds a default: actions read fields of the
settings object, never ``vars.get(key, literal)``.

What is checked, and where an error points (see docs/inventory.md, "Variables"):

* ``--set`` and playbook ``vars:`` hold only settings: an unknown key is an error with
  a did-you-mean (``--set contxt_length=8192`` -> ``did you mean 'context_length'?``).
* Inventory variables are shared with Ansible and with the operator's own tooling, so
  ``ansible_*`` and anything else pass through untouched, except a key so close to a
  setting that it can only be a typo of it (an error with the file:line).
* A value of the wrong type is an error naming the expected type and where it was set.
"""

from __future__ import annotations

import difflib
import shlex
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import msgspec

from . import paths, schema, yamlsrc
from .errors import InputError
from .variables import COMMAND_LINE, INVENTORY, PLAYBOOK, ResolvedVars, resolve

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
HostPath = Annotated[str, msgspec.Meta(pattern=r"^/[^\n\x00]*$")]  # an absolute path on the host

PASS_THROUGH_PREFIXES = ("ansible_",)  # Ansible's own variables: read by the inventory, never checked here
TYPO_CUTOFF = 0.85  # how close an inventory key must be to a setting to count as its typo

PREFLIGHT_CHECKS = ("docker", "devices", "driver", "gpus", "numa_balancing", "disk", "hf_token")


class Settings(schema.Struct, frozen=True, kw_only=True):
    """Every setting, typed. Defaults live in roles/*/defaults.yml, never here."""

    # preflight: the host and where things live on it
    model: str | None
    hardware: str | None
    lab: bool
    known_hosts_file: str | None
    ssh_control_persist: NonNegative
    remote_dir: HostPath
    hf_home: HostPath | None
    sglang_version: str | None
    preflight_skip: list[Literal["docker", "devices", "driver", "gpus", "numa_balancing", "disk", "hf_token"]]
    disk_margin_gb: NonNegative
    container_name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    # image
    image_source: Literal["pull", "push"]
    pull_policy: Literal["missing", "always"]
    pull_timeout: Seconds
    control_docker_host: str | None
    image: str | None
    image_relay: bool
    image_compression: Literal["auto", "zstd", "none"]
    image_push_layers: Literal["missing", "all"]
    relay_stall_timeout: Positive
    # sglang_server
    port: Port
    bind_host: str
    tp: Positive | None
    quant: Literal["bf16", "fp8"]
    tool_calls: bool
    eagle3: bool
    context_length: Positive
    launcher: Literal["serve", "module"] | None
    extra_server_args: list[str] | str
    mem_fraction_static: Fraction | None
    # health
    health_timeout: Seconds
    health_interval: Seconds
    # rollout (a serving host's replacement, rollback, restart)
    drain_timeout: Seconds
    stop_timeout: Positive
    gpu_free_timeout: Seconds
    gpu_free_mb: NonNegative
    rollback: bool
    gate_gsm8k: NonNegative
    gate_min_accuracy: Fraction
    # bench
    profile: str
    dataset: Literal["random", "random-ids", "sharegpt-file"] | None
    num_prompts: Positive | None
    max_concurrency: Positive | None
    input_len: Positive | None
    output_len: Positive | None
    warmup: bool
    sharegpt_file: str | None
    tokenizer: str | None
    seed: int | None
    bench_timeout: Seconds
    telemetry: bool
    bench_forks: Positive | None
    # bench through the router (invoke bench --via-router)
    router_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+$")] | None
    router_bench_host: str | None
    # the router on a host (invoke router.up --on HOST)
    router_port: Annotated[int, msgspec.Meta(ge=1, le=65534)]
    router_policy: Literal["cache_aware", "round_robin", "random", "power_of_two"]
    router_image: str | None
    router_bundle: str | None
    router_python: Annotated[str, msgspec.Meta(pattern=r"^3\.[0-9]+$")]
    # accuracy
    num_questions: Positive | None
    gsm8k_file: str | None
    parallel: Positive | None
    accuracy_timeout: Seconds
    # logs
    log_lines: Positive
    # host_tuning (playbooks/host-tuning.yml)
    sysctl_conf_dir: str
    docker_daemon_json: str
    docker_registry_mirror: str | None
    docker_log_max_size: Annotated[str, msgspec.Meta(pattern=r"^[0-9]+[kmg]$")]
    docker_log_max_file: Positive
    docker_data_root: str | None
    jit_cache_dir: str | None

    @property
    def remote_root(self) -> str:
        """The toolkit's folder on the host, without a trailing slash."""
        return self.remote_dir.rstrip("/") or "/"

    @property
    def hf_cache(self) -> str:
        """The host's Hugging Face cache: ``hf_home``, or <remote_dir>/hf."""
        return self.hf_home or f"{self.remote_root}/hf"

    @property
    def jit_cache(self) -> str:
        """Where SGLang's and AITER's JIT kernels are cached on the host: ``jit_cache_dir``, or <remote_dir>/cache."""
        return self.jit_cache_dir or f"{self.remote_root}/cache"

    @property
    def server_extra_args(self) -> tuple[str, ...]:
        extra = self.extra_server_args
        return tuple(shlex.split(extra) if isinstance(extra, str) else extra)


SETTING_NAMES: frozenset[str] = frozenset(schema.field_names(Settings))


@dataclass(frozen=True)
class Declared:
    """The roles' defaults: one value per setting, and the file:line that declares it."""

    values: dict[str, Any]
    where: dict[str, str]  # setting -> file:line of its default
    owner: dict[str, str]  # setting -> role


def load_declared(roles_dir: Path | None = None) -> Declared:
    """Read every role's defaults.yml; each setting must be declared exactly once."""
    roles_dir = roles_dir or paths.roles_dir()
    merged: dict[str, Any] = {}
    where: dict[str, str] = {}
    owner: dict[str, str] = {}
    for path in sorted(roles_dir.glob("*/defaults.yml")):
        doc = yamlsrc.load(path) or yamlsrc.LineDict()
        if not isinstance(doc, dict):
            raise InputError("defaults.yml must be a mapping", path, 1)
        role = path.parent.name
        for key, value in doc.items():
            line = doc.line_of(key) if isinstance(doc, yamlsrc.LineDict) else None
            if key not in SETTING_NAMES:
                raise InputError(unknown_message(str(key), "a role's defaults"), path, line)
            if key in owner:
                raise InputError(f"{key!r} is declared by role {owner[key]!r} already: one default per setting", path, line)
            owner[str(key)] = role
            merged[str(key)] = value
            where[str(key)] = f"{paths.shown(path)}:{line}" if line else paths.shown(path)
    missing = sorted(SETTING_NAMES - set(owner))
    if missing:
        raise InputError(f"settings without a default in any roles/*/defaults.yml: {', '.join(missing)}", roles_dir)
    return Declared(merged, where, owner)


@lru_cache(maxsize=4)
def declared(roles_dir: str | None = None) -> Declared:
    return load_declared(Path(roles_dir) if roles_dir else None)


def unknown_message(key: str, where: str) -> str:
    hint = difflib.get_close_matches(key, sorted(SETTING_NAMES), n=1, cutoff=0.6)
    return f"unknown setting {key!r} in {where}" + (f" (did you mean {hint[0]!r}?)" if hint else "")


def check_keys(cli_vars: Mapping[str, Any], playbook_vars: Mapping[str, Any]) -> None:
    """--set and playbook vars hold only settings (and Ansible's own variables)."""
    for key in cli_vars:
        if not _passes_through(key) and key not in SETTING_NAMES:
            raise InputError(unknown_message(str(key), f"--set {key}=..."))
    for key in playbook_vars:
        if not _passes_through(key) and key not in SETTING_NAMES:
            line = playbook_vars.line_of(key) if isinstance(playbook_vars, yamlsrc.LineDict) else None
            raise InputError(unknown_message(str(key), "the playbook's vars"), getattr(playbook_vars, "path", None), line)


def inventory_typo(key: str) -> str | None:
    """The setting an unknown inventory key is a typo of, if it can only be one."""
    if key in SETTING_NAMES or _passes_through(key):
        return None
    found = difflib.get_close_matches(key, sorted(SETTING_NAMES), n=1, cutoff=TYPO_CUTOFF)
    return found[0] if found else None


def _passes_through(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(PASS_THROUGH_PREFIXES)


@dataclass(frozen=True)
class HostSettings:
    """What one host gets: the typed settings and every variable with its source."""

    settings: Settings
    resolved: ResolvedVars


def for_host(host: Any, playbook_vars: Mapping[str, Any], cli_vars: Mapping[str, Any],
             decl: Declared | None = None) -> HostSettings:  # fmt: skip
    """Resolve a host's variables (role defaults < inventory < playbook < command line) and check them."""
    decl = decl or declared()
    resolved = resolve(decl.values, host, playbook_vars, cli_vars, default_sources=decl.where)
    if host is not None:
        for key in host.vars:
            typo = inventory_typo(str(key))
            if typo:
                raise InputError(
                    f"unknown setting {key!r} for host {host.name} (did you mean {typo!r}?); "
                    f"set in {resolved.source(key)}"
                )
    values = {k: resolved[k] for k in SETTING_NAMES}
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _type_error(exc, resolved, host) from None
    return HostSettings(settings, resolved)


def _type_error(exc: msgspec.ValidationError, resolved: ResolvedVars, host: Any) -> InputError:
    text = str(exc)
    message, _, at = text.partition(" - at `$.")
    key = at.split("`")[0].split(".")[0].split("[")[0] if at else ""
    choices = allowed_values(key)
    if choices and "enum" in message:
        message = f"must be one of: {', '.join(choices)}"
    if key in resolved:
        layer = resolved.layer(key)
        value = resolved[key]
        where = resolved.source(key)
        who = f" for host {host.name}" if host is not None and layer in (INVENTORY, PLAYBOOK) else ""
        if layer == COMMAND_LINE:
            return InputError(f"{resolved.chain(key)[-1].where} {value!r}: {message}")
        return InputError(f"setting {key!r} = {value!r}{who}: {message} (set in {where})")
    return InputError(f"settings: {text}")


def allowed_values(key: str) -> list[str]:
    """The values a Literal-typed setting takes (for messages and help)."""
    hint = typing.get_type_hints(Settings).get(key)
    found: list[str] = []

    def walk(t: Any) -> None:
        if typing.get_origin(t) is Literal:
            found.extend(str(a) for a in typing.get_args(t))
        for arg in typing.get_args(t):
            walk(arg)

    walk(hint)
    return found


def check_catalog(settings: Settings, catalog: Any) -> None:
    """The settings that name catalog entries name existing ones (before anything connects)."""
    if settings.model:
        catalog.model(settings.model)
    if settings.hardware:
        catalog.hw(settings.hardware)
    if settings.sglang_version:
        catalog.version(settings.sglang_version)
    catalog.select_profiles(settings.profile)
