"""Generic playbook steps (command, shell, copy, template, directory, sysctl, service, wait_for) and
handlers, on scripted hosts (llmfleet.testing) through the real path: playbook loading, settings,
`playbook_run.execute`, the runner. The lab tests (tests/e2e/test_play_lab.py) prove the same over SSH.

The fake hosts keep files (SFTP puts land in ``FakeHost.files``) and answer the steps' probes
from them, so "changed only when content or mode differs" is checked against real state.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from llmfleet import playbook_run, secrets
from llmfleet.actions import ACTIONS
from llmfleet.actions.generic import (
    conf_with,
    holds,
    parse_condition,
    parse_state,
    unified_diff,
)
from llmfleet.errors import InputError
from llmfleet.playbook import load_playbook
from llmfleet.steps import CHANGED, FAILED, OK, SKIPPED, Event
from llmfleet.testing import FakeHost, FakeNetwork, result

STATE = r"^sh -c 'if \[ -d"  # generic.file_state's probe
DEST = "/etc/app/app.conf"


def _argv(command: str) -> list[str]:
    return shlex.split(command)


class Files:
    """A host's filesystem as the fake host keeps it: answers the state probe, mkdir, chmod, chown, head."""

    def __init__(self, host: FakeHost, owner: str = "root"):
        self.host = host
        self.dirs: set[str] = {"/", "/etc"}
        self.owners: dict[str, str] = {}
        self.owner = owner
        host.on(STATE, self.state).on(r"^mkdir -p -- ", self.mkdir).on(r"^chmod ", self.chmod)
        host.on(r"^chown ", self.chown).on(r"^head -c ", self.head)

    def state(self, command: str):  # type: ignore[no-untyped-def]
        path = _argv(command)[-1]
        if path in self.dirs:
            return result(command, 0, f"dir\n{self.host.modes.get(path, 0o755):o} {self.owners.get(path, self.owner)} root\n")
        if path not in self.host.files:
            return result(command, 0, "absent\n")
        sha = hashlib.sha256(self.host.files[path]).hexdigest()
        mode = self.host.modes.get(path, 0o644)
        return result(command, 0, f"file\n{mode:o} {self.owners.get(path, self.owner)} root\n{sha}  -\n")

    def mkdir(self, command: str):  # type: ignore[no-untyped-def]
        self.dirs.add(_argv(command)[-1])
        return result(command)

    def chmod(self, command: str):  # type: ignore[no-untyped-def]
        argv = _argv(command)
        self.host.modes[argv[-1]] = int(argv[1], 8)
        return result(command)

    def chown(self, command: str):  # type: ignore[no-untyped-def]
        argv = _argv(command)
        self.owners[argv[-1]] = argv[1].split(":")[0]
        return result(command)

    def head(self, command: str):  # type: ignore[no-untyped-def]
        return result(command, 0, self.host.files[_argv(command)[-1]].decode())


def _project(tmp_path: Path, tasks: str, handlers: str | None = None, play_extra: str = "",
             host_vars: str = "") -> Path:  # fmt: skip
    """An operator's playbook outside the repository: play.yml, roles/r/, templates/, inventory.yml."""
    role = tmp_path / "ops" / "roles" / "r"
    role.mkdir(parents=True)
    (role / "tasks.yml").write_text(tasks)
    if handlers is not None:
        (role / "handlers.yml").write_text(handlers)
    (tmp_path / "ops" / "templates").mkdir()
    (tmp_path / "ops" / "play.yml").write_text(f"name: ops\nroles: [r]\n{play_extra}")
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    h1: {ansible_host: 192.0.2.1" + (f", {host_vars}" if host_vars else "") + "}\n"
    )
    return tmp_path / "ops" / "play.yml"


def _play(pb: Path, net: FakeNetwork, mode: str = "apply", diff: bool = False,
          cli_vars: dict[str, Any] | None = None) -> tuple[Any, list[Event]]:  # fmt: skip
    events: list[Event] = []
    req = playbook_run.Request(playbook=str(pb), hosts="all", inventory=str(pb.parent.parent / "inventory.yml"),
                               mode=mode, cli_vars=cli_vars or {}, archive=False, diff=diff)  # fmt: skip
    report = playbook_run.execute(req, events.append, lambda text: None, connect=net.connect)
    return report, events


def _statuses(report: Any) -> list[tuple[str, str]]:
    return [(r.step, r.status) for r in report.results]


