"""`invoke router.up|status|down`: the real sglang-router in front of a group's servers, on the control node."""

from __future__ import annotations

from typing import Any

from invoke import Collection
from rich.text import Text

from .. import inventory, paths, router, settings
from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task, task
from .deploy import HOST_HELP, parse_sets


def group_workers(hosts: str, inventory_path: str | None, sets: dict[str, Any]) -> list[tuple[str, str]]:
    """(host name, worker URL) of every selected host: its address and its server `port` setting."""
    inv = inventory.load_inventory(inventory_path or paths.default_inventory())
    settings.check_keys(sets, {})
    out = []
    for h in inv.select(hosts or "all"):
        s = settings.for_host(h, {}, sets).settings
        out.append((h.name, f"http://{h.address}:{s.port}"))
    return out


def _workers_json(client: router.Client) -> list[dict[str, Any]]:
    return [{"url": w.get("url"), "healthy": bool(w.get("is_healthy")), "model": w.get("model_id"), "load": w.get("load")}
            for w in client.workers()]  # fmt: skip


@task(help={**{k: HOST_HELP[k] for k in ("hosts", "inventory", "json", "set")},
            "on": "Where the router runs: control (this node; the only place supported so far)",
            "port": f"Router port (default {router.DEFAULT_PORT}; metrics on port+1, loopback)",
            "policy": f"Routing policy: {' | '.join(router.POLICIES)} (default cache_aware)"},
      iterable=["set"])  # fmt: skip
@run_task
def up(c, hosts="", inventory=None, on="control", port=None, policy="cache_aware", json=False, set=None):
    """Start sglang-router with every healthy server of the group as a worker (idempotent)."""
    if on != "control":
        raise InputError(f"--on {on}: the router runs on the control node only (--on control) in this version")
    if policy not in router.POLICIES:
        raise InputError(f"--policy takes {' | '.join(router.POLICIES)}, not {policy!r}")
    try:
        n_port = int(port) if port not in (None, "") else router.DEFAULT_PORT
    except ValueError:
        raise InputError(f"--port takes a number, not {port!r}") from None
    if not 1 <= n_port <= 65534:
        raise InputError(f"--port takes 1 to 65534 (the next port serves metrics), not {n_port}")
    workers = group_workers(hosts, inventory, parse_sets(set))
    if not workers:
        raise InputError(f"--hosts {hosts!r} selects no host")
    healthy = [url for _, url in workers if router.worker_health(url) == 200]
    for name, url in workers:
        if url not in healthy:
            console.print(Text(f"{name}: {url}/health does not answer 200; not added (deploy it, then router.up again)"))
    bind = router.address_towards(workers[0][1].split("//")[1].rsplit(":", 1)[0])
    cfg = router.RouterConfig(bind=bind, port=n_port, policy=policy, workers=tuple(healthy))
    try:
        st, changed = router.start(cfg)
    except router.RouterError as exc:
        console.print(Text(f"router.up failed: {exc}", style="red"))
        return EXIT_FAILED
    client = router.Client(st.url)
    listed = _workers_json(client)
    console.print(Text(f"router {'started' if changed else 'already up'}: {st.url} (pid {st.pid}, policy {st.policy}, "
                       f"sglang-router {st.version}), {len(listed)} worker(s); log {st.log}"))  # fmt: skip
    if json:
        print_json({"url": st.url, "workers": listed, "pid": st.pid, "policy": st.policy, "changed": changed})
    return 0


@task(help={"json": "Print JSON on stdout"})
@run_task
def status(c, json=False):
    """The router's URL, version and workers with their health."""
    st = router.current()
    if st is None:
        console.print(Text("no router is up (invoke router.up --hosts GROUP)"))
        if json:
            print_json({"up": False, "url": None, "workers": []})
        return EXIT_FAILED
    client = router.Client(st.url)
    listed = _workers_json(client) if client.healthy() else []
    console.print(Text(f"router {st.url} pid {st.pid} sglang-router {st.version} policy {st.policy} config {st.config_hash}"))
    for w in listed:
        console.print(Text(f"  {w['url']}  {'healthy' if w['healthy'] else 'UNHEALTHY'}  load {w['load']}"))
    if json:
        print_json({"up": True, "url": st.url, "pid": st.pid, "version": st.version, "policy": st.policy,
                    "config_hash": st.config_hash, "workers": listed})  # fmt: skip
    return 0


@task(help={"json": "Print JSON on stdout"})
@run_task
def down(c, json=False):
    """Stop the router (idempotent)."""
    st = router.stop()
    console.print(Text(f"router {st.url} (pid {st.pid}) stopped" if st else "no router was up"))
    if json:
        print_json({"stopped": st is not None, "url": st.url if st else None})
    return 0


collection = Collection("router")
for _task in (up, status, down):
    collection.add_task(_task)
