"""The simulated scheduler: what each request will say, and when each token comes out.

Like SGLang's continuous-batching scheduler, one loop runs the GPU: waiting prompts are
prefilled first (one batch; the running requests wait meanwhile), otherwise one decode
step gives every running request one token and lasts step_ms(n) for a batch of n
(latency.next_op). A prefilled request has its first token and joins the batch. A prompt
that arrives while a prefill pass runs joins that pass when it fits (latency.joins): host
CPU jitter in the lab's clients must not turn into extra prefills. Per token
the loop only bumps a counter: the text is sliced out of precomputed strings when a
chunk is sent, so a few hundred concurrent streams stay cheap on two cores.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .latency import LatencyModel, join_ms, joins, next_op

FILLER = (
    " This text was written by the llmfleet lab simulator, not by a language model:"
    " there is no GPU and there are no model weights here. The simulator only plays back"
    " the timing of the SGLang cookbook so that the real clients can measure it."
)


@dataclass(frozen=True)
class Pieces:
    """Token ids with their text and cumulative character offsets (offsets[k] = len of k tokens)."""

    ids: tuple[int, ...]
    text: str
    offsets: tuple[int, ...]

    @classmethod
    def from_ids(cls, ids: Sequence[int], decode: Callable[[list[int]], str]) -> "Pieces":
        ids = list(ids)
        parts = [decode([i]) for i in ids]
        text = decode(ids)
        if "".join(parts) != text:  # a multi-byte character split over tokens: offsets by prefix
            offsets = [len(decode(ids[:k])) for k in range(len(ids) + 1)]
        else:
            offsets = [0]
            for p in parts:
                offsets.append(offsets[-1] + len(p))
        return cls(tuple(ids), text, tuple(offsets))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Script:
    """What the simulated model writes for one request: an answer (maybe), then filler, cycled."""

    head: Pieces
    filler: Pieces

    def offset(self, k: int) -> int:
        h = len(self.head)
        if k <= h:
            return self.head.offsets[k]
        q, r = divmod(k - h, len(self.filler))
        return len(self.head.text) + q * len(self.filler.text) + self.filler.offsets[r]

    def text(self, k: int) -> str:
        h = len(self.head)
        if k <= h:
            return self.head.text[: self.head.offsets[k]]
        q, r = divmod(k - h, len(self.filler))
        return self.head.text + self.filler.text * q + self.filler.text[: self.filler.offsets[r]]

    def ids(self, k: int) -> list[int]:
        h = len(self.head)
        if k <= h:
            return list(self.head.ids[:k])
        q, r = divmod(k - h, len(self.filler))
        return list(self.head.ids) + list(self.filler.ids) * q + list(self.filler.ids[:r])

    def tokens_for_chars(self, chars: int) -> int:
        """The fewest tokens whose text reaches `chars` characters."""
        h = len(self.head)
        if chars <= len(self.head.text):
            return bisect.bisect_left(self.head.offsets, chars)
        rest = chars - len(self.head.text)
        q, r = divmod(rest, len(self.filler.text))
        return h + q * len(self.filler) + bisect.bisect_left(self.filler.offsets, r)


@dataclass(frozen=True)
class Plan:
    target: int  # tokens this request will produce
    finish: dict  # SGLang's finish_reason
    text_end: int | None  # characters of the final text (a stop string cuts it), None = all


def plan(
    script: Script,
    max_new_tokens: int,
    ignore_eos: bool,
    natural_len: int,
    eos_id: int | None,
    stop: Sequence[str] = (),
) -> Plan:
    """How a request ends: max_new_tokens, the simulated model's EOS, or a stop string."""
    limit = max(0, max_new_tokens)
    if not ignore_eos and natural_len < limit:
        target, finish = natural_len, {"type": "stop", "matched": eos_id}
    else:
        target, finish = limit, {"type": "length", "length": limit}
    text_end = None
    stops = [s for s in stop if s]
    if stops and target > 0:
        text = script.text(target)
        hits = [(text.find(s), s) for s in stops]
        hits = [(i, s) for i, s in hits if i >= 0]
        if hits:
            idx, s = min(hits)
            target = max(1, script.tokens_for_chars(idx + len(s)))
            finish, text_end = {"type": "stop", "matched": s}, idx
    return Plan(target, finish, text_end)


@dataclass(eq=False)
class Request:
    rid: str
    prompt_tokens: int
    script: Script
    plan: Plan
    created: float = field(default_factory=time.time)
    received: float | None = None  # when its HTTP request reached the handler (before the body was read)
    first_sent_at: float | None = None  # when its first token was written to the client
    produced: int = 0
    finished: bool = False
    cancelled: bool = False
    first_token_at: float | None = None
    finished_at: float | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def text(self) -> str:
        text = self.script.text(self.produced)
        if self.finished and self.plan.text_end is not None:
            return text[: self.plan.text_end]
        return text

    def output_ids(self) -> list[int]:
        return self.script.ids(self.produced)