COPY_TASKS = f"""
- name: app config
  action: copy
  args: {{content: "port = 8000\\n", dest: {DEST}, mode: "0640"}}
"""


# --- copy ----------------------------------------------------------------------------------


def test_copy_writes_a_missing_file_then_reports_ok(tmp_path):
    pb = _project(tmp_path, COPY_TASKS)
    net = FakeNetwork()
    h = net.host("h1")
    Files(h)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("app config", CHANGED)]
    assert h.files[DEST] == b"port = 8000\n" and h.modes[DEST] == 0o640
    assert h.ran(r"^mkdir -p -- /etc/app$")
    report, _ = _play(pb, net)
    assert _statuses(report) == [("app config", OK)] and report.results[0].message == f"{DEST} up to date"
    assert report.recap["h1"].changed == 0 and net.unexpected == {}


def test_copy_changes_only_the_mode_when_only_the_mode_differs(tmp_path):
    pb = _project(tmp_path, COPY_TASKS)
    net = FakeNetwork()
    h = net.host("h1")
    Files(h)
    h.files[DEST], h.modes[DEST] = b"port = 8000\n", 0o644
    report, _ = _play(pb, net)
    assert _statuses(report) == [("app config", CHANGED)] and "mode 644 -> 640" in report.results[0].message
    assert h.ran(r"^chmod 640 -- /etc/app/app.conf$") and not h.ran(r"^put ")
    assert h.modes[DEST] == 0o640


def test_copy_in_check_mode_with_diff_shows_the_diff_and_changes_nothing(tmp_path):
    pb = _project(tmp_path, COPY_TASKS)
    net = FakeNetwork()
    h = net.host("h1")
    Files(h)
    h.files[DEST], h.modes[DEST] = b"port = 7000\n", 0o640
    report, events = _play(pb, net, mode="check", diff=True)
    assert _statuses(report) == [("app config", CHANGED)]
    assert h.files[DEST] == b"port = 7000\n" and not h.ran(r"^(put|mkdir|chmod)")
    diffs = [e.text for e in events if e.kind == "diff"]
    assert len(diffs) == 1 and "-port = 7000\n" in diffs[0] and "+port = 8000\n" in diffs[0]
    # without --diff: no diff is read or shown
    _, events = _play(pb, net, mode="check")
    assert not [e for e in events if e.kind == "diff"] and len(h.ran(r"^head ")) == 1


def test_a_secret_in_a_diff_is_masked_on_the_way_out():
    token = "hf_diffSecretValue0123456789abcd"
    secrets.register(token)
    text = unified_diff("/etc/env", "A=1\n", f"A=1\nHF_TOKEN={token}\n")
    assert token in text  # the diff itself is exact; every output path redacts it
    assert token not in secrets.redact(text) and "+HF_TOKEN=" in secrets.redact(text)


def test_copy_src_is_found_next_to_the_role_and_missing_src_fails_at_load(tmp_path):
    pb = _project(tmp_path, f"- {{name: c, action: copy, args: {{src: motd, dest: {DEST}}}}}\n")
    with pytest.raises(InputError, match=r"roles/r/tasks.yml:1: 'motd': no such file"):
        load_playbook(str(pb), ACTIONS)
    (pb.parent / "roles" / "r" / "files").mkdir()
    (pb.parent / "roles" / "r" / "files" / "motd").write_text("hello\n")
    net = FakeNetwork()
    Files(net.host("h1"))
    report, _ = _play(pb, net)
    assert report.success and net.host("h1").files[DEST] == b"hello\n"


# --- template ------------------------------------------------------------------------------


def test_template_renders_settings_and_the_operators_own_variables(tmp_path):
    tasks = f"- {{name: t, action: template, args: {{src: app.conf.j2, dest: {DEST}}}}}\n"
    pb = _project(tmp_path, tasks, host_vars="site: lab-east")
    (pb.parent / "templates" / "app.conf.j2").write_text(
        "site={{ site }} host={{ inventory_hostname }} port={{ port }}\n{% if docker_registry_mirror %}mirror\n{% endif %}"
    )
    net = FakeNetwork()
    h = net.host("h1")
    Files(h)
    report, _ = _play(pb, net, cli_vars={"port": 9000})
    assert report.success, report.results
    assert h.files[DEST].decode() == "site=lab-east host=h1 port=9000\n"  # the last newline is kept


