"""Tasks that act on hosts: deploy, bench, accuracy, collect, status, logs, stop, unlock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .. import runner
from .. import paths
from ..errors import EXIT_FAILED, InputError
from .common import console, print_json, run_task, task

HOST_HELP = {
    "hosts": "Hosts: a group, a host, a comma list, a glob, !name to exclude (default: all)",
    "inventory": "Inventory file or directory (default: inventory/)",
    "forks": "Hosts worked on at once (default 32)",
    "serial": "Work in batches: N, N% or a ramp like 1,25% (the first batch is the canary); stop after a failed batch",
    "json": "Print one JSON object on stdout (progress goes to stderr)",
    "set": "Extra variable KEY=VALUE (YAML value), highest precedence; repeatable",
    "hf_token_file": "File holding the Hugging Face token (default: $HF_TOKEN)",
}


def helps(*names: str, **extra: str) -> dict[str, str]:
    """Help texts for the shared flags a task has, plus its own."""
    return {**{n: HOST_HELP[n] for n in names}, **extra}


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs; values are YAML (so `true`, `8`, `[a, b]` keep their types)."""
    from .. import yamlsrc
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set takes KEY=VALUE, not {item!r}")
        out[key.strip()] = yamlsrc.loads(value) if value.strip() else ""
    return out


def _num(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"--{name} takes a whole number, not {value!r}") from None


def gate_vars(questions: Any, minimum: Any) -> dict[str, Any]:
    """`--gate-gsm8k N --gate-min-accuracy A` as settings; A alone is a mistake, and 0 < A <= 1."""
    n = _num(questions, "gate-gsm8k")
    if n is not None and n < 1:
        raise InputError(f"--gate-gsm8k takes a number of questions (1 or more), not {questions!r}")
    if minimum in (None, ""):
        return {"gate_gsm8k": n}
    if n is None:
        raise InputError("--gate-min-accuracy needs --gate-gsm8k N (how many GSM8K questions the gate asks)")
    try:
        a = float(minimum)
    except (TypeError, ValueError):
        a = -1.0
    if not 0 < a <= 1:
        raise InputError(f"--gate-min-accuracy takes an accuracy with 0 < A <= 1, not {minimum!r}")
    return {"gate_gsm8k": n, "gate_min_accuracy": a}


def router_vars(hosts: str, inventory: str | None) -> dict[str, Any]:
    """The router's URL (from router.up's state) and the host whose container runs the client (the first selected)."""
    from .. import inventory as inventory_mod
    from .. import router
    st = router.current()
    if st is None:
        raise InputError("--via-router: no router is up; start one with `invoke router.up --hosts GROUP`")
    selected = inventory_mod.load_inventory(inventory or paths.default_inventory()).select(hosts or "all")
    if not selected:
        raise InputError(f"--hosts {hosts!r} selects no host")
    return {"router_url": st.url, "router_bench_host": selected[0].name}


def _mode(dry_run: bool, check: bool) -> str:
    if dry_run and check:
        raise InputError("--dry-run and --check exclude each other")
    return "dry-run" if dry_run else ("check" if check else "apply")


def _finish(report: runner.RunReport, as_json: bool) -> int:
    from . import render
    if report.mode == "dry-run" and not as_json:
        render.print_dry_run(report, console)
    render.print_failures(report, console)
    console.print(render.recap_table(report))
    if report.archive:
        console.print(f"archive: {report.archive}", markup=False)
    if as_json:
        print_json(report.as_json())
    return 0 if report.success else EXIT_FAILED


def _pct(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"--max-fail-percentage takes a number from 0 to 100, not {value!r}") from None


def _run(playbook: str, hosts: str, inventory: str | None, mode: str, cli_vars: dict, forks: Any, serial: Any,
         hf_token_file: str | None, as_json: bool, archive: bool = True, max_fail: Any = None) -> int:  # fmt: skip
    from .. import playbook_run, runner
    from . import render
    n_forks = _num(forks, "forks")
    req = playbook_run.Request(
        playbook=playbook,
        hosts=hosts or "all",
        inventory=inventory,
        mode=mode,
        cli_vars=cli_vars,
        forks=runner.DEFAULT_FORKS if n_forks is None else n_forks,
        serial=str(serial) if serial not in (None, "") else None,
        hf_token_file=hf_token_file,
        archive=archive,
        max_fail_percentage=_pct(max_fail),
    )
    report = playbook_run.execute(req, render.printer(console), lambda text: console.print(text, markup=False),
                                  progress=render.transfer_progress(console))  # fmt: skip
    return _finish(report, as_json)


