"""Replacing a serving host without dropping a request: drain, stop, keep, start, gate, roll back.

The order for one host (deploy with a changed config, `invoke restart`, `invoke rollback`):
out of the router (if one is up) -> drained (no request in flight, or `drain_timeout`) ->
old server stopped gracefully (`docker stop -t`) and KEPT as ``<name>-previous`` -> GPU memory
seen free (amd-smi / rocm-smi) -> new server started (kernel caches on a host volume) ->
health gate (/health, /v1/models, a real generation, optionally a few GSM8K questions with the
real client) -> back into the router. A failed
gate puts the previous container back (no pull; gated again) unless `rollback` is off.
Every change goes to the host's audit log and the run's manifest with the image IDs.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from .. import deployment, diagnose, hostlock, metrics, router
from ..commands import docker, http_probe, sglang
from ..steps import CHANGED, OK, HostContext, StepFailed, spec
from . import bench, server

PREVIOUS = "-previous"
SWAP = "-swap"

def previous_name(name: str) -> str:
    return f"{name}{PREVIOUS}"


def worker_url(ctx: HostContext, port: int) -> str:
    return f"http://{ctx.host.address}:{port}"


# ------------------------------------------------------------------ router


def _router() -> router.Client | None:
    st = router.current()
    return router.Client(st.url) if st is not None else None


def leave_router(ctx: HostContext, worker: str) -> bool:
    """Take the host out of rotation; True when the router had it (so it goes back in afterwards)."""
    client = _router()
    if client is None:
        return False
    if ctx.mode != "apply":
        ctx.planned.append(f"remove {worker} from the router at {client.url}")
        return True
    try:
        removed = client.remove(worker)
    except (router.RouterError, OSError) as exc:
        raise StepFailed(f"could not take {worker} out of the router {client.url}: {exc} -> check `invoke router.status`") from None
    if removed:
        ctx.say(f"out of the router {client.url}")
        _audit(ctx, f"router remove {worker}")
    return removed


def join_router(ctx: HostContext, worker: str) -> None:
    client = _router()
    if client is None:
        return
    if ctx.mode != "apply":
        ctx.planned.append(f"add {worker} to the router at {client.url}")
        return
    try:
        client.add(worker)
    except (router.RouterError, OSError) as exc:
        raise StepFailed(f"{worker} serves but the router {client.url} did not take it back: {exc}") from None
    ctx.say(f"back in the router {client.url}")
    _audit(ctx, f"router add {worker}")


# ------------------------------------------------------------------ host probes


def in_flight(ctx: HostContext, container: str, port: int) -> int:
    """Requests the server is working on (-1: it cannot say)."""
    r = ctx.probe(docker.exec_(container, http_probe.argv(port, http_probe.LOAD)), timeout=30)
    return http_probe.load_answer(r.stdout) if r.ok else -1


def drain(ctx: HostContext, container: str, port: int) -> str:
    """Wait until no request is in flight (twice in a row), or `drain_timeout`."""
    if ctx.mode != "apply":
        ctx.planned.append(f"wait until {container} has no request in flight (at most {ctx.settings.drain_timeout:.0f}s)")
        return ""
    start = time.monotonic()
    quiet = 0
    while time.monotonic() - start < ctx.settings.drain_timeout:
        n = in_flight(ctx, container, port)
        if n < 0:
            return "drain: the server does not report its load; stopped after the router let go"
        quiet = quiet + 1 if n == 0 else 0
        if quiet >= 2:
            return f"drained in {time.monotonic() - start:.1f}s"
        time.sleep(0.5)
    return f"drain_timeout {ctx.settings.drain_timeout:.0f}s reached with requests in flight"


def parse_vram_used(text: str) -> list[float] | None:
    """MB used per GPU from `amd-smi metric --mem-usage --json` (list or {"gpu_data": [...]}) or
    `rocm-smi --showmeminfo vram --json` ({"cardN": {"VRAM Total Used Memory (B)": ...}})."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    rows = doc.get("gpu_data", doc) if isinstance(doc, dict) else doc
    if isinstance(rows, list):
        out = []
        for rec in rows:
            used = (rec.get("mem_usage") or {}).get("used_vram") if isinstance(rec, dict) else None
            value = used.get("value") if isinstance(used, dict) else used
            if not isinstance(value, (int, float)):
                return None
            out.append(float(value))
        return out or None
    if isinstance(doc, dict):
        cards = [v for k, v in sorted(doc.items()) if k.startswith("card") and isinstance(v, dict)]
        try:
            return [int(c["VRAM Total Used Memory (B)"]) / 1e6 for c in cards] or None
        except (KeyError, ValueError, TypeError):
            return None
    return None


