"""The live scheduler loop (engine.py) in real time: a prompt that arrives while a prefill pass
runs joins it instead of forcing a second prefill that would stall the running batch."""

from __future__ import annotations

import asyncio

import pytest

from llmfleet import paths
from llmfleet.lab.sim.engine import Engine, Pieces, Request, Script, plan
from llmfleet.lab.sim.latency import join_ms, load_config

MODEL = load_config(paths.catalog_dir() / "lab-sim.yml").models["scout"]


def request(rid: str, prompt_tokens: int, new_tokens: int) -> Request:
    filler = Pieces.from_ids([1, 2, 3], lambda ids: "".join(f"t{i} " for i in ids))
    script = Script(Pieces((), "", (0,)), filler)
    return Request(rid, prompt_tokens, script, plan(script, new_tokens, True, 0, None))


async def first_tokens(gap_s: float, prompts: tuple[int, int], logs: list[str]) -> tuple[float, float, float]:
    """Submit two prompts `gap_s` apart to an idle engine; (start, first token of each) in loop time."""
    engine = Engine(MODEL, log=logs.append)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(engine.run())
    a, b = request("a", prompts[0], 2), request("b", prompts[1], 2)
    start = loop.time()
    await engine.submit(a)
    await asyncio.sleep(gap_s)
    await engine.submit(b)
    seen: dict[str, float] = {}
    while len(seen) < 2:
        await asyncio.sleep(0.001)
        for r in (a, b):
            if r.first_token_at is not None and r.rid not in seen:
                seen[r.rid] = loop.time()
    task.cancel()
    return start, seen["a"], seen["b"]


def test_a_prompt_arriving_mid_prefill_joins_that_pass():
    logs: list[str] = []
    start, a, b = asyncio.run(first_tokens(0.015, (500, 400), logs))
    prefills = [line for line in logs if line.startswith("Prefill batch")]
    assert len(prefills) == 1 and "#new-seq: 2, #new-token: 900" in prefills[0]
    assert abs(a - b) < 0.005  # one pass gives both their first token
    expected = (MODEL.prefill_ms(500) + join_ms(MODEL, 400)) / 1000.0
    assert a - start == pytest.approx(expected, abs=0.03)


def test_a_prompt_arriving_after_the_pass_gets_its_own():
    logs: list[str] = []
    _, a, b = asyncio.run(first_tokens(MODEL.prefill_ms(500) / 1000.0 + 0.02, (500, 400), logs))
    assert len([line for line in logs if line.startswith("Prefill batch")]) == 2
    assert b > a
