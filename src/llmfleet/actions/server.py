"""The SGLang server container: create it when its config changed, wait until it serves."""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from .. import deployment, diagnose, secrets
from ..commands import docker, http_probe
from ..steps import CHANGED, OK, HostContext, StepFailed, spec
from ..transport import TunnelRefused


def _secret_values(ctx: HostContext) -> dict[str, str]:
    token = ctx.run.hf_token
    return {"HF_TOKEN": token} if token else {}


def ensure_container(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    dep = ctx.deployment
    values = _secret_values(ctx)
    wanted = dep.config_hash(ctx.state.image_id, deployment.secret_fingerprint(values))
    current = ctx.facts.container  # assumed facts (dry-run) have none
    if current and current.labels.get(docker.CONFIG_LABEL) == wanted and current.running:
        ctx.state.container_changed = False
        return OK, f"{dep.container} up to date ({wanted})"
    why = "not there" if current is None else ("config changed" if current.labels.get(docker.CONFIG_LABEL) != wanted else f"is {current.status}")
    ctx.change(["install", "-d", "-m", "755", dep.remote_dir, f"{dep.remote_dir}/work", dep.hf_home, dep.cache_dir])
    if dep.env_file:
        ctx.change(["install", "-d", "-m", "700", f"{dep.remote_dir}/secrets"])
        shown = ", ".join(f"{k}=********" for k in sorted(values))
        ctx.put(secrets.env_file_text(values).encode(), dep.env_file, 0o600, display=f"write {dep.env_file} (0600: {shown})")
    ctx.state.container_changed = True
    if current is not None and current.running and current.labels.get(docker.CONFIG_LABEL) != wanted:
        from . import rollout  # the rolling replacement builds on this module's poller

        return rollout.replace(ctx, dep, dep.run_argv(wanted), why)
    if current is not None:
        ctx.change(docker.remove(dep.container))
    ctx.change(dep.run_argv(wanted))
    return CHANGED, f"{dep.container} {'created' if current is None else 'recreated'} ({why})"


def _http_health(ctx: HostContext, port: int) -> dict[str, Any] | None:
    """/health and /v1/models fetched through the SSH connection (no process on the host).

    None when the host's sshd refuses forwarding: the caller asks inside the container.
    """
    assert ctx.session is not None
    try:
        health, _ = ctx.session.http_get(port, "/health")
        code, body = ctx.session.http_get(port, "/v1/models") if health == 200 else (0, b"")
    except TunnelRefused:
        return None
    try:
        ids = http_probe.model_ids(code, json.loads(body)) if code == 200 else []
    except ValueError:  # not JSON
        ids = []
    ctx.run.event(host=ctx.name, step=ctx.step.name if ctx.step else "", command=f"GET 127.0.0.1:{port}/health, /v1/models (ssh direct-tcpip)",
                  exit_code=0, duration_s=None, mode=ctx.mode, note=f"health {health}")  # fmt: skip
    return {"health": health, "models": ids}


def _known_running(ctx: HostContext, container: str) -> bool:
    """The facts of this run saw the container running and no step of this run has touched it since."""
    facts = ctx.state.facts
    current = facts.container if facts is not None else None
    return (current is not None and current.running and ctx.state.container_changed is not True
            and ctx.state.facts_image is not None and container == ctx.settings.container_name)  # fmt: skip


def poll(ctx: HostContext, container: str, port: int) -> tuple[str, int, dict]:
    """(container status, exit code, {"health": code, "models": [...]}).

    Health comes over the SSH connection's direct-tcpip channel (nothing started on the
    host); the container's state is asked only when this run's facts cannot vouch for it.
    """
    answer = _http_health(ctx, port)
    if answer is not None and answer.get("health") == 200 and _known_running(ctx, container):
        return "running", 0, answer
    state = ctx.probe(docker.container_state(container), timeout=30)
    if not state.ok:
        return "missing", -1, {}
    status, _, code = state.stdout.strip().partition(" ")
    if status != "running":
        return status, int(code or -1), {}
    if answer is not None:
        return status, 0, answer
    probe = ctx.probe(docker.exec_(container, http_probe.argv(port, http_probe.HEALTH)), timeout=30)
    return status, 0, http_probe.health_answer(probe.stdout) if probe.ok else {}


def failure_report(ctx: HostContext, dep: deployment.Deployment, headline: str, container: str | None = None,
                   tail: int = 40) -> str:  # fmt: skip
    """The headline, what the logs say it means, and the last log lines."""
    logs = ctx.probe(docker.logs(container or dep.container, tail=tail), timeout=60)
    text = (logs.stdout + logs.stderr).strip()
    ctx.run.keep(ctx.name, "server/docker-tail.log", text)
    parts = [headline]
    for d in diagnose.diagnose(text):
        parts.append(f"likely cause: {d.meaning}; fix: {d.fix} (log: {d.evidence})")
    last = "\n    ".join(text.splitlines()[-12:])
    parts.append(f"last log lines:\n    {last}")
    return "\n  ".join(parts)


def wait_healthy(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    dep = ctx.deployment
    if ctx.mode != "apply":
        if ctx.mode == "check" and not ctx.state.container_changed:
            status, _, answer = poll(ctx, dep.container, dep.server.port)
            if answer.get("health") == 200:
                return OK, "serving"
        ctx.planned.append(f"wait until http://127.0.0.1:{dep.server.port}/health is 200 and /v1/models lists {dep.model.hf_id}")
        return CHANGED, ""
    return OK, wait_serving(ctx, dep, dep.container)


def wait_serving(ctx: HostContext, dep: deployment.Deployment, container: str) -> str:
    """Poll until the container serves the model (the one poller: deploy's health step and the rollout's gate)."""
    timeout = ctx.settings.health_timeout
    interval = ctx.settings.health_interval
    start = time.monotonic()
    last_note = start
    while True:
        status, code, answer = poll(ctx, container, dep.server.port)
        elapsed = time.monotonic() - start
        if status != "running":
            raise StepFailed(failure_report(ctx, dep, f"container {container} is {status} (exit code {code})", container))
        if answer.get("health") == 200 and dep.model.hf_id in (answer.get("models") or []):
            return f"serving {dep.model.hf_id} on :{dep.server.port} after {elapsed:.0f}s"
        if elapsed > timeout:
            raise StepFailed(failure_report(ctx, dep, f"not serving after {timeout:.0f}s (health {answer.get('health')})", container))
        if time.monotonic() - last_note >= 30:
            ctx.say(f"still starting ({elapsed:.0f}s, /health {answer.get('health', '-')}); first starts on a cold host take 10-15 min")
            last_note = time.monotonic()
        time.sleep(interval)


def server_status(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """One line per host: container state, config hash, health."""
    name = ctx.settings.container_name
    current = ctx.facts.container
    if current is None:
        return OK, f"no container {name}"
    label = current.labels.get(deployment.PORT_LABEL, "")
    port = int(label) if label.isdigit() else ctx.settings.port
    status, code, answer = poll(ctx, name, port)
    model = current.labels.get(deployment.MODEL_LABEL, "?")
    return OK, f"{name} {status}, model {model}, /health {answer.get('health', '-')}, config {current.labels.get(docker.CONFIG_LABEL, '?')}"


def read_log(ctx: HostContext) -> str:
    """The last `log_lines` lines of the server container's log (stdout and stderr, as docker keeps them)."""
    name = ctx.settings.container_name
    result = ctx.probe(docker.logs(name, tail=ctx.settings.log_lines), timeout=60)
    if not result.ok and "No such container" in result.stderr:
        raise StepFailed(f"no container {name}")
    return (result.stdout + result.stderr).rstrip()


def server_logs(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    text = read_log(ctx)
    for line in text.splitlines():
        ctx.say(f"| {line}")
    ctx.run.keep(ctx.name, "server/docker.log", text)
    return OK, f"{len(text.splitlines())} lines"


def stop_server(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    name = ctx.settings.container_name
    if ctx.mode != "dry-run" and ctx.facts.container is None:
        return OK, f"no container {name}"
    ctx.change(docker.remove(name))
    return CHANGED, f"removed {name}"


ACTIONS = {
    "ensure_container": spec(ensure_container, requires=["facts", "deployment"], provides=["container_changed"]),
    "wait_healthy": spec(wait_healthy, requires=["deployment"]),
    "server_status": spec(server_status, requires=["facts"]),
    "server_logs": spec(server_logs),
    "stop_server": spec(stop_server, requires=["facts"]),
}
