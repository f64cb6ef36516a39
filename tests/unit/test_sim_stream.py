"""The simulated server's HTTP API on loopback: SGLang's exact chunk formats and pacing.

The formats are the ones the real clients parse (bench_serving's sglang and OpenAI
backends, sglang.lang's RuntimeEndpoint); tests/lab/test_sim_clients.py runs those clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("tokenizers")

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from llmfleet import paths  # noqa: E402
from llmfleet.lab import model_files  # noqa: E402
from llmfleet.lab.sim import flags, gsm8k, hfcache  # noqa: E402
from llmfleet.lab.sim.engine import Pieces, Script, plan  # noqa: E402
from llmfleet.lab.sim.latency import load_config  # noqa: E402
from llmfleet.lab.sim.server import Server  # noqa: E402
from llmfleet.lab.sim.textmodel import TextModel  # noqa: E402

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    return model_files.write_snapshot(tmp_path_factory.mktemp("hf"), SCOUT)


def make_server(snapshot: Path, load_seconds: float = 0.0, extra: list[str] = ()) -> Server:
    sim = load_config(paths.catalog_dir() / "lab-sim.yml")
    parser = flags.build_parser(flags.specs_from_fallback(sim.fallback_server_args))
    args = parser.parse_args(["--model-path", SCOUT, "--tp", "8", "--context-length", "4096", *extra])
    cfg = hfcache.model_config(snapshot)
    text = TextModel.load(snapshot, hfcache.tokenizer_config(snapshot), 0.945, sim.natural_output_tokens)
    return Server(args, sim, sim.models["scout"], text, SCOUT, cfg, 4096, load_seconds, "test")


def run(server: Server, body) -> None:
    """Start the app and the engine, wait for readiness, run body(client)."""

    async def main():
        client = TestClient(TestServer(server.app()))
        await client.start_server()
        engine = asyncio.ensure_future(server.engine.run())
        loader = asyncio.ensure_future(server.load())
        try:
            await body(client)
        finally:
            engine.cancel()
            loader.cancel()
            await client.close()

    asyncio.run(main())


async def wait_ready(client) -> None:
    for _ in range(200):
        r = await client.get("/health")
        if r.status == 200:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never ready")


def events(raw: bytes) -> list:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_health_is_503_while_loading_then_200(snapshot):
    server = make_server(snapshot, load_seconds=0.4)

    async def body(client):
        assert (await client.get("/health")).status == 503
        assert (await client.post("/generate", json={"text": "hi"})).status == 503
        await wait_ready(client)
        assert (await client.get("/health_generate")).status == 200
        info = await (await client.get("/get_model_info")).json()
        assert info["model_path"] == SCOUT and info["llmfleet_simulated"] is True
        assert "simulated" in info["llmfleet_note"]
        models = await (await client.get("/v1/models")).json()
        assert models["data"][0]["id"] == SCOUT and models["data"][0]["max_model_len"] == 4096
        sinfo = await (await client.get("/get_server_info")).json()
        assert sinfo["tp_size"] == 8 and sinfo["internal_states"] and sinfo["llmfleet_simulated"]["latency_model"] == "scout"
        assert (await client.post("/flush_cache")).status == 200

    run(server, body)


def test_generate_stream_is_sglang_cumulative_chunks(snapshot):
    server = make_server(snapshot)

    async def body(client):
        await wait_ready(client)
        payload = {"text": "Tell me about the lab.", "stream": True,
                   "sampling_params": {"max_new_tokens": 12, "ignore_eos": True, "temperature": 0.0}}
        resp = await client.post("/generate", json=payload)
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        evs = events(await resp.read())
        assert evs[-1] == "[DONE]"
        chunks = evs[:-1]
        # --stream-interval 1: an event per token; when the reader falls behind, one event carries the tokens made
        # since its last (SGLang's TokenizerManager._wait_one_response yields out_list[-1] and clears the list; so does the sim)
        counts = [c["meta_info"]["completion_tokens"] for c in chunks]
        assert counts == sorted(set(counts)) and counts[-1] == 12 and len(chunks) >= 6, counts
        for prev, cur in zip(chunks, chunks[1:]):
            assert cur["text"].startswith(prev["text"]) and len(cur["text"]) > len(prev["text"])
            assert cur["output_ids"][: len(prev["output_ids"])] == prev["output_ids"]
        assert all(c["meta_info"]["finish_reason"] is None for c in chunks[:-1])
        last = chunks[-1]["meta_info"]
        assert last["finish_reason"] == {"type": "length", "length": 12}
        assert set(last) >= {"id", "prompt_tokens", "completion_tokens", "cached_tokens", "e2e_latency"}
        assert last["prompt_tokens"] == server.text.count("Tell me about the lab.")

        plain = await (await client.post("/generate", json={**payload, "stream": False})).json()
        assert plain["text"] == chunks[-1]["text"] and plain["meta_info"]["completion_tokens"] == 12
        assert len(plain["output_ids"]) == 12

    run(server, body)


def test_tpot_paces_the_tokens(snapshot):
    server = make_server(snapshot)

    async def body(client):
        await wait_ready(client)
        t0 = time.perf_counter()
        resp = await client.post("/generate", json={"text": "x", "sampling_params": {"max_new_tokens": 41,
                                                                                     "ignore_eos": True}})
        elapsed_ms = (time.perf_counter() - t0) * 1000
        out = await resp.json()
        assert out["meta_info"]["completion_tokens"] == 41
        decode_ms = 40 * server.latency.tpot_ms(1)  # 40 steps after the first token
        assert decode_ms <= elapsed_ms <= decode_ms + 250

    run(server, body)


def test_stop_strings_eos_and_gsm8k_answers(snapshot):
    server = make_server(snapshot)
    p = gsm8k.generate(3)[2]

    async def body(client):
        await wait_ready(client)
        prompt = f"Question: {p.question}\nAnswer:"
        out = await (await client.post("/generate", json={
            "text": prompt, "sampling_params": {"max_new_tokens": 256, "stop": ["Question", "Assistant:"]}})).json()
        assert out["text"].rstrip().endswith(str(out["text"].split("#### ")[-1]).rstrip())
        assert "####" in out["text"] and out["meta_info"]["finish_reason"]["type"] == "stop"
        assert int(out["text"].split("#### ")[-1]) == (
            p.value if gsm8k.answers_correctly(p.question, 0.945) else gsm8k.wrong_value(p.question, p.value))
        cut = await (await client.post("/generate", json={
            "text": "hello", "sampling_params": {"max_new_tokens": 64, "stop": "llmfleet", "ignore_eos": True}})).json()
        assert cut["meta_info"]["finish_reason"] == {"type": "stop", "matched": "llmfleet"}
        assert "llmfleet" not in cut["text"] and cut["text"].endswith("by the ")
        zero = await (await client.post("/generate", json={"text": "cache me", "sampling_params": {"max_new_tokens": 0}})).json()
        assert zero["text"] == "" and zero["meta_info"]["completion_tokens"] == 0
        batch = await (await client.post("/generate", json={"text": ["a", "b"], "sampling_params": {"max_new_tokens": 2}})).json()
        assert isinstance(batch, list) and len(batch) == 2

    run(server, body)


def test_openai_completions_and_chat(snapshot):
    server = make_server(snapshot)

    async def body(client):
        await wait_ready(client)
        out = await (await client.post("/v1/completions", json={"model": SCOUT, "prompt": "hi", "max_tokens": 5,
                                                                "ignore_eos": True})).json()
        assert out["object"] == "text_completion" and out["choices"][0]["finish_reason"] == "length"
        assert out["usage"]["completion_tokens"] == 5 and out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + 5
        resp = await client.post("/v1/completions", json={"model": SCOUT, "prompt": "hi", "max_tokens": 6,
                                                          "ignore_eos": True, "stream": True,
                                                          "stream_options": {"include_usage": True}})
        evs = events(await resp.read())
        assert evs[-1] == "[DONE]" and evs[-2]["choices"] == [] and evs[-2]["usage"]["completion_tokens"] == 6
        text_chunks = evs[:-2]
        assert "".join(c["choices"][0]["text"] for c in text_chunks) == " This text was written by the"
        assert text_chunks[-1]["choices"][0]["finish_reason"] == "length"

        p = gsm8k.generate(1)[0]
        chat = await (await client.post("/v1/chat/completions", json={
            "model": SCOUT, "messages": [{"role": "user", "content": p.question}]})).json()
        msg = chat["choices"][0]["message"]
        assert msg["role"] == "assistant" and "####" in msg["content"] and chat["choices"][0]["finish_reason"] == "stop"
        resp = await client.post("/v1/chat/completions", json={"model": SCOUT, "stream": True, "max_tokens": 4,
                                                               "ignore_eos": True,
                                                               "messages": [{"role": "user", "content": "hi"}]})
        evs = events(await resp.read())
        assert evs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert evs[-2]["choices"][0]["finish_reason"] == "length" and evs[-1] == "[DONE]"

    run(server, body)


def test_api_key_guards_all_but_health(snapshot):
    server = make_server(snapshot, extra=["--api-key", "s3cr3t-key"])

    async def body(client):
        await wait_ready(client)
        assert (await client.get("/get_model_info")).status == 401
        ok = await client.get("/get_model_info", headers={"Authorization": "Bearer s3cr3t-key"})
        assert ok.status == 200
        info = await (await client.get("/server_info", headers={"Authorization": "Bearer s3cr3t-key"})).text()
        assert "s3cr3t-key" not in info  # the key is never echoed

    run(server, body)


def test_plan_ends_requests_like_the_real_scheduler():
    filler = Pieces((1, 2, 3), " a b c", (0, 2, 4, 6))
    script = Script(Pieces((), "", (0,)), filler)
    assert script.text(5) == " a b c a b" and script.ids(5) == [1, 2, 3, 1, 2]
    assert plan(script, 10, True, 4, 99).finish == {"type": "length", "length": 10}
    p = plan(script, 10, False, 4, 99)
    assert (p.target, p.finish) == (4, {"type": "stop", "matched": 99})
    p = plan(script, 10, True, 4, 99, stop=["c a"])
    assert p.finish == {"type": "stop", "matched": "c a"} and p.text_end == 5 and p.target == 4


def test_log_requests_logs_the_servers_own_timing_of_each_stream(snapshot, capsys):
    server = make_server(snapshot, extra=["--log-requests"])

    async def body(client):
        await wait_ready(client)
        before = time.time()
        payload = {"text": "x", "stream": True, "sampling_params": {"max_new_tokens": 5, "ignore_eos": True}}
        evs = events(await (await client.post("/generate", json=payload)).read())
        assert evs[-1] == "[DONE]"
        return before

    run(server, body)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "Finish: rid=" in ln]
    assert len(lines) == 1 and "[simulated]" in lines[0] and "completion_tokens=5" in lines[0]
    stamps = dict(part.split("=") for part in lines[0].split("Finish: ")[1].split(", "))
    order = [float(stamps[k]) for k in ("received", "queued", "first_token", "first_sent", "finished")]
    assert order == sorted(order) and order[-1] - order[0] >= 4 * server.latency.step_ms(1) / 1000


def test_without_log_requests_no_request_lines(snapshot, capsys):
    server = make_server(snapshot)

    async def body(client):
        await wait_ready(client)
        await (await client.post("/generate", json={"text": "x", "stream": True,
                                                    "sampling_params": {"max_new_tokens": 3}})).read()

    run(server, body)
    assert "Finish: rid=" not in capsys.readouterr().err
