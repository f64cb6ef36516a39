"""Benchmarks and the accuracy check, run inside each host's server container, and collection.

Offline by design: data files are staged from the control node, and the clients
run with HF_HUB_OFFLINE=1 so they read the tokenizer from the host's HF cache
(where the weights are) instead of the internet. Every output lands in the host's
`<remote_dir>/work/runs/<run-id>/` (the container's /llmfleet/runs/<run-id>/), and
`collect` brings that whole folder back into the local archive.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

from .. import deployment, metrics
from ..commands import docker, sglang
from ..runner import CHANGED, OK, HostContext, StepFailed

CLIENT_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
DATA_FILES = {"sharegpt": "sharegpt_file", "gsm8k": "gsm8k_file"}


def _dep(ctx: HostContext) -> deployment.Deployment:
    dep = ctx.state.get("deployment")
    if dep is None:
        raise StepFailed("preflight did not run: no deployment for this host")
    return dep


def run_dir(ctx: HostContext) -> str:
    """The run's folder as the container sees it."""
    if not ctx.run.run_id:
        raise StepFailed("no run id: bench runs need an archive run")
    return f"{deployment.CONTAINER_WORKDIR}/runs/{ctx.run.run_id}"


def host_path(dep: deployment.Deployment, container_path: str) -> str:
    rel = PurePosixPath(container_path).relative_to(deployment.CONTAINER_WORKDIR)
    return f"{dep.remote_dir}/work/{rel}"


def logged(argv: list[str], log_path: str) -> list[str]:
    """Run argv with stdout+stderr into a log file; the exit code is the program's."""
    script = 'mkdir -p "$(dirname "$1")" && log=$1 && shift && exec "$@" > "$log" 2>&1'
    return ["sh", "-c", script, "sh", log_path, *argv]


def require_running(ctx: HostContext, dep: deployment.Deployment) -> None:
    if ctx.mode == "dry-run":
        return
    c = ctx.facts.container if ctx.facts else None
    if c is None or not c.running:
        raise StepFailed(f"no running {dep.container} container: run `invoke deploy` first")


def stage_data(ctx: HostContext, args: dict) -> tuple[str, str]:
    """Copy the data files the clients need to the host, once (named by content hash)."""
    dep = _dep(ctx)
    staged: dict[str, str] = {}
    uploaded = []
    for key in args.get("files") or list(DATA_FILES):
        local = ctx.vars.get(DATA_FILES[key])
        if not local:
            continue
        path = Path(str(local)).expanduser()
        if not path.is_file():
            raise StepFailed(f"{DATA_FILES[key]} {path} does not exist on the control node")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:16]
        container_path = f"{deployment.CONTAINER_WORKDIR}/data/{key}-{digest}{path.suffix}"
        remote = host_path(dep, container_path)
        staged[key] = container_path
        if ctx.mode != "dry-run" and ctx.probe(["test", "-f", remote]).ok:
            continue
        ctx.change(["install", "-d", "-m", "755", str(PurePosixPath(remote).parent)])
        ctx.put(data, remote, 0o644, display=f"upload {path.name} ({len(data)} bytes) to {remote}")
        uploaded.append(path.name)
    ctx.state["data"] = staged
    if uploaded:
        return CHANGED, "staged " + ", ".join(uploaded)
    return OK, "data already staged" if staged else "no data files configured"


def _bench_spec(ctx: HostContext, dep: deployment.Deployment, profile, output_file: str) -> sglang.BenchSpec:
    v, d = ctx.vars, ctx.catalog.bench_defaults
    dataset = str(v.get("dataset") or d.get("dataset", "random"))
    data = ctx.state.get("data", {})
    dataset_path = data.get("sharegpt")
    if dataset in ("random", "sharegpt-file") and not dataset_path:
        raise StepFailed(
            f"--dataset {dataset} needs a ShareGPT file staged from the control node (set sharegpt_file), "
            "or use --dataset random-ids: hosts do not download data"
        )
    return sglang.BenchSpec(
        hf_id=dep.model.hf_id,
        port=dep.server.port,
        num_prompts=int(v.get("num_prompts") or profile.num_prompts),
        max_concurrency=int(v.get("max_concurrency") or profile.max_concurrency),
        input_len=int(v.get("input_len") or d.get("input_len", 1000)),
        output_len=int(v.get("output_len") or d.get("output_len", 1000)),
        request_rate=str(d.get("request_rate", "inf")),
        dataset=dataset,
        dataset_path=dataset_path,
        tokenizer=v.get("tokenizer"),
        output_file=output_file,
        seed=int(v["seed"]) if v.get("seed") is not None else None,
    )


def _summary(text: str) -> str:
    m = metrics.parse_text(text)
    if not m:
        return "no result block in the log"
    parts = [f"{m.get('completed', '?')} ok"]
    if m.get("failed"):
        parts.append(f"{m['failed']} failed")
    for key, label in (("output_throughput", "out tok/s"), ("median_ttft_ms", "TTFT ms"), ("median_tpot_ms", "TPOT ms")):
        if key in m:
            parts.append(f"{label} {m[key]}")
    return ", ".join(parts)


