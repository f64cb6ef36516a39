"""Benchmarks and the accuracy check, run inside each host's server container, and collection.

Offline by design: data files are staged from the control node, and the clients
run with HF_HUB_OFFLINE=1 so they read the tokenizer from the host's HF cache
(where the weights are) instead of the internet. Every output lands in the host's
`<remote_dir>/work/runs/<run-id>/` (the container's /llmfleet/runs/<run-id>/), and
`collect` brings that whole folder back into the local archive.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from .. import deployment, metrics, telemetry
from ..catalog import Profile
from ..commands import docker, sglang
from ..settings import Settings
from ..steps import CHANGED, OK, HostContext, StepFailed, spec
from ..transport import Unreachable

CLIENT_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
SAMPLER_MARGIN_S = 300  # a sampler stops by itself this long after its client's timeout
DATA_KINDS = ("sharegpt", "gsm8k")
SLOT_POLL_S = 0.5  # how often a host waiting for a client slot looks for Ctrl-C


def data_file(s: Settings, kind: str) -> str | None:
    """The control node's data file of a kind (the `<kind>_file` settings)."""
    return {"sharegpt": s.sharegpt_file, "gsm8k": s.gsm8k_file}[kind]


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


def stage_data(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Copy the data files the clients need to the host, once (named by content hash)."""
    dep = ctx.deployment
    staged: dict[str, str] = {}
    uploaded = []
    for key in args.get("files") or list(DATA_KINDS):
        if key not in DATA_KINDS:
            raise StepFailed(f"unknown data file kind {key!r}; known: {', '.join(DATA_KINDS)}")
        local = data_file(ctx.settings, key)
        if not local:
            continue
        path = Path(local).expanduser()
        if not path.is_file():
            raise StepFailed(f"{key}_file {path} does not exist on the control node")
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
    ctx.state.data = {**(ctx.state.data or {}), **staged}  # a session stages for bench, then for accuracy
    if uploaded:
        return CHANGED, "staged " + ", ".join(uploaded)
    return OK, "data already staged" if staged else "no data files configured"


def _bench_spec(ctx: HostContext, dep: deployment.Deployment, profile: Profile, output_file: str) -> sglang.BenchSpec:
    s, d = ctx.settings, ctx.catalog.bench_defaults
    dataset = s.dataset or d.dataset
    dataset_path = (ctx.state.data or {}).get("sharegpt")
    if dataset in ("random", "sharegpt-file") and not dataset_path:
        raise StepFailed(
            f"--dataset {dataset} needs a ShareGPT file staged from the control node (set sharegpt_file), "
            "or use --dataset random-ids: hosts do not download data"
        )
    return sglang.BenchSpec(
        hf_id=dep.model.hf_id,
        port=dep.server.port,
        num_prompts=s.num_prompts or profile.num_prompts,
        max_concurrency=s.max_concurrency or profile.max_concurrency,
        input_len=s.input_len or d.input_len,
        output_len=s.output_len or d.output_len,
        request_rate=d.request_rate,
        dataset=dataset,
        dataset_path=dataset_path,
        tokenizer=s.tokenizer,
        output_file=output_file,
        seed=s.seed,
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


# --- how many hosts run a client at once (bench_forks) -----------------------------------


def client_slots(ctx: HostContext, limit: int) -> threading.BoundedSemaphore:
    """The run's slots for `limit` clients at once, shared by every host with that bench_forks."""
    with ctx.run.lock:
        found = ctx.run.shared.get(f"client_slots:{limit}")
        if found is None:
            found = ctx.run.shared[f"client_slots:{limit}"] = threading.BoundedSemaphore(limit)
        return found


@contextmanager
def client_slot(ctx: HostContext, what: str) -> Iterator[None]:
    """Hold one of the run's `bench_forks` slots while this host's clients run (all profiles, or the GSM8K check).

    Unset (the default), every host measures at once, as real hosts do with their own CPUs. The
    lab's hosts share the control node's cores: there, concurrent clients and servers slow each
    other down and the figures measure that contention, so the lab inventory bounds it.
    """
    limit = ctx.settings.bench_forks
    if limit is None:
        yield
        return
    if ctx.mode != "apply":
        ctx.planned.append(f"{what} with at most {limit} host(s) of the run measuring at once (bench_forks)")
        yield
        return
    slots = client_slots(ctx, limit)
    if not slots.acquire(blocking=False):
        ctx.say(f"{what}: waiting for one of {limit} client slot(s) (bench_forks: hosts measure {limit} at a time)")
        while not slots.acquire(timeout=SLOT_POLL_S):
            if ctx.run.shared.get("interrupted"):
                raise StepFailed(f"interrupted while waiting to run {what}")
    try:
        yield
    finally:
        slots.release()


# --- GPU telemetry while a client runs (llmfleet.telemetry) -----------------------------


@dataclasses.dataclass
class Measured:
    """What the client reported that the telemetry window needs (set inside ``sampled``)."""

    duration_s: float | None = None
    output_tokens: float | None = None


def telemetry_dir(ctx: HostContext) -> str:
    """The run's sampler files on the host: outside the run folder, so raw output is never archived."""
    return f"{ctx.settings.remote_root}/work/telemetry/{ctx.run.run_id}"


def host_clock(ctx: HostContext) -> float:
    """The host's clock (the samples' clock), in epoch seconds."""
    got = ctx.probe(["date", "+%s.%N"], timeout=30)
    value = telemetry.number(got.stdout.strip()) if got.ok else None
    if value is None:
        raise StepFailed(f"cannot read the host's clock (`date +%s.%N` exited {got.exit_code}): GNU date is needed")
    return value


@contextmanager
def sampled(ctx: HostContext, name: str, lifetime_s: float) -> Iterator[Measured]:
    """Sample the host's GPUs while the body runs the client; archive ``telemetry/<name>.jsonl``.

    Started before the client and stopped after it (also when it fails), past the
    client's end so that the samples cover its whole window.
    """
    measured = Measured()
    if ctx.mode != "apply" or not ctx.settings.telemetry:
        if ctx.settings.telemetry:
            ctx.planned.append(f"sample GPU telemetry (amd-smi metric --json, else rocm-smi; 1 s) while {name} runs")
        yield measured
        return
    where = telemetry.SamplerPaths.under(telemetry_dir(ctx), name)
    started = ctx.change(telemetry.start_argv(where, lifetime_s), timeout=30, check=False)
    if started is None or not started.ok:
        ctx.say(f"telemetry: no sampler for {name} ({(started.stderr if started else '').strip()[-200:]})")
        yield measured
        return
    source = started.stdout.split()[0] if started.stdout.split() else None
    client_start = host_clock(ctx)
    try:
        yield measured
    finally:
        try:
            _finish_sampling(ctx, name, where, source, client_start, measured)
        except (Unreachable, OSError, StepFailed) as exc:  # never hide the client's own failure
            ctx.say(f"telemetry for {name} lost: {exc}")


def _finish_sampling(ctx: HostContext, name: str, where: telemetry.SamplerPaths, source: str | None,
                     client_start: float, measured: Measured) -> None:  # fmt: skip
    client_end = host_clock(ctx)
    stopped = ctx.change(telemetry.stop_argv(where, client_end), timeout=60, check=False)
    cpu_s, _ = telemetry.parse_stop(stopped.stdout if stopped else "")
    raw = ctx.session.get_bytes(where.raw).decode(errors="replace") if ctx.session else ""
    ctx.change(["rm", "-f", where.raw], timeout=30, check=False)
    samples = telemetry.parse_raw(raw)
    window = telemetry.bench_window(client_start, client_end, measured.duration_s)
    head = telemetry.window_record(name, (client_start, client_end), window, measured.output_tokens, source, cpu_s)
    ctx.run.keep(ctx.name, f"telemetry/{name}.jsonl", telemetry.dumps([head, *samples]))
    e = telemetry.derive(samples, *window, measured.output_tokens)
    if not e.valid:
        shown = f"invalid: {e.why_invalid}"
    else:
        shown = f"{e.avg_power_w:.0f} W" + (f", {e.j_per_output_token:.3g} J/token" if e.j_per_output_token else "")
    ctx.say(f"telemetry {name}: {len(samples)} samples from {source}, {shown}")


def bench(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    dep = ctx.deployment
    require_running(ctx, dep)
    profiles = ctx.catalog.select_profiles(ctx.settings.profile)
    base = run_dir(ctx) if ctx.mode == "apply" else f"{deployment.CONTAINER_WORKDIR}/runs/RUN_ID"
    timeout = ctx.settings.bench_timeout
    with client_slot(ctx, "bench"):
        done = _bench_profiles(ctx, dep, profiles, base, timeout)
    return CHANGED, "; ".join(done)


def _bench_profiles(ctx: HostContext, dep: deployment.Deployment, profiles: list[Profile], base: str,
                    timeout: float) -> list[str]:  # fmt: skip
    done = []
    for profile in profiles:
        if profile.warmup and ctx.settings.warmup:
            # kept apart from bench/ so that reports never mistake it for a profile
            warm = _bench_spec(ctx, dep, profile, f"{base}/warmup/{profile.name}.jsonl")
            warm = dataclasses.replace(warm, num_prompts=max(2, profile.max_concurrency), output_len=32)
            ctx.say(f"warm-up before {profile.name} (cold-start TTFT stays out of the numbers)")
            _run_logged(ctx, dep, sglang.bench_serving(warm), f"{base}/warmup/{profile.name}.log", timeout)
        spec = _bench_spec(ctx, dep, profile, f"{base}/bench/{profile.name}.jsonl")
        ctx.say(f"bench {profile.name}: {spec.num_prompts} prompts at concurrency {spec.max_concurrency}")
        with sampled(ctx, profile.name, timeout + SAMPLER_MARGIN_S) as measured:
            text = _run_logged(ctx, dep, sglang.bench_serving(spec), f"{base}/bench/{profile.name}.log", timeout)
            got = metrics.parse_text(text)
            measured.duration_s, measured.output_tokens = got.get("duration_s"), got.get("total_output_tokens")
        if ctx.mode == "apply":
            summary = _summary(text)
            ctx.say(f"bench {profile.name}: {summary}")
            done.append(f"{profile.name}: {summary}")
    return done


def accuracy(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    dep = ctx.deployment
    require_running(ctx, dep)
    data = (ctx.state.data or {}).get("gsm8k")
    if not data:
        raise StepFailed("no GSM8K data file staged: set gsm8k_file to a GSM8K test.jsonl on the control node")
    base = run_dir(ctx) if ctx.mode == "apply" else f"{deployment.CONTAINER_WORKDIR}/runs/RUN_ID"
    n = ctx.settings.num_questions or ctx.catalog.accuracy_defaults.num_questions
    argv = sglang.gsm8k(dep.server.port, n, data, parallel=ctx.settings.parallel)
    with client_slot(ctx, "GSM8K"), sampled(ctx, "gsm8k", ctx.settings.accuracy_timeout + SAMPLER_MARGIN_S) as measured:
        text = _run_logged(ctx, dep, argv, f"{base}/accuracy/gsm8k.log", ctx.settings.accuracy_timeout)
        m = metrics.parse_text(text)
        measured.duration_s = m.get("latency_s")
        if m.get("latency_s") and m.get("output_throughput"):
            measured.output_tokens = round(m["latency_s"] * m["output_throughput"])
    if ctx.mode != "apply":
        return CHANGED, ""
    if "accuracy" not in m:
        raise StepFailed("few_shot_gsm8k printed no accuracy")
    return CHANGED, f"GSM8K accuracy {m['accuracy']} on {n} questions"


def collect(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    """Bring back the run's files, the server's logs and config, into the local archive."""
    if ctx.mode != "apply":
        ctx.planned.append("fetch <remote_dir>/work/runs/<run-id>/, docker logs and docker inspect into the archive")
        return OK, ""
    container = ctx.settings.container_name
    fetched = 0
    if ctx.run.run_id:  # no sampler of this run may outlive it, whatever failed before
        ctx.change(telemetry.stop_all_argv(telemetry_dir(ctx)), timeout=60, check=False)
    if ctx.run.run_id and ctx.session is not None:
        remote_run = f"{ctx.settings.remote_root}/work/runs/{ctx.run.run_id}"
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
    "stage_data": spec(stage_data, args=["files"], requires=["deployment"], provides=["data"]),
    "bench": spec(bench, requires=["facts", "deployment", "data"]),
    "accuracy": spec(accuracy, requires=["facts", "deployment", "data"]),
    "collect": spec(collect),
}