VRAM_PROBE = ("amd-smi metric --mem-usage --json 2>/dev/null || rocm-smi --showmeminfo vram --json 2>/dev/null")


def wait_gpu_free(ctx: HostContext) -> str:
    """GPU memory below `gpu_free_mb` on every GPU before a server starts (a killed one often leaves it held)."""
    limit, timeout = ctx.settings.gpu_free_mb, ctx.settings.gpu_free_timeout
    if ctx.mode != "apply":
        ctx.planned.append(f"wait until every GPU uses under {limit} MB of VRAM (at most {timeout:.0f}s)")
        return ""
    start = time.monotonic()
    noted = False
    while True:
        used = parse_vram_used(ctx.probe(["sh", "-c", VRAM_PROBE], timeout=60).stdout)
        if used is None:
            return "GPU memory: no amd-smi/rocm-smi reading; not checked"
        busy = [i for i, mb in enumerate(used) if mb >= limit]
        if not busy:
            return f"GPU memory free after {time.monotonic() - start:.0f}s"
        if time.monotonic() - start > timeout:
            worst = max(used)
            raise StepFailed(f"GPU memory still held after {timeout:.0f}s on GPU(s) {busy} (up to {worst:.0f} MB) with the "
                             "server stopped -> see `amd-smi process` for who holds it and stop it, or reset the GPUs")  # fmt: skip
        if not noted:
            ctx.say(f"waiting for GPU memory to be freed (GPU(s) {busy} still hold it)")
            noted = True
        time.sleep(2)


def cache_note(ctx: HostContext, dep: deployment.Deployment) -> None:
    """Say when this start has no kernel cache yet (a cold first start compiles for 10-15 minutes)."""
    if ctx.mode != "apply":
        return
    r = ctx.probe(["sh", "-c", 'ls -A "$1" 2>/dev/null | head -n 1', "sh", dep.cache_dir], timeout=30)
    if not r.stdout.strip():
        ctx.say(f"first start on this host: kernels compile into {dep.cache_dir} (10-15 min on real GPUs; later starts reuse it)")


# ------------------------------------------------------------------ the gate


