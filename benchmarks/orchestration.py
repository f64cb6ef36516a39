"""A no-op deploy and an ad-hoc command on N lab hosts: llmfleet against ansible-core, pyinfra and raw fabric.

Needs root and the lab (run it under `flock /tmp/llmfleet-lab.lock`). Brings the lab to N hosts and deploys
once (converged), then times whole processes, as a user runs them, `--runs` times each, and prints medians:

- ``median_s``: `llmfleet deploy` with nothing to do, against the peers running the same remote work the
  no-op deploy does (the deploy lock, the one-round-trip fact gathering, the health check on the server's
  port, the audit line and the lock release), each peer in its own idiom (ansible-playbook `shell` tasks,
  pyinfra `server.shell` operations, fabric `ThreadingGroup.run`);
- ``adhoc_median_s``: `llmfleet exec --cmd true` against `ansible -m command -a true`,
  `pyinfra INVENTORY exec -- true` and fabric; ``llmfleet`` reuses the connections its previous
  run left open (``ssh_control_persist``, as ansible's ControlPersist does), ``llmfleet_fresh``
  makes new ones every run (``--set ssh_control_persist=0``).

Peers run from their own pinned virtualenvs (benchmarks/peers.py), with forks = N, host keys checked.

    python3 benchmarks/orchestration.py --hosts 16 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402

from llmfleet import catalog, facts, hostlock, inventory, paths, settings, shell  # noqa: E402
from llmfleet.actions.host import fact_query  # noqa: E402

ENV = {**os.environ, "HF_TOKEN": os.environ.get("HF_TOKEN", "hf_benchmarkDummy"), "ANSIBLE_HOST_KEY_CHECKING": "True"}

FABRIC = r'''
import json, sys
from fabric import Connection, ThreadingGroup
import paramiko
spec = json.loads(sys.argv[1])
conns = [Connection(h["address"], user=h["user"], connect_kwargs={"key_filename": h["key"], "look_for_keys": False,
         "allow_agent": False}) for h in spec["hosts"]]
for c in conns:
    c.client.load_host_keys(spec["known_hosts"])
    c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
group = ThreadingGroup.from_connections(conns)
for cmd in spec["commands"]:
    group.run(cmd, hide=True)
'''


def lab_hosts(n: int) -> list[dict[str, str]]:
    inv = inventory.load_inventory(paths.default_inventory())
    out = []
    for h in inv.select("lab")[:n]:
        hs = settings.for_host(h, {}, {})
        out.append({"name": h.name, "address": h.address, "user": h.user or "root",
                    "key": str(hs.resolved.get("ansible_ssh_private_key_file") or h.key_file),
                    "known_hosts": str(hs.settings.known_hosts_file or h.known_hosts_file)})  # fmt: skip
    return out


def noop_commands(model: str) -> list[str]:
    """The remote work of a no-op deploy, as shell text (what the peers run)."""
    s = settings.for_host(None, {}, {"model": model, "hardware": "mi300x"}).settings
    root = s.remote_root
    health = f"exec 3<>/dev/tcp/127.0.0.1/{s.port}; printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3; head -1 <&3"
    return [
        shell.join(hostlock.acquire(root)),
        facts.gather_command(fact_query(s, catalog.load())),
        shell.join(["bash", "-c", health]),
        shell.join(hostlock.audit(root, hostlock.audit_line("deploy", "bench", "ok"))),
        shell.join(hostlock.release(root)),
    ]


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one whole process, as a user runs it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    took = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        raise SystemExit(f"{shlex.join(argv[:4])} ... exited {proc.returncode}")
    return took, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def medians(tools: dict[str, list[str]], runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds per tool; runs interleaved (a, b, c, d, a, b, ...) so load drifts hit all alike."""
    walls: dict[str, list[float]] = {k: [] for k in tools}
    cpus: dict[str, list[float]] = {k: [] for k in tools}
    for _ in range(runs):
        for name, argv in tools.items():
            wall, cpu = timed(argv, ROOT)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return ({k: round(statistics.median(v), 3) for k, v in walls.items()},
            {k: round(statistics.median(v), 3) for k, v in cpus.items()})  # fmt: skip


