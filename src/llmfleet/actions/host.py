"""Actions that read a host: gather its facts (one round trip) and check it is fit to serve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .. import deployment
from .. import facts as factlib
from ..errors import InputError
from ..facts import HostFacts
from ..runner import CHANGED, OK, HostContext, StepFailed


def fact_query(v: Mapping[str, Any], catalog: Any) -> factlib.FactQuery:
    """What to look at on the host; the image tag is a guess until the arch is known."""
    model = catalog.model(str(v["model"])) if v.get("model") else None
    image = str(v.get("image") or "")
    if not image and v.get("hardware"):
        _, image = deployment.image_tag(catalog, v, catalog.hw(str(v["hardware"])))
    return factlib.FactQuery(
        image=image or "none",
        container=deployment.container_name(v),
        hf_home=deployment.hf_home(v),
        hf_id=model.hf_id if model else "none/none",
    )


def gather(ctx: HostContext) -> HostFacts:
    """Facts for this host: from the host itself, or assumed from the inventory in dry-run."""
    if ctx.mode == "dry-run":
        hw_key = ctx.vars.get("hardware")
        if not hw_key:
            raise StepFailed("dry-run needs a `hardware` variable in the inventory (no host to ask)")
        hw = ctx.catalog.hw(str(hw_key))
        return factlib.assumed(hw.vendor, hw.gpus, hw.arch, hw.products[0] if hw.products else hw.key)
    query = fact_query(ctx.vars, ctx.catalog)
    result = ctx.probe(factlib.gather_command(query), timeout=120)
    ctx.state["facts_image"] = query.image
    return factlib.parse(result.stdout)


def gather_facts(ctx: HostContext, args: dict) -> tuple[str, str]:
    ctx.facts = gather(ctx)
    ctx.run.keep(ctx.name, "facts.json", _facts_json(ctx.facts))
    f = ctx.facts
    summary = f"{len(f.gpus)} x {f.gpu_product or '?'} ({f.gpu_arch or '?'}), docker {f.docker_version or 'absent'}"
    return OK, summary


def _facts_json(f: HostFacts) -> str:
    import json

    return json.dumps(f.to_json(), indent=2, sort_keys=True)


# --- preflight checks: pure functions of (facts, vars, deployment) ----------------------


@dataclass(frozen=True)
class Check:
    ok: bool
    message: str
    fix: str = ""


def check_docker(f: HostFacts, v: Mapping[str, Any], d: deployment.Deployment) -> Check:
    if f.docker_version:
        return Check(True, f"docker {f.docker_version}")
    return Check(False, f"docker: {f.docker_error}", "install Docker and start its daemon (systemctl start docker)")


def check_devices(f: HostFacts, v: Mapping[str, Any], d: deployment.Deployment) -> Check:
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


def check_driver(f: HostFacts, v: Mapping[str, Any], d: deployment.Deployment) -> Check:
    if d.hardware.vendor != "amd":
        return Check(True, "not an AMD host")
    if f.amdgpu_loaded:
        return Check(True, "amdgpu loaded")
    return Check(False, "amdgpu kernel module not loaded", "sudo modprobe amdgpu")


def check_gpus(f: HostFacts, v: Mapping[str, Any], d: deployment.Deployment) -> Check:
    if f.gpu_error:
        return Check(False, f.gpu_error, "install ROCm's amd-smi (or rocm-smi) and check the driver")
    if len(f.gpus) < d.server.tp:
        return Check(False, f"{len(f.gpus)} GPUs visible, --tp {d.server.tp} needs {d.server.tp}", "check amd-smi list")
    return Check(True, f"{len(f.gpus)} x {f.gpu_product} ({f.gpu_arch}) -> image {d.image}")


def check_numa(f: HostFacts, v: Mapping[str, Any], d: deployment.Deployment) -> Check:
    if f.numa_balancing == 0:
        return Check(True, "numa_balancing 0")
    if f.numa_balancing is None:
        return Check(False, "cannot read /proc/sys/kernel/numa_balancing", "check the kernel")
    return Check(
        False,
        f"numa_balancing is {f.numa_balancing} (GPUs can hang while the kernel rebalances)",
        "sudo sh -c 'echo 0 > /proc/sys/kernel/numa_balancing' and persist it in /etc/sysctl.d",
    )


def check_disk(f: HostFacts, v: Mapping[str, Any], d: deployment.Deployment) -> Check:
    if f.model_cached:
        return Check(True, f"{d.model.hf_id} already in {d.hf_home}")
    need_gb = d.model.weights_gb + int(v.get("disk_margin_gb", 50))
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


def check_hf_token(f: HostFacts, v: Mapping[str, Any], d: deployment.Deployment, has_token: bool = False) -> Check:
    if not d.model.gated or has_token:
        return Check(True, "token present" if has_token else "model not gated")
    if f.model_cached:
        return Check(True, "no HF token, but the weights are already in the host's cache")
    return Check(False, f"{d.model.hf_id} is gated and no HF token was given", "export HF_TOKEN or pass --hf-token-file")


CHECKS: dict[str, Callable[..., Check]] = {
    "docker": check_docker,
    "devices": check_devices,
    "driver": check_driver,
    "gpus": check_gpus,
    "numa_balancing": check_numa,
    "disk": check_disk,
    "hf_token": check_hf_token,
}


def preflight(ctx: HostContext, args: dict) -> tuple[str, str]:
    assert ctx.facts is not None, "gather_facts runs first"
    v = dict(ctx.vars)
    if not v.get("model") and ctx.facts.container is not None:
        # status, logs, stop: the model is whatever the running container serves
        v["model"] = ctx.facts.container.labels.get("org.llmfleet.model")
    try:
        dep = deployment.build(ctx.catalog, v, ctx.facts, bool(ctx.run.secrets))
    except InputError as exc:
        raise StepFailed(exc.message) from None
    ctx.state["deployment"] = dep
    ctx.run.note(ctx.name, hardware=dep.hardware.key, image=dep.image, sglang_version=dep.version, model=dep.model.key)
    if ctx.mode == "dry-run":
        note = "" if ctx.run.secrets or not dep.model.gated else "; note: no HF token given for a gated model"
        return OK, f"host checks not run (dry-run); {dep.hardware.key} from the inventory -> image {dep.image}{note}"
    skip = set(ctx.vars.get("preflight_skip") or [])
    problems = []
    for name in args.get("checks") or list(CHECKS):
        if name not in CHECKS:
            raise StepFailed(f"unknown preflight check {name!r}")
        if name in skip:
            continue
        fn = CHECKS[name]
        result = fn(ctx.facts, ctx.vars, dep, bool(ctx.run.secrets)) if name == "hf_token" else fn(ctx.facts, ctx.vars, dep)
        if not result.ok:
            problems.append(f"{result.message} -> fix: {result.fix}")
    if problems:
        raise StepFailed("; ".join(problems))
    return OK, f"{dep.hardware.key}, {len(ctx.facts.gpus)} GPUs, image {dep.image}"


def unlock(ctx: HostContext, args: dict) -> tuple[str, str]:
    """Break a stale deploy lock (a run that died without releasing it)."""
    from .. import hostlock

    root = deployment.remote_dir(ctx.vars)
    if ctx.mode != "dry-run" and not ctx.probe(["test", "-d", hostlock.lock_dir(root)]).ok:
        return OK, "not locked"
    ctx.change(hostlock.release(root))
    return CHANGED, "lock removed"


ACTIONS = {
    "unlock": (unlock, set()),
    "gather_facts": (gather_facts, set()),
    "preflight": (preflight, {"checks"}),
}