@task(
    help={
        **HOST_HELP,
        "model": "scout | maverick (catalog/models.yml)",
        "quant": "bf16 (default) | fp8",
        "tool_calls": "Enable the pythonic tool-call parser",
        "eagle3": "EAGLE3 speculative decoding with the model's draft",
        "context_length": "Server --context-length (default 65536)",
        "image_source": "pull (docker pull on the host, default) | push (from the control node over SSH)",
        "image": "Image tag (default: from catalog/images.yml and the host's GPU arch)",
        "sglang_version": "SGLang version, picks the image tag (default: catalog's)",
        "port": "Server port (default 8000)",
        "health_timeout": "Seconds to wait for the server to serve (default 1800)",
        "max_fail_percentage": "With --serial: stop after a batch whose failed share exceeds this (default 0)",
        "no_rollback": "A host failing its health gate stays as it is (no rollback to its previous container)",
        "gate_gsm8k": "Replaced servers also pass N GSM8K questions (the real few_shot_gsm8k; gsm8k_file staged)",
        "gate_min_accuracy": "With --gate-gsm8k: the lowest passing accuracy, 0 < A <= 1 (default 0.85)",
        "dry_run": "Connect to nothing; print each host's exact commands",
        "check": "Connect and gather facts; report what would change; change nothing",
    },
    iterable=["set"],
)
@run_task
def deploy(c, hosts="", model="", inventory=None, quant=None, tool_calls=False, eagle3=False, context_length=None,
           image_source=None, image=None, sglang_version=None, port=None, health_timeout=None, forks=None, serial=None,
           max_fail_percentage=None, no_rollback=False, gate_gsm8k=None, gate_min_accuracy=None,
           dry_run=False, check=False, json=False, hf_token_file=None, set=None):  # fmt: skip
    """Deploy SGLang Llama 4 on the hosts: preflight, image, server container, health."""
    if not model:
        raise InputError("--model is required: scout | maverick")
    cli_vars = {
        "model": model,
        "quant": quant,
        "tool_calls": True if tool_calls else None,
        "eagle3": True if eagle3 else None,
        "context_length": _num(context_length, "context-length"),
        "image_source": image_source,
        "image": image,
        "sglang_version": sglang_version,
        "port": _num(port, "port"),
        "health_timeout": _num(health_timeout, "health-timeout"),
        "rollback": False if no_rollback else None,
        **gate_vars(gate_gsm8k, gate_min_accuracy),
        **parse_sets(set),
    }
    return _run("deploy", hosts, inventory, _mode(dry_run, check), cli_vars, forks, serial, hf_token_file, json,
                max_fail=max_fail_percentage)


@task(help=helps("hosts", "inventory", "forks", "serial", "json", "set", "hf_token_file",
                 dry_run="Print each host's commands", check="Report what would change"), iterable=["set"])  # fmt: skip
@run_task
def rollback(c, hosts="", inventory=None, forks=None, serial=None, dry_run=False, check=False, json=False,
             hf_token_file=None, set=None):  # fmt: skip
    """Put each host's kept previous server container back: router-aware, drained, gated."""
    return _run("rollback", hosts, inventory, _mode(dry_run, check), parse_sets(set), forks, serial, hf_token_file, json)


@task(help=helps("hosts", "inventory", "forks", "serial", "json", "set", "hf_token_file",
                 dry_run="Print each host's commands", check="Report what would change"), iterable=["set"])  # fmt: skip
@run_task
def restart(c, hosts="", inventory=None, forks=None, serial=None, dry_run=False, check=False, json=False,
            hf_token_file=None, set=None):  # fmt: skip
    """Restart each host's server gracefully: out of the router, drained, stopped, gated, back in."""
    return _run("restart", hosts, inventory, _mode(dry_run, check), parse_sets(set), forks, serial, hf_token_file, json)


