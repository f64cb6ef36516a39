"""The simulated server behind the real sglang-router (PyPI's Rust binary), on loopback.

What the router needs from a worker (health, server info, load, generate, OpenAI routes)
is answered the way SGLang does; /get_load counts the requests in flight, which is what
a rollout's drain waits on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("sglang_router")

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from tests.unit.test_sim_stream import SCOUT, make_server, snapshot, wait_ready  # noqa: E402,F401


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_get_load_counts_requests_in_flight(snapshot):  # noqa: F811
    server = make_server(snapshot)

    async def main():
        client = TestClient(TestServer(server.app()))
        await client.start_server()
        engine = asyncio.ensure_future(server.engine.run())
        loader = asyncio.ensure_future(server.load())
        try:
            await wait_ready(client)
            idle = await (await client.get("/get_load")).json()
            assert idle == [{"dp_rank": 0, "num_reqs": 0, "num_waiting_reqs": 0, "num_tokens": 0}]
            body = {"text": "hello there", "sampling_params": {"max_new_tokens": 200, "ignore_eos": True}}
            pending = asyncio.ensure_future(client.post("/generate", json=body))
            await asyncio.sleep(0.3)
            busy = await (await client.get("/get_load")).json()
            assert busy[0]["num_reqs"] == 1 and busy[0]["num_tokens"] > 0
            assert (await pending).status == 200
            assert (await (await client.get("/get_load")).json())[0]["num_reqs"] == 0
        finally:
            engine.cancel()
            loader.cancel()
            await client.close()

    asyncio.run(main())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_real_router_routes_to_the_simulated_server(snapshot, tmp_path):  # noqa: F811
    server = make_server(snapshot)
    port, metrics = free_port(), free_port()

    async def main():
        client = TestClient(TestServer(server.app(), host="127.0.0.1"))
        await client.start_server()
        engine = asyncio.ensure_future(server.engine.run())
        loader = asyncio.ensure_future(server.load())
        worker = f"http://127.0.0.1:{client.port}"
        log = open(tmp_path / "router.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sglang_router.launch_router", "--host", "127.0.0.1", "--port", str(port),
             "--prometheus-port", str(metrics), "--policy", "round_robin", "--worker-urls", worker],
            stdout=log, stderr=subprocess.STDOUT, env={"HF_ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        try:
            await wait_ready(client)
            loop = asyncio.get_running_loop()
            deadline = time.monotonic() + 30
            workers: list = []
            while time.monotonic() < deadline:
                try:
                    workers = (await loop.run_in_executor(None, _get, f"http://127.0.0.1:{port}/workers"))["workers"]
                except OSError:
                    workers = []
                if workers and workers[0]["is_healthy"]:
                    break
                await asyncio.sleep(0.2)
            assert [w["url"] for w in workers] == [worker] and workers[0]["model_id"] == SCOUT
            body = json.dumps({"text": "hi", "sampling_params": {"max_new_tokens": 4, "ignore_eos": True}}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/generate", data=body,
                                         headers={"Content-Type": "application/json"})

            def post() -> dict:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return json.loads(r.read())

            answer = await loop.run_in_executor(None, post)
            assert answer["meta_info"]["completion_tokens"] == 4
            chat = json.dumps({"model": SCOUT, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=chat,
                                         headers={"Content-Type": "application/json"})
            doc = await loop.run_in_executor(None, post)
            assert doc["object"] == "chat.completion" and doc["choices"][0]["message"]["content"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()
            engine.cancel()
            loader.cancel()
            await client.close()

    asyncio.run(main())