def test_template_with_an_undefined_variable_fails_the_host_with_its_name(tmp_path):
    tasks = f"- {{name: t, action: template, args: {{src: bad.j2, dest: {DEST}}}}}\n"
    pb = _project(tmp_path, tasks)
    (pb.parent / "templates" / "bad.j2").write_text("x={{ no_such_var }}\n")
    net = FakeNetwork()
    Files(net.host("h1"))
    report, _ = _play(pb, net)
    assert _statuses(report) == [("t", FAILED)] and "no_such_var" in report.results[0].message
    assert DEST not in net.host("h1").files


def test_the_shipped_docker_daemon_template_is_valid_json(tmp_path):
    import json

    from llmfleet import paths, settings, templating

    text = (paths.templates_dir() / "docker-daemon.json.j2").read_text()
    base = dict(settings.for_host(None, {}, {}).resolved)
    assert templating.render_file_template(text, base).endswith("}\n")  # a file keeps its last newline
    doc = json.loads(templating.render_file_template(text, base))
    assert doc == {"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"}}
    full = {**base, "docker_registry_mirror": 'https://m.example:5000/"x', "docker_data_root": "/nvme/docker"}
    doc = json.loads(templating.render_file_template(text, full))
    assert doc["registry-mirrors"] == ['https://m.example:5000/"x'] and doc["data-root"] == "/nvme/docker"


# --- command / shell -------------------------------------------------------------------------


def test_command_runs_and_keeps_its_output_in_the_events(tmp_path):
    pb = _project(tmp_path, "- {name: c, action: command, args: {argv: [echo, '{{ inventory_hostname }} x']}}\n")
    net = FakeNetwork()
    net.host("h1").on(r"^echo 'h1 x'$", "h1 x\n")
    report, _ = _play(pb, net, mode="apply")
    assert _statuses(report) == [("c", CHANGED)] and report.results[0].message == "h1 x"


def test_command_creates_removes_and_conditions(tmp_path):
    tasks = """
- {name: made, action: command, args: {argv: [make-it], creates: /opt/it}}
- {name: gone, action: command, args: {argv: [drop-it], removes: /opt/old}}
- {name: quiet, action: shell, args: {cmd: "grep -q x /etc/f", changed_when: false, failed_when: "rc == 2"}}
- {name: changed-if, action: shell, args: {cmd: "upd", changed_when: "stdout contains updated"}}
- {name: warn, action: shell, args: {cmd: "chk", read_only: true, failed_when: false, warn_when: "rc != 0", msg: fix it}}
"""
    pb = _project(tmp_path, tasks)
    net = FakeNetwork()
    h = net.host("h1")
    h.on(r"^test -e /opt/it$", 0).on(r"^test -e /opt/old$", 1)
    h.on(r"^sh -c 'grep -q x /etc/f'$", 1).on(r"^sh -c upd$", "nothing to do\n").on(r"^sh -c chk$", 1)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("made", OK), ("gone", OK), ("quiet", OK), ("changed-if", OK), ("warn", OK)]
    assert report.results[0].message == "skipped: /opt/it exists" and report.results[4].message == "warning: fix it"
    assert not h.ran("make-it|drop-it") and net.unexpected == {}


def test_failed_when_fails_with_the_message_and_output(tmp_path):
    pb = _project(tmp_path, "- {name: f, action: shell, args: {cmd: boom, msg: 'boom broke -> fix: x'}}\n")
    net = FakeNetwork()
    net.host("h1").on(r"^sh -c boom$", result("sh -c boom", 3, "", "no such thing\n"))
    report, _ = _play(pb, net)
    assert _statuses(report) == [("f", FAILED)]
    assert report.results[0].message == "boom broke -> fix: x: no such thing" and not report.success


def test_check_mode_runs_only_read_only_commands(tmp_path):
    tasks = """
- {name: w, action: command, args: {argv: [rm, /x]}}
- {name: r, action: command, args: {argv: [cat, /proc/cmdline], read_only: true}}
"""
    pb = _project(tmp_path, tasks)
    net = FakeNetwork()
    net.host("h1").on(r"^cat /proc/cmdline$", "ro iommu=pt\n")
    report, _ = _play(pb, net, mode="check")
    assert _statuses(report) == [("w", CHANGED), ("r", OK)]
    assert report.results[0].commands == ["rm /x"] and not net.host("h1").ran("^rm")


# --- directory, sysctl ---------------------------------------------------------------------


