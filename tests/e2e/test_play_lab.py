"""`invoke play` with an operator's own playbook, outside the repository, on the lab (issue 11)."""

from __future__ import annotations

import pytest

from tests.helpers import cli

pytestmark = pytest.mark.lab

TASKS = """\
- name: app folder
  action: directory
  args: {path: /var/lib/llmfleet/app, mode: "0750"}
- name: app config
  action: template
  args: {src: app.conf.j2, dest: /var/lib/llmfleet/app/app.conf, mode: "0640"}
  notify: reload app
- name: motd
  action: copy
  args: {content: "tuned by llmfleet\\n", dest: /var/lib/llmfleet/app/motd}
  notify: reload app
- name: kernel
  action: command
  args: {argv: [uname, -r], read_only: true}
- name: sshd answers
  action: wait_for
  args: {host: "{{ ansible_host }}", port: 22, timeout: 10}
- name: marker
  action: shell
  args: {cmd: "date > /var/lib/llmfleet/app/made", creates: /var/lib/llmfleet/app/made}
"""
HANDLERS = """\
- name: reload app
  action: shell
  args: {cmd: "echo reloaded >> /var/lib/llmfleet/app/reloads"}
"""


def _ops(tmp_path):
    ops = tmp_path / "ops"
    (ops / "roles" / "app").mkdir(parents=True)
    (ops / "roles" / "app" / "tasks.yml").write_text(TASKS)
    (ops / "roles" / "app" / "handlers.yml").write_text(HANDLERS)
    (ops / "roles" / "app" / "templates").mkdir()
    (ops / "roles" / "app" / "templates" / "app.conf.j2").write_text("host = {{ inventory_hostname }}\nport = {{ port }}\n")
    (ops / "site.yml").write_text("name: site\nlock: true\nroles: [app]\n")
    return ops / "site.yml"


def test_a_user_playbook_runs_is_idempotent_and_check_diff_changes_nothing(lab, lab_ssh, tmp_path):
    pb = str(_ops(tmp_path))
    host = lab.hosts[0]
    first = cli("play", "--playbook", pb, "--hosts", host.name, "--set", "port=9001", "--json")
    assert first.code == 0, first.stderr[-3000:]
    statuses = {s["step"]: s["status"] for s in first.json["steps"]}
    assert statuses["app config"] == statuses["motd"] == statuses["reload app"] == "changed"
    assert statuses["kernel"] == statuses["sshd answers"] == "ok"
    conf = lab_ssh(host.address, "cat /var/lib/llmfleet/app/app.conf; stat -c %a /var/lib/llmfleet/app/app.conf").stdout
    assert conf == f"host = {host.name}\nport = 9001\n640\n"
    # two steps notified the handler: it ran once
    assert lab_ssh(host.address, "cat /var/lib/llmfleet/app/reloads").stdout == "reloaded\n"

    again = cli("play", "--playbook", pb, "--hosts", host.name, "--set", "port=9001", "--json")
    assert again.code == 0 and again.json["recap"][host.name]["changed"] == 0
    assert "reload app" not in {s["step"] for s in again.json["steps"]}

    check = cli("play", "--playbook", pb, "--hosts", host.name, "--set", "port=9002", "--check", "--diff")
    assert check.code == 0, check.stderr[-3000:]
    assert "-port = 9001" in check.stderr and "+port = 9002" in check.stderr
    assert "app : app config would change" in check.stderr
    after = lab_ssh(host.address, "cat /var/lib/llmfleet/app/app.conf; cat /var/lib/llmfleet/app/reloads").stdout
    assert after == f"host = {host.name}\nport = 9001\nreloaded\n"  # read back: nothing changed, no handler ran


def test_an_unknown_argument_is_refused_before_anything_connects(lab, tmp_path):
    pb = _ops(tmp_path)
    tasks = pb.parent / "roles" / "app" / "tasks.yml"
    tasks.write_text(TASKS.replace("args: {argv: [uname, -r], read_only: true}", "args: {argv: [uname], read_olny: true}"))
    r = cli("play", "--playbook", str(pb), "--hosts", "lab")
    assert r.code == 2
    assert f"{tasks}:14: args of 'command': unknown key 'read_olny' (did you mean 'read_only'?)" in r.stderr
    assert "recap" not in r.stderr