def write_peer_files(tmp: Path, hosts: list[dict[str, str]], commands: list[str]) -> None:
    kh = hosts[0]["known_hosts"]
    lines = ["[lab]"] + [f"{h['name']} ansible_host={h['address']} ansible_user={h['user']} "
                         f"ansible_ssh_private_key_file={h['key']}" for h in hosts]  # fmt: skip
    lines += ["[lab:vars]", f"ansible_ssh_common_args='-o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes'",
              "ansible_python_interpreter=/usr/bin/python3"]  # fmt: skip
    (tmp / "hosts.ini").write_text("\n".join(lines) + "\n")
    # raw: ansible would read the fact query's `{{json .}}` (docker's Go template) as Jinja
    play = [{"hosts": "lab", "gather_facts": False,
             "tasks": [{"name": f"step {i}", "shell": "{% raw %}" + c + "{% endraw %}"} for i, c in enumerate(commands)]}]  # fmt: skip
    (tmp / "noop.yml").write_text(json.dumps(play))
    pyinv = "hosts = [\n" + "".join(
        f"    ({h['address']!r}, {{'ssh_user': {h['user']!r}, 'ssh_key': {h['key']!r}, 'ssh_known_hosts_file': {kh!r}, "
        f"'ssh_strict_host_key_checking': 'yes'}}),\n" for h in hosts) + "]\n"  # fmt: skip
    (tmp / "inventory.py").write_text(pyinv)
    (tmp / "deploy.py").write_text("from pyinfra.operations import server\n" + "".join(
        f"server.shell(name={f'step {i}'!r}, commands=[{c!r}])\n" for i, c in enumerate(commands)))  # fmt: skip
    (tmp / "fabric_run.py").write_text(FABRIC)


def fabric_argv(tmp: Path, hosts: list[dict[str, str]], commands: list[str]) -> list[str]:
    spec = {"hosts": hosts, "known_hosts": hosts[0]["known_hosts"], "commands": commands}
    return [str(peers.ensure("fabric")), str(tmp / "fabric_run.py"), json.dumps(spec)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="scout")
    ap.add_argument("--only", choices=["noop", "adhoc", "both"], default="both")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from llmfleet.lab import lab_up

    lab_up(args.hosts)
    n = args.hosts
    hosts = lab_hosts(n)
    commands = noop_commands(args.model)
    llm = [sys.executable, "-m", "llmfleet"]
    with tempfile.TemporaryDirectory(prefix="llmfleet-bench-") as tmpname:
        tmp = Path(tmpname)
        write_peer_files(tmp, hosts, commands)
        ansible, playbook, pyinfra = peers.ensure("ansible"), peers.ensure("ansible-playbook"), peers.ensure("pyinfra")
        noop = {
            "llmfleet": llm + ["deploy", "--hosts", "lab", "--model", args.model, "--forks", str(n)],
            "ansible": [str(playbook), "-i", str(tmp / "hosts.ini"), "-f", str(n), str(tmp / "noop.yml")],
            "pyinfra": [str(pyinfra), "-y", "--parallel", str(n), str(tmp / "inventory.py"), str(tmp / "deploy.py")],
            "fabric": fabric_argv(tmp, hosts, commands),
        }
        adhoc = {
            # default: shared connections kept 60 s (as ansible's own ControlPersist); _fresh: a handshake every run
            "llmfleet": llm + ["exec", "--hosts", "lab", "--cmd", "true", "--forks", str(n)],
            "llmfleet_fresh": llm + ["exec", "--hosts", "lab", "--cmd", "true", "--forks", str(n), "--set", "ssh_control_persist=0"],
            "ansible": [str(ansible), "lab", "-i", str(tmp / "hosts.ini"), "-f", str(n), "-m", "command", "-a", "true"],
            "pyinfra": [str(pyinfra), "-y", "--parallel", str(n), str(tmp / "inventory.py"), "exec", "--", "true"],
            "fabric": fabric_argv(tmp, hosts, ["true"]),
        }
        out: dict[str, object] = {"hosts": n, "runs": args.runs}
        try:
            measure(args, noop, adhoc, out)
        finally:
            # a peer that failed between its lock and release steps leaves the deploy lock (without an owner
            # record) on every host: the next user of the lab would find them all locked
            subprocess.run(llm + ["unlock", "--hosts", "lab"], cwd=ROOT, env=ENV, capture_output=True, check=False)
        out["remote_commands"] = commands
    print(json.dumps(out, indent=None if args.json else 2))


def measure(args: argparse.Namespace, noop: dict[str, list[str]], adhoc: dict[str, list[str]], out: dict[str, object]) -> None:
    if args.only in ("noop", "both"):
        timed(noop["llmfleet"], ROOT)  # converge first: the measured deploys have nothing to do
        for argv in noop.values():
            timed(argv, ROOT)  # warm each tool once (page cache, ansible's ssh control sockets), untimed
        out["median_s"], out["cpu_median_s"] = medians(noop, args.runs)
    if args.only in ("adhoc", "both"):
        for argv in adhoc.values():
            timed(argv, ROOT)
        out["adhoc_median_s"], out["adhoc_cpu_median_s"] = medians(adhoc, args.runs)


if __name__ == "__main__":
    main()