def test_directory_creates_what_is_missing_only(tmp_path):
    pb = _project(tmp_path, "- {name: d, action: directory, args: {path: ['{{ hf_cache }}', /etc], mode: '0755'}}\n")
    net = FakeNetwork()
    h = net.host("h1")
    Files(h)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("d", CHANGED)] and report.results[0].message == "/var/lib/llmfleet/hf created"
    report, _ = _play(pb, net)
    assert _statuses(report) == [("d", OK)]


def _sysctl_host(net: FakeNetwork, live: str, conf: str | None) -> FakeHost:
    h = net.host("h1")
    Files(h)
    state = {"live": live}

    def read(command: str):  # type: ignore[no-untyped-def]
        path = "/etc/sysctl.d/90-llmfleet.conf"
        text = h.files[path].decode() if path in h.files else ""
        return result(command, 0, f"{state['live']}\n@@llmfleet@@\n{text}")

    def write(command: str):  # type: ignore[no-untyped-def]
        state["live"] = _argv(command)[-2]
        return result(command)

    h.on(r"^sh -c 'cat -- \"\$1\" \|\| exit 3", read).on(r"^sh -c 'printf", write)
    if conf is not None:
        h.files["/etc/sysctl.d/90-llmfleet.conf"] = conf.encode()
    return h


SYSCTL = "- {name: numa, action: sysctl, args: {name: kernel.numa_balancing, value: 0}}\n"


def test_sysctl_sets_and_persists_then_is_ok(tmp_path):
    pb = _project(tmp_path, SYSCTL)
    net = FakeNetwork()
    h = _sysctl_host(net, "1", "vm.swappiness = 10\nkernel.numa_balancing=1\n")
    report, _ = _play(pb, net)
    assert _statuses(report) == [("numa", CHANGED)]
    assert "kernel.numa_balancing 1 -> 0" in report.results[0].message
    assert h.ran(r"^sh -c 'printf .* _ 0 /proc/sys/kernel/numa_balancing$")
    assert h.files["/etc/sysctl.d/90-llmfleet.conf"] == b"vm.swappiness = 10\nkernel.numa_balancing = 0\n"
    report, _ = _play(pb, net)
    assert _statuses(report) == [("numa", OK)] and report.recap["h1"].changed == 0


def test_sysctl_check_mode_changes_nothing(tmp_path):
    pb = _project(tmp_path, SYSCTL)
    net = FakeNetwork()
    h = _sysctl_host(net, "1", None)
    report, events = _play(pb, net, mode="check", diff=True)
    assert _statuses(report) == [("numa", CHANGED)]
    assert not h.ran(r"^sh -c 'printf") and "/etc/sysctl.d/90-llmfleet.conf" not in h.files
    assert any("+kernel.numa_balancing = 0" in e.text for e in events if e.kind == "diff")


def test_conf_with_sets_one_line_and_keeps_the_rest():
    assert conf_with("", "a.b", "1") == "# Written by llmfleet (host tuning); edited by `invoke play`.\na.b = 1\n"
    assert conf_with("# c\na.b=2\nx.y = 3\na.b = 4\n", "a.b", "1") == "# c\na.b = 1\nx.y = 3\n"
    assert conf_with("# a.b = 9\n", "a.b", "1") == "# a.b = 9\na.b = 1\n"


# --- service, wait_for ---------------------------------------------------------------------


def test_service_uses_systemd_when_the_host_booted_with_it_else_sighup(tmp_path):
    pb = _project(tmp_path, "- {name: s, action: service, args: {name: docker}}\n")
    net = FakeNetwork()
    net.host("h1").on(r"^test -d /run/systemd/system$", 0).on(r"^systemctl restart docker$", 0)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("s", CHANGED)] and net.host("h1").ran("^systemctl restart docker$")
    net = FakeNetwork()
    net.host("h1").on(r"^test -d /run/systemd/system$", 1).on(r"/run/docker.pid$", "4242\n").on(r"^kill -HUP 4242$", 0)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("s", CHANGED)] and "SIGHUP" in report.results[0].message
    assert net.host("h1").ran(r"^kill -HUP 4242$") and net.unexpected == {}
    net = FakeNetwork()
    net.host("h1").on(r"^test -d /run/systemd/system$", 1).on(r"/run/docker.pid$", 1)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("s", FAILED)] and "no systemd" in report.results[0].message


