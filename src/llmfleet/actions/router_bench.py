"""`invoke bench --via-router`: the cluster benchmarked as its users see it, through the sglang-router.

The real bench_serving runs inside ONE host's server container (`router_bench_host`) with
``--base-url <router_url>``; the other hosts only have their server logs collected. The
client writes outside the run's folder on the host, so `collect` never files the router's
numbers under the client host: they go to the run's ``router/`` folder (as if ``router``
were a host; docs/archive-format.md), where `invoke report` shows them as the host ``router``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .. import deployment
from ..commands import sglang
from ..steps import CHANGED, OK, HostContext, StepFailed, spec
from . import bench

ARCHIVE_HOST = "router"  # the run's folder for the router's results


def router_dir(ctx: HostContext) -> str:
    """The client's output folder in the container: outside runs/<run-id>/, which `collect` files per host."""
    return f"{deployment.CONTAINER_WORKDIR}/router-runs/{ctx.run.run_id or 'RUN_ID'}"


def router_spec(ctx: HostContext, dep: deployment.Deployment, profile: Any, output_file: str, url: str) -> sglang.BenchSpec:
    """The profile's bench_serving spec (bench's), pointed at the router."""
    return dataclasses.replace(bench._bench_spec(ctx, dep, profile, output_file), base_url=url)


def _fetch(ctx: HostContext, dep: deployment.Deployment, container_path: str) -> bytes | None:
    if ctx.session is None:
        return None
    try:
        return ctx.session.get_bytes(bench.host_path(dep, container_path))
    except OSError:
        return None


def bench_via_router(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    dep = ctx.deployment
    url, client = ctx.settings.router_url, ctx.settings.router_bench_host
    if not url or not client:
        raise StepFailed("bench through the router needs router_url and router_bench_host (invoke bench --via-router sets them)")
    if ctx.name != client:
        return OK, f"worker: the client runs on {client} against {url}"
    bench.require_running(ctx, dep)
    base = router_dir(ctx)
    timeout = ctx.settings.bench_timeout
    done = []
    profiles = ctx.catalog.select_profiles(ctx.settings.profile)
    for profile in profiles:
        if profile.warmup and ctx.settings.warmup:
            warm = router_spec(ctx, dep, profile, f"{base}/warmup/{profile.name}.jsonl", url)
            warm = dataclasses.replace(warm, num_prompts=max(2, profile.max_concurrency), output_len=32)
            ctx.say(f"warm-up through the router before {profile.name}")
            bench._run_logged(ctx, dep, sglang.bench_serving(warm), f"{base}/warmup/{profile.name}.log", timeout)
        spec_ = router_spec(ctx, dep, profile, f"{base}/bench/{profile.name}.jsonl", url)
        ctx.say(f"bench {profile.name} through the router {url}: {spec_.num_prompts} prompts at concurrency {spec_.max_concurrency}")
        text = bench._run_logged(ctx, dep, sglang.bench_serving(spec_), f"{base}/bench/{profile.name}.log", timeout)
        if ctx.mode != "apply":
            continue
        ctx.run.keep(ARCHIVE_HOST, f"bench/{profile.name}.log", text)
        jsonl = _fetch(ctx, dep, f"{base}/bench/{profile.name}.jsonl")
        if jsonl is not None:
            ctx.run.keep(ARCHIVE_HOST, f"bench/{profile.name}.jsonl", jsonl)
        summary = bench._summary(text)
        ctx.say(f"bench {profile.name} through the router: {summary}")
        done.append(f"{profile.name}: {summary}")
    if ctx.mode == "apply":
        about = {"url": url, "client_host": client, "profiles": [p.name for p in profiles], "model": dep.model.hf_id}
        ctx.run.keep(ARCHIVE_HOST, "router.json", json.dumps(about, indent=1, sort_keys=True))
        ctx.change(["rm", "-rf", bench.host_path(dep, base)], timeout=60, check=False)
    return CHANGED, "; ".join(done)


ACTIONS = {
    "bench_via_router": spec(bench_via_router, requires=["facts", "deployment", "data"]),
}