@task(
    help={
        **helps("hosts", "inventory", "forks", "json", "set"),
        "model": "The model the servers run (checked against the container)",
        "profile": "low | medium | high | all | a comma list (default all)",
        "num_prompts": "Override the profile's number of prompts",
        "max_concurrency": "Override the profile's concurrency",
        "input_len": "Random input length (default 1000)",
        "output_len": "Random output length (default 1000)",
        "dataset": "random (cookbook, needs sharegpt_file) | random-ids | sharegpt-file",
        "no_warmup": "Skip the warm-up pass before the low profile",
        "accuracy": "Also run the GSM8K check, in the same run and archive (playbooks/session.yml): one report",
        "num_questions": "GSM8K questions with --accuracy (default 200)",
        "via_router": "Bench through the router (router.up): the client runs in the first host's container against "
                      "the router's URL; results in the run's router/ folder, every host's server log collected",
        "dry_run": "Print each host's commands",
    },
    iterable=["set"],
)
@run_task
def bench(c, hosts="", model="", inventory=None, profile="all", num_prompts=None, max_concurrency=None, input_len=None,
          output_len=None, dataset=None, no_warmup=False, accuracy=False, num_questions=None, via_router=False, forks=None,
          dry_run=False, json=False, set=None):  # fmt: skip
    """Run the cookbook's benchmark profiles in every container (and GSM8K with --accuracy); archive the logs."""
    cli_vars = {
        "model": model or None,
        "profile": profile,
        "num_prompts": _num(num_prompts, "num-prompts"),
        "max_concurrency": _num(max_concurrency, "max-concurrency"),
        "input_len": _num(input_len, "input-len"),
        "output_len": _num(output_len, "output-len"),
        "dataset": dataset,
        "warmup": False if no_warmup else None,
        "num_questions": _num(num_questions, "num-questions"),
        **parse_sets(set),
    }
    playbook = "session" if accuracy else "bench"
    if via_router:
        if accuracy:
            raise InputError("--via-router benches the router only; run --accuracy without it")
        cli_vars.update(router_vars(hosts, inventory))
        playbook = "bench-router"
    return _run(playbook, hosts, inventory, _mode(dry_run, False), cli_vars, forks, None, None, json)


@task(help={**helps("hosts", "inventory", "forks", "json", "set"), "model": "The model the servers run", "num_questions": "GSM8K questions (default 200)",
            "dry_run": "Print each host's commands"}, iterable=["set"])  # fmt: skip
@run_task
def accuracy(c, hosts="", model="", inventory=None, num_questions=None, forks=None, dry_run=False, json=False, set=None):
    """Run the cookbook's GSM8K check in every container; archive the logs."""
    cli_vars = {"model": model or None, "num_questions": _num(num_questions, "num-questions"), **parse_sets(set)}
    return _run("accuracy", hosts, inventory, _mode(dry_run, False), cli_vars, forks, None, None, json)


@task(help=helps("hosts", "inventory", "forks", "json", "set"), iterable=["set"])
@run_task
def collect(c, hosts="", inventory=None, forks=None, json=False, set=None):
    """Bring server logs, container config and host facts into a new archive run."""
    return _run("collect", hosts, inventory, "apply", parse_sets(set), forks, None, None, json)


@task(help=helps("hosts", "inventory", "forks", "json", "set"), iterable=["set"])
@run_task
def status(c, hosts="", inventory=None, forks=None, json=False, set=None):
    """Each host's server container, config hash and health."""
    return _run("status", hosts, inventory, "apply", parse_sets(set), forks, None, None, json, archive=False)


@task(help=helps("hosts", "inventory", "forks", "set", lines="How many lines (default 100)"), iterable=["set"])
@run_task
def logs(c, hosts="", inventory=None, lines=100, forks=None, set=None):
    """The last lines of each host's server log."""
    cli_vars = {"log_lines": _num(lines, "lines"), **parse_sets(set)}
    return _run("logs", hosts, inventory, "apply", cli_vars, forks, None, None, False, archive=False)


@task(help=helps("hosts", "inventory", "forks", "json", "set", dry_run="Print each host's commands",
                 check="Report what would change"), iterable=["set"])  # fmt: skip
@run_task
def stop(c, hosts="", inventory=None, forks=None, dry_run=False, check=False, json=False, set=None):
    """Remove each host's server container."""
    return _run("stop", hosts, inventory, _mode(dry_run, check), parse_sets(set), forks, None, None, json)


TASKS = [deploy, rollback, restart, bench, accuracy, collect, status, logs, stop]


@task(help=helps("hosts", "inventory", "json", "set"), iterable=["set"])
@run_task
def unlock(c, hosts="", inventory=None, json=False, set=None):
    """Remove a stale deploy lock (only when no run is active on those hosts)."""
    return _run("unlock", hosts, inventory, "apply", parse_sets(set), None, None, None, json, archive=False)


TASKS.append(unlock)