class Engine:
    """One scheduler loop for all requests, as SGLang's: prefill the waiting prompts (decode
    waits), else one decode step for the whole running batch (latency.next_op).

    `slowdown` (a callable, re-read before every step) stretches both: the lab's
    ``--slow-gpu`` fault. `on_change` is told the running/waiting counts when they move
    (the simulated GPU telemetry follows them).
    """

    def __init__(self, model: LatencyModel, stream_interval: int = 1, log: Callable[[str], None] | None = None,
                 decode_log_interval: int = 40, slowdown: Callable[[], float] | None = None,
                 on_change: Callable[[int, int], None] | None = None):
        self.model = model
        self.stream_interval = max(1, stream_interval)
        self.log = log
        self.decode_log_interval = decode_log_interval
        self.slowdown = slowdown or (lambda: 1.0)
        self.on_change = on_change
        self.running: list[Request] = []
        self.waiting: list[Request] = []
        self._wake = asyncio.Event()
        self._open: list[Request] | None = None  # the prefill batch in flight (late arrivals may join it)
        self._open_slowdown = 1.0
        self._deadline = 0.0  # loop time at which the op in flight ends
        self._steps = 0
        self._tokens_since_log = 0
        self._log_started = time.monotonic()
        self.total_requests = 0
        self.total_output_tokens = 0
        self.last_gen_throughput = 0.0

    @property
    def prefilling(self) -> int:
        return len(self.waiting)

    async def submit(self, req: Request) -> None:
        """Queue the request for prefill; the scheduler loop sets its event at each token."""
        self.total_requests += 1
        if req.plan.target <= 0:
            self._finish(req, time.time())
            return
        self.waiting.append(req)
        self._join(req)
        self._changed()
        self._wake.set()

    def _join(self, req: Request) -> None:
        """Take a request that arrives during a prefill pass into it (latency.joins: on time but for host jitter)."""
        batch = self._open
        if batch is None:
            return
        queued_behind = len(self.waiting) - 1 - len(batch)
        if joins(self.model, sum(r.prompt_tokens for r in batch), req.prompt_tokens, queued_behind):
            batch.append(req)
            self._deadline += join_ms(self.model, req.prompt_tokens, self._open_slowdown) / 1000.0

    def _finish(self, req: Request, now: float) -> None:
        req.finished = True
        req.finished_at = now
        req.event.set()

    def _changed(self) -> None:
        if self.on_change:
            self.on_change(len(self.running), len(self.waiting))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            self.waiting = [r for r in self.waiting if not r.cancelled]
            slow = self.slowdown()
            op = next_op(self.model, [r.prompt_tokens for r in self.waiting], len(self.running), slow)
            if op.kind == "idle":
                self._wake.clear()
                await self._wake.wait()
                deadline = None
                continue
            now = loop.time()
            if deadline is None or deadline < now - 0.25:  # idle, or far behind: no burst
                deadline = now
            batch = self.waiting[: op.take] if op.kind == "prefill" else []
            self._deadline = deadline + op.ms / 1000.0
            if batch:
                self._open, self._open_slowdown = batch, slow
            while (delay := self._deadline - loop.time()) > 0:  # a late arrival may extend a prefill
                await asyncio.sleep(delay)
            deadline, self._open = self._deadline, None
            if op.kind == "prefill":
                if self.log:
                    self.log(
                        f"Prefill batch. #new-seq: {len(batch)}, #new-token: {sum(r.prompt_tokens for r in batch)}, "
                        f"#cached-token: 0, #running-req: {len(self.running)}, "
                        f"#queue-req: {len(self.waiting) - len(batch)}"
                    )
                self._prefilled(batch, time.time())
            else:
                self._step(time.time())
            self._changed()

    def _prefilled(self, batch: list[Request], now: float) -> None:
        """The prefill pass gives each request of the batch its first token."""
        done = set(map(id, batch))
        self.waiting = [r for r in self.waiting if id(r) not in done]
        for req in batch:
            if req.cancelled:
                continue
            req.produced = 1
            req.first_token_at = now
            self.total_output_tokens += 1
            if req.produced >= req.plan.target:
                self._finish(req, now)
                continue
            req.event.set()
            self.running.append(req)

    def _step(self, now: float) -> None:
        interval = self.stream_interval
        still = []
        for req in self.running:
            if req.cancelled:
                continue
            req.produced += 1
            if req.produced >= req.plan.target:
                self._finish(req, now)
                continue
            if req.produced % interval == 0:
                req.event.set()
            still.append(req)
        produced = len(self.running)
        self.total_output_tokens += produced
        self._tokens_since_log += produced
        self.running = still
        self._steps += 1
        if self._steps % self.decode_log_interval == 0:
            elapsed = max(time.monotonic() - self._log_started, 1e-6)
            self.last_gen_throughput = self._tokens_since_log / elapsed
            if self.log:
                tokens = sum(r.prompt_tokens + r.produced for r in still)
                self.log(
                    f"Decode batch. #running-req: {len(still)}, #token: {tokens}, "
                    f"gen throughput (token/s): {self.last_gen_throughput:.2f}, #queue-req: {self.prefilling}"
                )
            self._tokens_since_log = 0
            self._log_started = time.monotonic()