def _run_logged(ctx: HostContext, dep: deployment.Deployment, argv: list[str], log: str, timeout: float) -> str:
    """Run a client in the container; return its log text (fetched even when it failed)."""
    cmd = docker.exec_(dep.container, logged(argv, log), env=CLIENT_ENV)
    result = ctx.change(cmd, timeout=timeout, check=False)
    if result is None:
        return ""
    try:
        text = ctx.session.get_bytes(host_path(dep, log)).decode(errors="replace") if ctx.session else ""
    except OSError:
        text = ""
    if not result.ok:
        tail = "\n    ".join(text.strip().splitlines()[-8:]) or result.stderr.strip()[-400:]
        raise StepFailed(f"`{argv[2]}` exited {result.exit_code}; last lines:\n    {tail}")
    return text


def bench(ctx: HostContext, args: dict) -> tuple[str, str]:
    dep = _dep(ctx)
    require_running(ctx, dep)
    profiles = ctx.catalog.select_profiles(str(ctx.vars.get("profile") or "all"))
    base = run_dir(ctx) if ctx.mode == "apply" else f"{deployment.CONTAINER_WORKDIR}/runs/RUN_ID"
    timeout = float(ctx.vars.get("bench_timeout", 3600))
    done = []
    for profile in profiles:
        if profile.warmup and ctx.vars.get("warmup", True) not in (False, "false", "no"):
            # kept apart from bench/ so that reports never mistake it for a profile
            warm = _bench_spec(ctx, dep, profile, f"{base}/warmup/{profile.name}.jsonl")
            warm = sglang.BenchSpec(**{**warm.__dict__, "num_prompts": max(2, profile.max_concurrency), "output_len": 32})
            ctx.say(f"warm-up before {profile.name} (cold-start TTFT stays out of the numbers)")
            _run_logged(ctx, dep, sglang.bench_serving(warm), f"{base}/warmup/{profile.name}.log", timeout)
        spec = _bench_spec(ctx, dep, profile, f"{base}/bench/{profile.name}.jsonl")
        ctx.say(f"bench {profile.name}: {spec.num_prompts} prompts at concurrency {spec.max_concurrency}")
        text = _run_logged(ctx, dep, sglang.bench_serving(spec), f"{base}/bench/{profile.name}.log", timeout)
        if ctx.mode == "apply":
            summary = _summary(text)
            ctx.say(f"bench {profile.name}: {summary}")
            done.append(f"{profile.name}: {summary}")
    return CHANGED, "; ".join(done)


def accuracy(ctx: HostContext, args: dict) -> tuple[str, str]:
    dep = _dep(ctx)
    require_running(ctx, dep)
    data = ctx.state.get("data", {}).get("gsm8k")
    if not data:
        raise StepFailed("no GSM8K data file staged: set gsm8k_file to a GSM8K test.jsonl on the control node")
    base = run_dir(ctx) if ctx.mode == "apply" else f"{deployment.CONTAINER_WORKDIR}/runs/RUN_ID"
    n = int(ctx.vars.get("num_questions") or ctx.catalog.accuracy_defaults.get("num_questions", 200))
    argv = sglang.gsm8k(dep.server.port, n, data, parallel=ctx.vars.get("parallel"))
    text = _run_logged(ctx, dep, argv, f"{base}/accuracy/gsm8k.log", float(ctx.vars.get("accuracy_timeout", 3600)))
    if ctx.mode != "apply":
        return CHANGED, ""
    m = metrics.parse_text(text)
    if "accuracy" not in m:
        raise StepFailed("few_shot_gsm8k printed no accuracy")
    return CHANGED, f"GSM8K accuracy {m['accuracy']} on {n} questions"


def collect(ctx: HostContext, args: dict) -> tuple[str, str]:
    """Bring back the run's files, the server's logs and config, into the local archive."""
    if ctx.mode != "apply":
        ctx.planned.append("fetch <remote_dir>/work/runs/<run-id>/, docker logs and docker inspect into the archive")
        return OK, ""
    container = deployment.container_name(ctx.vars)
    fetched = 0
    if ctx.run.run_id and ctx.session is not None:
        remote_run = f"{deployment.remote_dir(ctx.vars)}/work/runs/{ctx.run.run_id}"
        try:
            files = ctx.session.listdir_recursive(remote_run)
        except OSError:
            files = []
        for rel in files:
            ctx.run.keep(ctx.name, rel, ctx.session.get_bytes(f"{remote_run}/{rel}"))
            fetched += 1
    logs = ctx.probe(docker.logs(container, timestamps=True), timeout=120)
    if logs.ok:
        ctx.run.keep(ctx.name, "server/docker.log", logs.stdout + logs.stderr)
        fetched += 1
    inspect = ctx.probe(docker.inspect_container(container), timeout=60)
    if inspect.ok:
        ctx.run.keep(ctx.name, "server/container.json", json.dumps(json.loads(inspect.stdout), indent=2))
        ctx.run.note(ctx.name, image_id=json.loads(inspect.stdout).get("Image"))
        fetched += 1
    return OK, f"{fetched} files"


ACTIONS = {
    "stage_data": (stage_data, {"files"}),
    "bench": (bench, set()),
    "accuracy": (accuracy, set()),
    "collect": (collect, set()),
}
