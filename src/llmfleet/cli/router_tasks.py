"""`invoke router.up|status|down`: the real sglang-router in front of a group's servers, on the control node
or (`--on HOST`) as a container on a host (llmfleet.actions.router_host, through playbooks/router-*.yml)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from invoke import Collection
from rich.text import Text

from .. import paths, router
from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task, task
from .deploy import HOST_HELP, parse_sets


def group_workers(hosts: str, inventory_path: str | None, sets: dict[str, Any]) -> list[tuple[str, str]]:
    """(host name, worker URL) of every selected host: its address and its server `port` setting."""
    from .. import inventory, settings
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
            "on": "Where the router runs: control (this node, default) or an inventory host (a container there)",
            "port": f"Router port (default {router.DEFAULT_PORT}; metrics on port+1, loopback)",
            "policy": f"Routing policy: {' | '.join(router.POLICIES)} (default cache_aware)"},
      iterable=["set"])  # fmt: skip
@run_task
def up(c, hosts="", inventory=None, on="control", port=None, policy="cache_aware", json=False, set=None):
    """Start sglang-router with every healthy server of the group as a worker (idempotent)."""
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
    try:
        if on == "control":
            _leave_host(None)
            bind = router.address_towards(workers[0][1].split("//")[1].rsplit(":", 1)[0])
            st, changed = router.start(router.RouterConfig(bind=bind, port=n_port, policy=policy, workers=tuple(healthy)))
        else:
            st, changed = up_on_host(on, inventory, n_port, policy, healthy, parse_sets(set))
    except router.RouterError as exc:
        console.print(Text(f"router.up failed: {exc}", style="red"))
        return EXIT_FAILED
    client = router.Client(st.url)
    listed = _workers_json(client)
    where = f"pid {st.pid}" if st.on == "control" else f"container on {st.on}"
    console.print(Text(f"router {'started' if changed else 'already up'}: {st.url} ({where}, policy {st.policy}, "
                       f"sglang-router {st.version}), {len(listed)} worker(s); log {st.log}"))  # fmt: skip
    if json:
        print_json({"url": st.url, "workers": listed, "pid": st.pid, "on": st.on, "policy": st.policy, "changed": changed})
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
    where = f"pid {st.pid}" if st.on == "control" else f"container on {st.on}"
    console.print(Text(f"router {st.url} {where} sglang-router {st.version} policy {st.policy} config {st.config_hash}"))
    for w in listed:
        console.print(Text(f"  {w['url']}  {'healthy' if w['healthy'] else 'UNHEALTHY'}  load {w['load']}"))
    if json:
        print_json({"up": True, "url": st.url, "pid": st.pid, "on": st.on, "version": st.version, "policy": st.policy,
                    "config_hash": st.config_hash, "workers": listed})  # fmt: skip
    return 0


@task(help={"json": "Print JSON on stdout"})
@run_task
def down(c, json=False):
    """Stop the router (idempotent); one on a host: its container is removed."""
    try:
        st = _leave_host(None) or router.stop()
    except router.RouterError as exc:
        console.print(Text(f"router.down failed: {exc}", style="red"))
        return EXIT_FAILED
    console.print(Text(f"router {st.url} (pid {st.pid}) stopped" if st else "no router was up"))
    if json:
        print_json({"stopped": st is not None, "url": st.url if st else None})
    return 0


def _host_play(name: str, host: str, inventory_path: str | None, cli_vars: dict[str, Any]) -> int | None:
    """Run playbooks/<name>.yml on one host (progress on stderr): its number of changes, None when it failed."""
    from .. import playbook_run
    from . import render
    req = playbook_run.Request(playbook=name, hosts=host, inventory=inventory_path, cli_vars=cli_vars, archive=False)
    report = playbook_run.execute(req, render.printer(console), lambda text: console.print(text, markup=False))
    render.print_failures(report, console)
    recap = report.recap.get(host)
    return recap.changed if report.success and recap is not None else None


def _leave_host(keep_on: str | None) -> router.RouterState | None:
    """Remove a recorded router container on a host unless it is on `keep_on`; the removed record."""
    st = router.recorded()
    if st is None or st.on in ("control", keep_on):
        return None
    if _host_play("router-down", st.on, None, {}) is None:
        raise router.RouterError(f"could not remove the router container on {st.on}; see above")
    router.forget(st, "router.down")
    return st


def up_on_host(on: str, inventory_path: str | None, port: int, policy: str, workers: list[str],
               sets: dict[str, Any]) -> tuple[router.RouterState, bool]:  # fmt: skip
    """The router container on host `on` (playbooks/router-up.yml), healthy, with `workers` registered."""
    from .. import inventory, settings
    inv = inventory.load_inventory(inventory_path or paths.default_inventory())
    hosts = inv.select(on)
    if len(hosts) != 1:
        raise InputError(f"--on takes control or one inventory host; {on!r} selects {len(hosts)}")
    host = hosts[0]
    running = router.current()
    if running is not None and running.on == "control":
        router.stop()
    _leave_host(host.name)
    python = settings.for_host(host, {}, sets).settings.router_python
    cli_vars = {**sets, "router_port": port, "router_policy": policy, "router_bundle": str(router.bundle(python))}
    before = router.recorded()
    changes = _host_play("router-up", host.name, inventory_path, cli_vars)
    if changes is None:
        raise router.RouterError(f"the router container did not start on {host.name}; see above")
    url = f"http://{host.address}:{port}"
    router.wait_up(url)
    client = router.Client(url)
    for w in workers:
        client.add(w)
    same = before is not None and before.url == url and before.policy == policy and before.version == router.version()
    st = router.RouterState(pid=0, url=url, policy=policy, config_hash=f"{host.name}:{port}:{policy}", version=router.version(),
                            started_at=before.started_at if same and before else datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            log=f"docker logs llmfleet-router on {host.name}", workers=[w["url"] for w in client.workers()],
                            on=host.name)  # fmt: skip
    router.save(st)
    if changes or not same:
        router.audit(f"start {url} on {host.name} policy {policy} workers {' '.join(workers) or '-'}")
    return st, bool(changes) or not same


collection = Collection("router")
for _task in (up, status, down):
    collection.add_task(_task)