class GateFailed(StepFailed):
    """The new server serves but fails a quality check; ``cause`` is the recap's one-line reason."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


def stage_gate_data(ctx: HostContext) -> None:
    """Stage the GSM8K file the gate needs (bench's stage_data) before the host leaves the router."""
    if not ctx.settings.gate_gsm8k:
        return
    if not ctx.settings.gsm8k_file:
        raise StepFailed("gate_gsm8k needs a GSM8K test.jsonl on the control node: set gsm8k_file")
    _, note = bench.stage_data(ctx, {"files": ["gsm8k"]})
    ctx.say(f"GSM8K gate: {note}")


GATE_LOG = "gate/gsm8k.log"  # in the archive, beside the host's files (not accuracy/: reports never count it)


def accuracy_verdict(text: str, n: int, minimum: float) -> tuple[float, str | None]:
    """(accuracy, cause when the gate fails) from a few_shot_gsm8k log."""
    found = metrics.parse_text(text).get("accuracy")
    if not isinstance(found, (int, float)):
        return 0.0, f"few_shot_gsm8k printed no accuracy on {n} questions"
    if found < minimum:
        return float(found), f"accuracy {found:g} below {minimum:g} on {n} questions"
    return float(found), None


def gsm8k_gate(ctx: HostContext, dep: deployment.Deployment) -> str:
    """A few GSM8K questions with the real client inside the new container, against the new server."""
    n, minimum = ctx.settings.gate_gsm8k, ctx.settings.gate_min_accuracy
    if not (ctx.state.data or {}).get("gsm8k"):  # restart and rollback stage it here
        stage_gate_data(ctx)
    data = (ctx.state.data or {})["gsm8k"]
    argv = sglang.gsm8k(dep.server.port, n, data, parallel=ctx.settings.parallel)
    log = f"{deployment.CONTAINER_WORKDIR}/runs/{ctx.run.run_id or 'no-run'}/{GATE_LOG}"
    text = bench._run_logged(ctx, dep, argv, log, ctx.settings.accuracy_timeout)
    ctx.run.keep(ctx.name, GATE_LOG, text)
    found, cause = accuracy_verdict(text, n, minimum)
    if cause:
        raise GateFailed(f"health gate: {cause} (the client's log is archived as {GATE_LOG})", cause)
    return f"GSM8K {found:g} on {n} questions (>= {minimum:g})"


def gate(ctx: HostContext, dep: deployment.Deployment, container: str | None = None, accuracy: bool = True) -> str:
    """/health 200 with the model listed, then /health_generate and a real short generation, then
    (`gate_gsm8k` > 0 and `accuracy`) a few GSM8K questions at `gate_min_accuracy` or better."""
    name = container or dep.container
    quiz = accuracy and ctx.settings.gate_gsm8k > 0 and name == dep.container
    if ctx.mode != "apply":
        ctx.planned.append(f"gate: /health 200, /v1/models lists {dep.model.hf_id}, /health_generate 200, a /generate")
        if quiz:
            ctx.planned.append(f"gate: {ctx.settings.gate_gsm8k} GSM8K questions (few_shot_gsm8k in {name}), "
                               f"accuracy >= {ctx.settings.gate_min_accuracy:g}")  # fmt: skip
        return ""
    serving = server.wait_serving(ctx, dep, name)
    r = ctx.probe(docker.exec_(name, http_probe.argv(dep.server.port, http_probe.generate_asks())), timeout=180)
    answer = http_probe.generate_answer(r.stdout) if r.ok else {}
    if answer.get("health_generate") != 200 or answer.get("generate") != 200 or not answer.get("tokens"):
        raise StepFailed(server.failure_report(ctx, dep, f"health gate: serves but does not generate ({answer or r.stderr.strip()[-200:]})", name))
    passed = f"{serving}; generated {answer['tokens']} tokens"
    return f"{passed}; {gsm8k_gate(ctx, dep)}" if quiz else passed


def cause_of(ctx: HostContext, container: str) -> str:
    """The failure's most likely cause and fix, in one line, from the container's log."""
    logs = ctx.probe(docker.logs(container, tail=200), timeout=60)
    found = diagnose.diagnose(logs.stdout + logs.stderr)
    if not found:
        return "health gate failed"
    return f"{found[0].cause}; fix: {found[0].fix}"


# ------------------------------------------------------------------ bookkeeping


def _audit(ctx: HostContext, detail: str) -> None:
    if ctx.mode != "apply":
        return
    line = hostlock.audit_line(ctx.run.playbook.name, ctx.run.run_id, "change", detail)
    ctx.probe(hostlock.audit(ctx.settings.remote_root, line), timeout=30)


def image_of(ctx: HostContext, container: str) -> str | None:
    if ctx.mode != "apply":
        return None
    r = ctx.probe(docker.container_image(container), timeout=30)
    return r.stdout.strip() or None if r.ok else None


def record(ctx: HostContext, kind: str, outcome: str, before: str | None, after: str | None, detail: str = "") -> None:
    """The host's audit log and the run manifest: what happened, with the image IDs before and after."""
    if ctx.mode != "apply":
        ctx.outcome = f"would be replaced ({kind})"
        return
    ctx.outcome = outcome
    _audit(ctx, f"{kind} {outcome} image {before or '-'} -> {after or '-'}{' ' + detail if detail else ''}")
    ctx.run.note(ctx.name, rollout={"kind": kind, "outcome": outcome, "image_before": before, "image_after": after})


def exists(ctx: HostContext, container: str) -> bool:
    return ctx.mode == "apply" and ctx.probe(docker.container_state(container), timeout=30).ok


# ------------------------------------------------------------------ the sequences


def take_out(ctx: HostContext, dep: deployment.Deployment) -> bool:
    """Router out, drained, stopped gracefully; returns whether the router had the host."""
    worker = worker_url(ctx, dep.server.port)
    was_in = leave_router(ctx, worker)
    note = drain(ctx, dep.container, dep.server.port)
    if note:
        ctx.say(note)
    ctx.change(docker.stop(dep.container, ctx.settings.stop_timeout))
    return was_in


def bring_up(ctx: HostContext, dep: deployment.Deployment, start_argv: list[str], was_in: bool,
             accuracy: bool = True) -> str:  # fmt: skip
    """GPU memory free, start, gate, back into the router."""
    note = wait_gpu_free(ctx)
    if note:
        ctx.say(note)
    cache_note(ctx, dep)
    ctx.change(start_argv)
    passed = gate(ctx, dep, accuracy=accuracy)
    if was_in or _router() is not None:
        join_router(ctx, worker_url(ctx, dep.server.port))
    return passed


def replace(ctx: HostContext, dep: deployment.Deployment, run_argv: list[str], why: str) -> tuple[str, str]:
    """Rolling replacement of a serving container (see the module doc); raises StepFailed after a rollback."""
    stage_gate_data(ctx)  # before anything stops: a missing data file fails with the host still serving
    before = image_of(ctx, dep.container)
    prev = previous_name(dep.container)
    was_in = take_out(ctx, dep)
    if exists(ctx, prev) or ctx.mode != "apply":
        ctx.change(docker.remove(prev))  # keep one previous: the one being replaced now
    ctx.change(docker.rename(dep.container, prev))
    try:
        passed = bring_up(ctx, dep, run_argv, was_in)
    except StepFailed as exc:
        return _after_failed_gate(ctx, dep, exc, before, was_in)
    after = image_of(ctx, dep.container)
    record(ctx, "deploy", "upgraded", before, after, why)
    return CHANGED, f"{dep.container} replaced ({why}); {passed}; previous kept as {prev}"


def _after_failed_gate(ctx: HostContext, dep: deployment.Deployment, exc: StepFailed, before: str | None,
                       was_in: bool) -> tuple[str, str]:  # fmt: skip
    failure = str(exc)
    if isinstance(exc, GateFailed):
        cause = exc.cause
    else:
        cause = cause_of(ctx, dep.container) if exists(ctx, dep.container) else "the new server did not start"
    after = image_of(ctx, dep.container)
    if not ctx.settings.rollback:
        record(ctx, "deploy", f"failed, left as is ({cause})", before, after)
        raise StepFailed(f"{failure}\n  rollback off: {dep.container} left as it is for debugging; "
                         f"the previous one is {previous_name(dep.container)} (invoke rollback)")  # fmt: skip
    ctx.say(f"gate failed ({cause}): rolling back to {previous_name(dep.container)}")
    ctx.change(docker.remove(dep.container))
    ctx.change(docker.rename(previous_name(dep.container), dep.container))
    try:  # the previous container served before: health and generation gate it, not the accuracy quiz
        bring_up(ctx, dep, docker.start(dep.container), was_in, accuracy=False)
    except StepFailed as back:
        record(ctx, "deploy", f"rollback failed ({cause})", before, image_of(ctx, dep.container))
        raise StepFailed(f"{failure}\n  the rollback failed too: {back}") from None
    record(ctx, "deploy", f"rolled back ({cause})", after, before)
    raise StepFailed(f"{failure}\n  rolled back: {dep.container} serves its previous container again")


def _swap(ctx: HostContext, name: str) -> None:
    """The current container becomes the previous one, the previous one the current."""
    prev, tmp = previous_name(name), f"{name}{SWAP}"
    ctx.change(docker.rename(name, tmp))
    ctx.change(docker.rename(prev, name))
    ctx.change(docker.rename(tmp, prev))


def rollback_server(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """`invoke rollback`: the kept previous container serves again (gated); the current one is kept as previous."""
    dep = ctx.deployment
    prev = previous_name(dep.container)
    if ctx.mode == "apply" and not exists(ctx, prev):
        raise StepFailed(f"no previous container {prev} on this host: nothing to roll back to")
    before = image_of(ctx, dep.container)
    was_in = take_out(ctx, dep) if exists(ctx, dep.container) or ctx.mode != "apply" else False
    _swap(ctx, dep.container)
    try:
        passed = bring_up(ctx, dep, docker.start(dep.container), was_in)
    except StepFailed as exc:
        record(ctx, "rollback", "rollback failed", before, image_of(ctx, dep.container))
        raise StepFailed(f"{exc}\n  the rolled-back server failed its gate; `invoke rollback` again returns to {prev}") from None
    record(ctx, "rollback", "rolled back (on request)", before, image_of(ctx, dep.container))
    return CHANGED, f"{dep.container} serves its previous container again; {passed}"


def restart_server(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """`invoke restart`: out of the router, drained, stopped gracefully, started, gated, back in."""
    dep = ctx.deployment
    if ctx.mode == "apply" and not exists(ctx, dep.container):
        raise StepFailed(f"no container {dep.container} on this host: deploy first")
    image = image_of(ctx, dep.container)
    was_in = take_out(ctx, dep)
    try:
        passed = bring_up(ctx, dep, docker.start(dep.container), was_in)
    except StepFailed as exc:
        record(ctx, "restart", "restart failed", image, image)
        raise StepFailed(str(exc)) from None
    record(ctx, "restart", "restarted", image, image)
    return CHANGED, f"{dep.container} restarted; {passed}"


def server_deployment(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """The deployment of the container a host runs (its model label), for rollback and restart."""
    current = ctx.facts.container
    if current is None and ctx.mode != "dry-run":
        raise StepFailed(f"no container {ctx.settings.container_name} on this host: deploy first")
    model = current.labels.get(deployment.MODEL_LABEL) if current is not None else None
    ctx.state.deployment = deployment.build(ctx.catalog, ctx.settings, ctx.facts, bool(ctx.run.hf_token), model=model)
    return OK, f"{ctx.state.deployment.container}: {ctx.state.deployment.model.key}"


ACTIONS = {
    "server_deployment": spec(server_deployment, requires=["facts"], provides=["deployment"]),
    "rollback_server": spec(rollback_server, requires=["deployment"]),
    "restart_server": spec(restart_server, requires=["deployment"]),
}
