"""Arbitrary text in every flag: an InputError (exit 2) or a run, never a traceback or the token.

Property-based (hypothesis) over the path every task takes before it connects:
`playbook_run.prepare` (inventory pattern, settings of every host, catalog names,
`--serial`, `--forks`), and over `--set` parsing; the CLI's error line is what
`run_task` prints, passed through the redacting stream.
"""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from llmfleet import playbook_run, secrets
from llmfleet.cli.common import RedactingStream
from llmfleet.cli.deploy import parse_sets
from llmfleet.errors import InputError

TOKEN = "hf_PropTestToken0123456789abcdef"
INV = "inventory/mi300-cluster.yml"
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
hostile = st.one_of(text, st.sampled_from([
    "[/x]", "[bold", "\x1b[31m", "$(touch /tmp/x)", "`id`", "a;b", "../../etc/passwd", "{{ 7*7 }}", "\u202e",
    "-rf", "--privileged", "a\nb", "\x00", "9" * 5000, "inf%", "nan", "1e999", "-1", "0", TOKEN, f"x{TOKEN}y",
]))  # fmt: skip
SETTING_KEYS = ["port", "context_length", "quant", "model", "hardware", "image", "container_name", "remote_dir",
                "hf_home", "serial", "preflight_skip", "extra_server_args", "contxt_length", "tp", "profile"]  # fmt: skip


def _error_line(exc: InputError) -> str:
    out = io.StringIO()
    RedactingStream(out).write(f"error: {exc}\n")
    return out.getvalue()


def _prepare(**kw) -> None:
    secrets.register(TOKEN)
    req = playbook_run.Request(playbook="deploy", inventory=INV, mode="dry-run", **kw)
    try:
        playbook_run.prepare(req)
    except InputError as exc:
        line = _error_line(exc)
        assert TOKEN not in line
        assert line.startswith("error: ")


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hosts=hostile, model=hostile)
def test_any_hosts_pattern_and_model(hosts, model):
    _prepare(hosts=hosts or "all", cli_vars={"model": model})


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.one_of(st.sampled_from(SETTING_KEYS), text), value=hostile)
def test_any_set_key_and_value(key, value):
    try:
        cli_vars = parse_sets([f"{key}={value}"])
    except InputError as exc:
        assert TOKEN not in _error_line(exc)
        return
    _prepare(hosts="mi300-cluster", cli_vars={"model": "scout", **cli_vars})


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(serial=hostile, forks=st.integers(min_value=-10**6, max_value=10**6))
def test_any_serial_and_forks(serial, forks):
    _prepare(hosts="mi300-cluster", cli_vars={"model": "scout"}, serial=serial or None, forks=forks)