def test_wait_for_polls_until_the_port_answers_and_fails_after_the_timeout(tmp_path):
    pb = _project(tmp_path, "- {name: w, action: wait_for, args: {port: 8000, timeout: 5, interval: 0.05}}\n")
    net = FakeNetwork()
    net.host("h1").on(r"/dev/tcp/", 1, times=2).on(r"/dev/tcp/", 0)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("w", OK)] and len(net.host("h1").ran("/dev/tcp/")) == 3
    pb = _project(tmp_path / "b", "- {name: w, action: wait_for, args: {url: 'http://127.0.0.1:1/health', timeout: 0.2, interval: 0.05}}\n")
    net = FakeNetwork()
    net.host("h1").on(r"^curl ", result("curl", 7, "", "connection refused"))
    report, _ = _play(pb, net)
    assert _statuses(report) == [("w", FAILED)] and "did not answer within 0.2s" in report.results[0].message


# --- handlers --------------------------------------------------------------------------------

HANDLER_TASKS = """
- {name: one, action: command, args: {argv: [one]}, notify: restart app}
- {name: two, action: command, args: {argv: [two]}, notify: [restart app]}
"""
HANDLERS = "- {name: restart app, action: command, args: {argv: [restart-app]}}\n"


def test_a_handler_runs_once_at_the_end_when_two_steps_notify_it(tmp_path):
    pb = _project(tmp_path, HANDLER_TASKS, HANDLERS)
    net = FakeNetwork()
    net.host("h1").on(r"^(one|two|restart-app)$", 0)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("one", CHANGED), ("two", CHANGED), ("restart app", CHANGED)]
    assert net.host("h1").commands == ["one", "two", "restart-app"]


def test_a_handler_never_runs_when_nothing_changed(tmp_path):
    tasks = HANDLER_TASKS.replace("argv: [one]}", "argv: [one], changed_when: false}").replace(
        "argv: [two]}", "argv: [two], changed_when: false}")
    pb = _project(tmp_path, tasks, HANDLERS)
    net = FakeNetwork()
    net.host("h1").on(r"^(one|two)$", 0)
    report, _ = _play(pb, net)
    assert _statuses(report) == [("one", OK), ("two", OK)] and not net.host("h1").ran("restart-app")


def test_a_notified_handler_is_skipped_after_a_failure(tmp_path):
    tasks = HANDLER_TASKS + "- {name: three, action: command, args: {argv: ['false']}}\n"
    pb = _project(tmp_path, tasks, HANDLERS)
    net = FakeNetwork()
    net.host("h1").on(r"^(one|two)$", 0).on(r"^false$", 1)
    report, _ = _play(pb, net)
    assert _statuses(report)[-2:] == [("three", FAILED), ("restart app", SKIPPED)]


def test_playbook_level_handlers_and_check_mode(tmp_path):
    pb = _project(tmp_path, "- {name: one, action: command, args: {argv: [one]}, notify: bounce}\n",
                  play_extra="handlers:\n  - {name: bounce, action: service, args: {name: app, manager: systemd}}\n")
    net = FakeNetwork()
    report, _ = _play(pb, net, mode="check")
    assert _statuses(report) == [("one", CHANGED), ("bounce", CHANGED)]
    assert report.results[1].commands == ["systemctl restart app"] and net.host("h1").commands == []


# --- load-time validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "handlers", "error"),
    [
        ("- name: x\n  action: coppy\n", None, r"tasks.yml:2: unknown action 'coppy' \(did you mean 'copy'\?\)"),
        ("- name: x\n  action: copy\n  args:\n    content: a\n    dset: /x\n", None,
         r"tasks.yml:5: args of 'copy': unknown key 'dset' \(did you mean 'dest'\?\)"),
        ("- name: x\n  action: shell\n  args:\n    cmd: a\n    changed_when: stdout has x\n", None,
         r"tasks.yml:\d: args of 'shell': condition 'stdout has x'"),
        ("- name: x\n  action: copy\n  args: {content: a, dest: /x, mode: 644}\n", None,
         r"tasks.yml:3: args of 'copy' mode: Expected `str \| null`, got `int`"),
        ("- name: x\n  action: command\n  args: {argv: [a]}\n  notify: restart ap\n", HANDLERS,
         r"tasks.yml:1: step 'x' notifies 'restart ap', which is no handler \(did you mean 'restart app'\?\)"),
        ("- name: x\n  action: command\n  args: {argv: [a]}\n  notfy: h\n", None,
         r"tasks.yml:4: unknown key 'notfy' in a step \(did you mean 'notify'\?\)"),
        ("- name: x\n  action: wait_for\n  args: {port: 80, url: 'http://x'}\n", None,
         r"tasks.yml:3: args of 'wait_for': wait_for takes exactly one of port and url"),
    ],
)
def test_a_bad_step_is_an_error_with_file_line_before_anything_connects(tmp_path, tasks, handlers, error):
    pb = _project(tmp_path, tasks, handlers)
    net = FakeNetwork()
    with pytest.raises(InputError, match=error):
        _play(pb, net)
    assert net.sessions == []


