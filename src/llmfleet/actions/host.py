"""Actions that read a host: gather its facts (one round trip) and check it is fit to serve."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .. import deployment, hostlock
from .. import facts as factlib
from ..catalog import Catalog
from ..errors import InputError
from ..facts import HostFacts
from ..settings import Settings
from ..steps import CHANGED, OK, HostContext, StepFailed, spec


def fact_query(s: Settings, catalog: Catalog) -> factlib.FactQuery:
    """What to look at on the host; the image tag is a guess until the arch is known."""
    model = catalog.model(s.model) if s.model else None
    image = s.image or ""
    if not image and s.hardware:
        _, image = deployment.image_tag(catalog, s, catalog.hw(s.hardware))
    return factlib.FactQuery(
        image=image or "none",
        container=s.container_name,
        hf_home=s.hf_cache,
        hf_id=model.hf_id if model else "none/none",
    )


def gather(ctx: HostContext) -> HostFacts:
    """Facts for this host: from the host itself, or assumed from the inventory in dry-run."""
    if ctx.mode == "dry-run":
        if not ctx.settings.hardware:
            raise StepFailed("dry-run needs a `hardware` variable in the inventory (no host to ask)")
        hw = ctx.catalog.hw(ctx.settings.hardware)
        return factlib.assumed(hw.vendor, hw.gpus, hw.arch, hw.products[0] if hw.products else hw.key)
    query = fact_query(ctx.settings, ctx.catalog)
    result = ctx.probe(factlib.gather_command(query), timeout=120)
    ctx.state.facts_image = query.image
    return factlib.parse(result.stdout)


def gather_facts(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    f = ctx.state.facts = gather(ctx)
    ctx.run.keep(ctx.name, "facts.json", json.dumps(f.to_json(), indent=2, sort_keys=True))
    summary = f"{len(f.gpus)} x {f.gpu_product or '?'} ({f.gpu_arch or '?'}), docker {f.docker_version or 'absent'}"
    return OK, summary


# --- preflight checks: pure functions of (facts, vars, deployment) ----------------------


@dataclass(frozen=True)
class Check:
    ok: bool
    message: str
    fix: str = ""


def check_docker(f: HostFacts, s: Settings, d: deployment.Deployment, has_token: bool) -> Check:
    if f.docker_version:
        return Check(True, f"docker {f.docker_version}")
    return Check(False, f"docker: {f.docker_error}", "install Docker and start its daemon (systemctl start docker)")


def check_devices(f: HostFacts, s: Settings, d: deployment.Deployment, has_token: bool) -> Check:
    if d.hardware.vendor != "amd":
        return Check(True, "not an AMD host")
    if not f.kfd:
        return Check(False, "/dev/kfd is missing", "load the driver: sudo modprobe amdgpu (install amdgpu-dkms if missing)")
    need = d.server.tp
    if len(f.render_nodes) < need:
        return Check(
            False,
            f"{len(f.render_nodes)} render nodes under /dev/dri, --tp {need} needs {need}",
            "check `ls /dev/dri` and `dmesg | grep amdgpu`; a GPU may have failed to initialise",
        )
    return Check(True, f"/dev/kfd and {len(f.render_nodes)} render nodes")


def check_driver(f: HostFacts, s: Settings, d: deployment.Deployment, has_token: bool) -> Check:
    if d.hardware.vendor != "amd":
        return Check(True, "not an AMD host")
    if f.amdgpu_loaded:
        return Check(True, "amdgpu loaded")
    return Check(False, "amdgpu kernel module not loaded", "sudo modprobe amdgpu")


def check_gpus(f: HostFacts, s: Settings, d: deployment.Deployment, has_token: bool) -> Check:
    if f.gpu_error:
        return Check(False, f.gpu_error, "install ROCm's amd-smi (or rocm-smi) and check the driver")
    if len(f.gpus) < d.server.tp:
        return Check(False, f"{len(f.gpus)} GPUs visible, --tp {d.server.tp} needs {d.server.tp}", "check amd-smi list")
    return Check(True, f"{len(f.gpus)} x {f.gpu_product} ({f.gpu_arch}) -> image {d.image}")


def check_numa(f: HostFacts, s: Settings, d: deployment.Deployment, has_token: bool) -> Check:
    if f.numa_balancing == 0:
        return Check(True, "numa_balancing 0")
    if f.numa_balancing is None:
        return Check(False, "cannot read /proc/sys/kernel/numa_balancing", "check the kernel")
    return Check(
        False,
        f"numa_balancing is {f.numa_balancing} (GPUs can hang while the kernel rebalances)",
        "sudo sh -c 'echo 0 > /proc/sys/kernel/numa_balancing' and persist it in /etc/sysctl.d",
    )


def check_disk(f: HostFacts, s: Settings, d: deployment.Deployment, has_token: bool) -> Check:
    if f.model_cached:
        return Check(True, f"{d.model.hf_id} already in {d.hf_home}")
    need_gb = d.model.weights_gb + s.disk_margin_gb
    if f.disk_free_bytes is None:
        return Check(False, f"cannot read free space for {d.hf_home}", "check the path exists and df works")
    free_gb = f.disk_free_bytes / 1e9
    if free_gb < need_gb:
        return Check(
            False,
            f"{free_gb:.0f} GB free at {f.disk_path}, {d.model.key} needs ~{need_gb} GB for weights",
            "point hf_home at a bigger volume, or pre-download the weights there",
        )
    return Check(True, f"{free_gb:.0f} GB free at {f.disk_path}")


def check_hf_token(f: HostFacts, s: Settings, d: deployment.Deployment, has_token: bool) -> Check:
    if not d.model.gated or has_token:
        return Check(True, "token present" if has_token else "model not gated")
    if f.model_cached:
        return Check(True, "no HF token, but the weights are already in the host's cache")
    return Check(False, f"{d.model.hf_id} is gated and no HF token was given", "export HF_TOKEN or pass --hf-token-file")


CHECKS: dict[str, Callable[[HostFacts, Settings, deployment.Deployment, bool], Check]] = {
    "docker": check_docker,
    "devices": check_devices,
    "driver": check_driver,
    "gpus": check_gpus,
    "numa_balancing": check_numa,
    "disk": check_disk,
    "hf_token": check_hf_token,
}


def preflight(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    facts = ctx.facts
    # status, logs, stop: without --model, the model is whatever the running container serves
    running_model = facts.container.labels.get(deployment.MODEL_LABEL) if facts.container else None
    has_token = ctx.run.hf_token is not None
    try:
        dep = deployment.build(ctx.catalog, ctx.settings, facts, has_token, model=ctx.settings.model or running_model)
    except InputError as exc:
        raise StepFailed(exc.message) from None
    ctx.state.deployment = dep
    ctx.run.note(ctx.name, hardware=dep.hardware.key, image=dep.image, sglang_version=dep.version, model=dep.model.key)
    if ctx.mode == "dry-run":
        note = "" if has_token or not dep.model.gated else "; note: no HF token given for a gated model"
        return OK, f"host checks not run (dry-run); {dep.hardware.key} from the inventory -> image {dep.image}{note}"
    skip = set(ctx.settings.preflight_skip)
    problems = []
    for name in args.get("checks") or list(CHECKS):
        if name not in CHECKS:
            raise StepFailed(f"unknown preflight check {name!r}")
        if name in skip:
            continue
        result = CHECKS[name](facts, ctx.settings, dep, has_token)
        if not result.ok:
            problems.append(f"{result.message} -> fix: {result.fix}")
    if problems:
        raise StepFailed("; ".join(problems))
    return OK, f"{dep.hardware.key}, {len(facts.gpus)} GPUs, image {dep.image}"


def unlock(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Break a stale deploy lock (a run that died without releasing it)."""
    root = ctx.settings.remote_root
    if ctx.mode != "dry-run" and not ctx.probe(["test", "-d", hostlock.lock_dir(root)]).ok:
        return OK, "not locked"
    ctx.change(hostlock.release(root))
    return CHANGED, "lock removed"


ACTIONS = {
    "unlock": spec(unlock),
    "gather_facts": spec(gather_facts, provides=["facts"]),
    "preflight": spec(preflight, args=["checks"], requires=["facts"], provides=["deployment"]),
}
