"""Health over the SSH connection's direct-tcpip channel: the HTTP parsing and `poll`'s choices.

The real channel is proven on the lab (tests/e2e/test_fleet_speed_lab.py); here the
scripted transport checks which remote commands `poll` still runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmfleet import catalog, facts
from llmfleet.actions import server
from llmfleet.playbook import Playbook
from llmfleet.steps import HostContext, RunContext
from llmfleet.testing import FakeNetwork
from llmfleet.transport import Endpoint, http_request, parse_http

from .fake_hosts import mi300x_facts

PORT = 30000
MODEL = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
CONTAINER = {"Id": "c1", "Image": "sha256:img", "State": {"Status": "running", "ExitCode": 0},
             "Config": {"Labels": {"llmfleet.config": "abc"}}}  # fmt: skip


def test_parse_http_reads_content_length_and_chunked_bodies():
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
    chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert parse_http(plain) == (200, b"hello")
    assert parse_http(chunked) == (503, b"abcde")
    assert parse_http(b"") == (0, b"")
    assert parse_http(b"SSH-2.0-OpenSSH\r\n") == (0, b"")


def test_http_request_is_a_closing_get_and_refuses_injected_lines():
    req = http_request("/v1/models", PORT).decode()
    assert req.startswith("GET /v1/models HTTP/1.1\r\n") and "Connection: close\r\n" in req and req.endswith("\r\n\r\n")
    for bad in ("v1", "/a b", "/x\r\nHost: evil"):
        with pytest.raises(ValueError):
            http_request(bad, PORT)


def _ctx(net: FakeNetwork, container: dict | None, changed: bool | None = False) -> tuple[HostContext, object]:
    host = net.host("h1")
    pb = Playbook(name="t", path=Path("t.yml"), roles=[], vars={}, lock=False)
    run = RunContext(playbook=pb, catalog=catalog.load(), mode="apply")
    settings = SimpleNamespace(container_name="llmfleet-sglang")
    ctx = HostContext(run, SimpleNamespace(name="h1"), settings, {}, net.connect(Endpoint("h1", "198.51.100.1")))  # type: ignore[arg-type]
    ctx.state.facts = facts.parse(mi300x_facts())
    ctx.state.facts.container = facts.parse_container(json.dumps(container)) if container else None
    ctx.state.facts_image = "some/image:tag"
    ctx.state.container_changed = changed
    return ctx, host


def _serving(host) -> None:
    host.on_http(PORT, "/health", 200, b"")
    host.on_http(PORT, "/v1/models", 200, json.dumps({"data": [{"id": MODEL}]}))


def test_a_serving_container_the_facts_saw_running_costs_no_remote_command():
    net = FakeNetwork()
    ctx, host = _ctx(net, CONTAINER)
    _serving(host)
    assert server.poll(ctx, "llmfleet-sglang", PORT) == ("running", 0, {"health": 200, "models": [MODEL]})
    assert host.commands == [] and host.http_requests == [f"GET :{PORT}/health", f"GET :{PORT}/v1/models"]


def test_a_recreated_container_is_asked_for_its_state_but_health_still_needs_no_process():
    net = FakeNetwork()
    ctx, host = _ctx(net, CONTAINER, changed=True)
    _serving(host)
    host.on(r"^docker inspect --type container --format", "running 0\n")
    status, _, answer = server.poll(ctx, "llmfleet-sglang", PORT)
    assert (status, answer["health"]) == ("running", 200)
    assert len(host.commands) == 1 and not host.ran("docker exec") and net.unexpected == {}


def test_a_starting_server_answers_503_and_models_are_not_asked():
    net = FakeNetwork()
    ctx, host = _ctx(net, CONTAINER)
    host.on_http(PORT, "/health", 503, b"")
    host.on(r"^docker inspect --type container --format", "running 0\n")
    assert server.poll(ctx, "llmfleet-sglang", PORT) == ("running", 0, {"health": 503, "models": []})
    assert host.http_requests == [f"GET :{PORT}/health"]


def test_a_dead_container_reports_its_exit_code():
    net = FakeNetwork()
    ctx, host = _ctx(net, CONTAINER, changed=True)
    host.on_http(PORT, "/health", 0, b"")
    host.on(r"^docker inspect --type container --format", "exited 137\n")
    assert server.poll(ctx, "llmfleet-sglang", PORT) == ("exited", 137, {})


def test_sshd_without_forwarding_falls_back_to_the_probe_inside_the_container():
    net = FakeNetwork()
    ctx, host = _ctx(net, CONTAINER)  # no HTTP rules: the fake refuses forwarding
    host.on(r"^docker inspect --type container --format", "running 0\n")
    models = json.dumps({"data": [{"id": MODEL}]})
    host.on(r"^docker exec llmfleet-sglang python3 -c", json.dumps([[200, "OK"], [200, models]]) + "\n")
    assert server.poll(ctx, "llmfleet-sglang", PORT) == ("running", 0, {"health": 200, "models": [MODEL]})
    assert len(host.ran("docker exec")) == 1 and net.unexpected == {}