def test_unknown_role_names_where_it_looked(tmp_path):
    pb = _project(tmp_path, "[]\n")
    pb.write_text("name: ops\nroles: [r, nope]\n")
    with pytest.raises(InputError, match=r"play.yml:2: unknown role 'nope' \(looked in .*ops/roles, .*roles\)"):
        load_playbook(str(pb), ACTIONS)


def test_a_user_roles_defaults_are_template_variables_but_never_settings(tmp_path):
    pb = _project(tmp_path, f"- {{name: t, action: copy, args: {{content: '{{{{ greeting }}}}', dest: {DEST}}}}}\n")
    defaults = pb.parent / "roles" / "r" / "defaults.yml"
    defaults.write_text("greeting: hello\n")
    net = FakeNetwork()
    Files(net.host("h1"))
    report, _ = _play(pb, net)
    assert report.success and net.host("h1").files[DEST] == b"hello"
    defaults.write_text("greeting: hi\nport: 1\n")
    with pytest.raises(InputError, match=r"defaults.yml:2: 'port' is a setting"):
        load_playbook(str(pb), ACTIONS)


def test_the_shipped_host_tuning_playbook_loads():
    pb = load_playbook("host-tuning", ACTIONS)
    assert [s.action for s in pb.steps] == ["sysctl", "shell", "template", "directory"]
    assert [h.name for h in pb.handlers] == ["restart docker"] and pb.steps[2].notify == ("restart docker",)


# --- pure parts ----------------------------------------------------------------------------


def test_conditions_parse_and_hold():
    r = result("x", 2, "all updated\n", "")
    assert holds("rc == 2", r) and holds("rc != 0", r) and not holds("rc == 0", r)
    assert holds("stdout contains updated", r) and holds("stderr not contains x", r) and holds(True, r)
    for bad in ("rc > 1", "rc == x", "stdout == a", "exit 1", "__import__('os')"):
        with pytest.raises(ValueError):
            parse_condition(bad)


def test_parse_state():
    assert parse_state("absent\n").kind == "absent"
    s = parse_state("file\n640 root adm\n" + "a" * 64 + "  -\n")
    assert (s.kind, s.mode, s.owner, s.group, s.sha256) == ("file", 0o640, "root", "adm", "a" * 64)
    assert re.fullmatch(r"dir", parse_state("dir\n755 root root\n").kind)


def test_dry_run_of_host_tuning_connects_to_nothing_and_lists_each_command(tmp_path):
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    h1: {ansible_host: 192.0.2.1}\n")
    net = FakeNetwork()
    events: list[Event] = []
    req = playbook_run.Request(playbook="host-tuning", hosts="all", inventory=str(tmp_path / "inventory.yml"),
                               mode="dry-run", archive=False)  # fmt: skip
    report = playbook_run.execute(req, events.append, lambda text: None, connect=net.connect)
    assert net.sessions == [] and report.success
    commands = [c for r in report.results for c in r.commands]
    assert "sh -c 'printf \"%s\\n\" \"$1\" > \"$2\"' _ 0 /proc/sys/kernel/numa_balancing" in commands
    assert "upload" in commands[2] and commands[2].endswith("/etc/sysctl.d/90-llmfleet.conf (mode 644)")
    assert "systemctl restart docker" in commands and "mkdir -p -- /var/lib/llmfleet/cache/aiter" in commands


def test_diffs_print_as_plain_text_never_markup():
    import io

    from rich.console import Console

    from llmfleet.cli.play_tasks import play_printer

    out = io.StringIO()
    play_printer(Console(file=out, width=200, color_system=None))(Event("diff", "h1", "+[bold red]x[/]\n-y\n"))
    assert out.getvalue() == "h1 diff:\n+[bold red]x[/]\n-y\n"
