"""`invoke lab.*`: the simulated MI300X cluster (see llmfleet.lab)."""

from __future__ import annotations

import time

from invoke import Collection

from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task, task
from .lab_serve import serve


def _lab():
    """The engine, imported when a task runs (keeps `invoke --list` fast)."""
    from .. import lab

    return lab


def _say(msg: str) -> None:
    console.print(f"[dim]lab:[/] {msg}", soft_wrap=True)


@task(help={
    "hosts": "Number of simulated MI300X hosts (default 4)",
    "no_images": "Do not build/check the SGLang images in the control engine",
    "json": "Print the lab as JSON on stdout",
})
@run_task
def up(c, hosts=None, no_images=False, json=False):
    """Bring the lab up (or change it) to exactly N hosts; writes inventory/lab.yml."""
    lab = _lab()
    started = time.monotonic()
    count = _count(4 if hosts is None else hosts)
    try:
        info = lab.lab_up(count, images=not no_images, progress=_say)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    except lab.LabError as exc:
        console.print(f"[bold red]lab.up failed:[/] {exc}", soft_wrap=True)
        return EXIT_FAILED
    took = time.monotonic() - started
    if json:
        print_json({
            "hosts": [{"name": h.name, "address": h.address, "netns": h.netns} for h in info.hosts],
            "inventory": str(info.inventory_path), "state_dir": str(info.state_dir),
            "ssh_key": str(info.ssh_key), "known_hosts": str(info.known_hosts),
            "control_docker_host": info.control_docker_host, "images": info.images,
            "datasets": info.datasets, "seconds": round(took, 2),
        })
        return 0
    for h in info.hosts:
        console.print(f"  {h.name:<6} {h.address}")
    noun = "host" if len(info.hosts) == 1 else "hosts"
    console.print(f"lab up: {len(info.hosts)} simulated MI300X {noun} (no real GPUs) in {took:.1f}s; "
                  f"inventory {info.inventory_path}", soft_wrap=True)
    return 0


def _count(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"--hosts takes a number, not {value!r}") from None


@task(help={"purge": "Also remove the control engine's image cache"})
@run_task
def down(c, purge=False):
    """Remove every lab host, the control engine and everything else the lab made."""
    lab = _lab()
    started = time.monotonic()
    try:
        lab.lab_down(purge=purge, progress=_say)
    except lab.LabError as exc:
        console.print(f"[bold red]lab.down failed:[/] {exc}", soft_wrap=True)
        return EXIT_FAILED
    console.print(f"lab down in {time.monotonic() - started:.1f}s")
    return 0


@task(help={"json": "Print JSON on stdout"})
@run_task
def status(c, json=False):
    """Show each lab host: address, daemons, reachability, faults, memory."""
    lab = _lab()
    rows = lab.lab_status()
    ctl = lab.control_status()
    if json:
        print_json({"hosts": rows, "control": ctl})
        return 0 if all(not r["problems"] for r in rows) else EXIT_FAILED
    if not rows:
        console.print("no lab is up (run `invoke lab.up`)")
        return 0
    from rich.table import Table

    table = Table("host", "address", "ssh", "docker", "faults", "problems", "RSS MiB")
    for r in rows:
        table.add_row(
            r["name"], r["address"], _yes(r["ssh"]), _yes(r["docker"]),
            ", ".join(f"{k}={v}" for k, v in r["faults"].items()) or "-",
            ", ".join(r["problems"]) or "-",
            f"{sum(r['rss_kib'].values()) / 1024:.0f}",
        )
    console.print(table)
    console.print(f"control engine {ctl['docker_host']}: {'up' if ctl['docker'] else 'down'}")
    return 0 if all(not r["problems"] for r in rows) else EXIT_FAILED


def _yes(flag: bool) -> str:
    return "[green]up[/]" if flag else "[red]down[/]"


@task(help={
    "host": "Lab host name (lab1, lab2, ...), or control (the control node's own link: --slow, --restore)",
    "cut": "Take the host's link down: connections time out",
    "restore": "Undo every fault on the host",
    "slow": "Limit the host's link to MBIT Mbit/s (both directions); on control: what it sends into the lab",
    "slow_gpu": "Make the host's simulated GPUs PCT% slower (power-capped, throttled, hot in amd-smi)",
    "hold_gpu_memory": "Keep simulated GPU memory held after a server stops (until --restore)",
    "loss": "Drop PCT percent of the packets arriving at the host",
    "stop_docker": "Stop the host's Docker engine",
    "stop_ssh": "Stop the host's sshd: connections are refused",
})
@run_task
def fault(c, host, cut=False, restore=False, slow=None, loss=None, stop_docker=False, stop_ssh=False,
          slow_gpu=None, hold_gpu_memory=False):
    """Inject a fault into one lab host or the control node (exactly one of the action flags)."""
    given = {"cut": cut, "restore": restore, "slow": slow is not None, "loss": loss is not None,
             "stop-docker": stop_docker, "stop-ssh": stop_ssh, "slow-gpu": slow_gpu is not None,
             "hold-gpu-memory": hold_gpu_memory}
    chosen = [name for name, on in given.items() if on]
    if len(chosen) != 1:
        raise InputError("lab.fault takes exactly one of --cut, --restore, --slow MBIT, --loss PCT, "
                         "--stop-docker, --stop-ssh, --slow-gpu PCT, --hold-gpu-memory")
    action = chosen[0]
    value = None
    raws = {"slow": slow, "loss": loss, "slow-gpu": slow_gpu}
    if action in raws:
        raw = raws[action]
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"--{action} takes a number, not {raw!r}") from None
    lab = _lab()
    try:
        now = lab.lab_fault(host, action, value)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    except lab.LabError as exc:
        console.print(f"[bold red]lab.fault failed:[/] {exc}", soft_wrap=True)
        return EXIT_FAILED
    console.print(f"{host}: {', '.join(f'{k}={v}' for k, v in now.items()) or 'no faults'}")
    return 0


@task(help={"host": "Lab host name", "amd_smi_json": "gpu_data (newer amd-smi, default) or list (older)"})
@run_task
def configure(c, host, amd_smi_json="gpu_data"):
    """Change a lab host's simulated software: the JSON shape its amd-smi prints."""
    lab = _lab()
    try:
        lab.lab_configure(host, amd_smi_json)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    console.print(f"{host}: amd-smi --json prints the {amd_smi_json!r} shape")
    return 0


collection = Collection("lab")
for _task in (up, down, status, fault, configure, serve):
    collection.add_task(_task)
