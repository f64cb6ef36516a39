"""The in-container HTTP probe: its script run here against a real HTTP server, and its answers read."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmfleet.commands import http_probe


class _Sglangish(BaseHTTPRequestHandler):
    """Answers the routes the probes ask, the way SGLang shapes them."""

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: object) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        routes = {"/health": (200, ""), "/health_generate": (503, ""), "/get_load": (200, [{"num_reqs": 2}, {"num_reqs": 3}]),
                  "/v1/models": (200, {"object": "list", "data": [{"id": "meta-llama/Llama-4-Scout-17B-16E-Instruct"}]})}  # fmt: skip
        self._send(*routes.get(self.path, (404, "")))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = body["sampling_params"]["max_new_tokens"]
        self._send(200, {"text": " Paris", "meta_info": {"completion_tokens": n}})


@pytest.fixture(scope="module")
def port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sglangish)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _run(port: int, asks) -> str:
    argv = http_probe.argv(port, asks)
    assert argv[:2] == ["python3", "-c"]
    return subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, check=True, timeout=60).stdout


def test_health_generate_and_load_through_the_script(port):
    assert http_probe.health_answer(_run(port, http_probe.HEALTH)) == {
        "health": 200, "models": ["meta-llama/Llama-4-Scout-17B-16E-Instruct"]}  # fmt: skip
    assert http_probe.generate_answer(_run(port, http_probe.generate_asks(max_new_tokens=5))) == {
        "health_generate": 503, "generate": 200, "tokens": 5}  # fmt: skip
    assert http_probe.load_answer(_run(port, http_probe.LOAD)) == 5


def test_nothing_listening_reads_as_no_answer():
    with socket_closed_port() as p:
        out = _run(p, http_probe.HEALTH)
    assert http_probe.health_answer(out) == {"health": 0, "models": []}
    assert http_probe.load_answer(_run(p, http_probe.LOAD)) == -1


@pytest.mark.parametrize("stdout", ["", "Traceback ...", "[[200]]", '[["x", 5]]', "[1, 2]", '{"health": 200}'])
def test_garbled_output_never_raises(stdout):
    assert http_probe.health_answer(stdout)["models"] == []
    assert http_probe.generate_answer(stdout)["tokens"] == 0
    assert http_probe.load_answer(stdout) == -1


def socket_closed_port():
    """A port nothing listens on (bound, then closed)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        yield p

    return closed()
