"""The simulated server process: the real command line in, SGLang's HTTP API out.

Start-up follows a real one: parse the flags (the installed SGLang's own parser, rebuilt
from its source), check the GPUs the container sees, resolve the model in the Hugging
Face cache, "load" for a configurable time while /health answers 503, log the real phase
lines (each marked simulated), then serve.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import signal
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from . import BANNER, api, flags, gpu, hfcache
from .engine import Engine, Request, plan
from .latency import LatencyModel, SimConfig, load_config
from .textmodel import TextModel

ENV_CONFIG = "LLMFLEET_SIM_CONFIG"
ENV_LOAD = "LLMFLEET_SIM_LOAD_SECONDS"
ENV_GPUS = "LLMFLEET_SIM_GPUS"
ENV_PROFILE = "LLMFLEET_SIM_PROFILE"
EXIT_START_FAILED = 1
RECEIVED = "llmfleet_received"  # the aiohttp request's key for the time it reached the server


def finish_line(req: Request) -> str:
    """--log-requests: SGLang logs each finished request; the simulator logs its own timing of it
    (epoch seconds: received by the handler, queued for prefill, first token made and sent, finished),
    so that a client's TTFT can be split into the server's part and the client's."""
    def t(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    return (f"Finish: rid={req.rid}, prompt_tokens={req.prompt_tokens}, completion_tokens={req.produced}, "
            f"received={t(req.received)}, queued={t(req.created)}, first_token={t(req.first_token_at)}, "
            f"first_sent={t(req.first_sent_at)}, finished={t(req.finished_at)}")


def log(message: str, tp: bool = False) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    where = " TP0" if tp else ""
    sys.stderr.write(f"[{stamp}{where}] [simulated] {message}\n")
    sys.stderr.flush()


def config_path() -> Path:
    """$LLMFLEET_SIM_CONFIG, else the checkout's catalog/lab-sim.yml."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "catalog" / "lab-sim.yml"
        if candidate.is_file():
            return candidate
    return Path("/opt/llmfleet/lab-sim.yml")


def visible_gpus(dev: Path = Path("/dev")) -> int:
    """GPUs this process can use: /dev/dri/renderD* nodes, none without /dev/kfd ($LLMFLEET_SIM_GPUS overrides)."""
    env = os.environ.get(ENV_GPUS)
    if env:
        return int(env)
    if not (dev / "kfd").exists():
        return 0
    return len(glob.glob(str(dev / "dri" / "renderD*")))


def gpu_check(tp: int, pp: int, gpus: int) -> str | None:
    """The start-up error when the parallelism asks for more GPUs than are visible."""
    need = max(tp, 1) * max(pp, 1)
    if gpus == 0:
        return (
            "RuntimeError: No HIP GPUs are available\n"
            "[simulated] this container sees no GPU: no /dev/kfd, or no /dev/dri/renderD* node "
            "(pass --device=/dev/kfd --device=/dev/dri)"
        )
    if need > gpus:
        return (
            f"RuntimeError: HIP error: invalid device ordinal\n"
            f"[simulated] --tp-size {tp}{f' x --pp-size {pp}' if pp > 1 else ''} needs {need} GPUs, "
            f"but this container sees {gpus} (/dev/dri/renderD*)"
        )
    return None


def sglang_version() -> str:
    try:
        from importlib.metadata import version

        return version("sglang")
    except Exception:  # no sglang installed: lab.serve on the control node
        return "none (llmfleet lab simulator)"


def pick_profile(model_cfg: dict[str, Any], sim: SimConfig) -> LatencyModel:
    name = os.environ.get(ENV_PROFILE) or (model_cfg.get("llmfleet_sim") or {}).get("profile")
    if name in sim.models:
        return sim.models[name]
    if name:
        raise KeyError(f"no latency model {name!r} in lab-sim.yml (known: {', '.join(sim.models)})")
    return next(iter(sim.models.values()))


class Server:
    """State and handlers of one simulated server."""

    def __init__(self, args: argparse.Namespace, sim: SimConfig, latency: LatencyModel, text: TextModel,
                 model_path: str, model_cfg: dict[str, Any], context_len: int, load_seconds: float, flag_source: str,
                 device: gpu.Gpu | None = None):
        self.args = args
        self.sim = sim
        self.latency = latency
        self.text = text
        self.model_path = model_path
        self.model_cfg = model_cfg
        self.context_len = context_len
        self.load_seconds = load_seconds
        self.flag_source = flag_source
        self.served_name = flags.value(args, "served_model_name", default=model_path)
        self.api_key = flags.value(args, "api_key")
        self.ready = False
        tp = int(flags.value(args, "tensor_parallel_size", "tp_size", default=1))
        self.gpu = device or gpu.Gpu(None, tp, sim.gpu_memory_gb)
        self.mem_fraction = flags.value(args, "mem_fraction_static")
        self.engine = Engine(latency, int(flags.value(args, "stream_interval", default=1)), log=lambda m: log(m, tp=True),
                             decode_log_interval=int(flags.value(args, "decode_log_interval", default=40)),
                             slowdown=self.gpu.slowdown, on_change=self.gpu.load)
        self.started = time.time()
        self.log_requests = bool(flags.value(args, "log_requests", default=False))

    # ------------------------------------------------------------ app

    def app(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def auth(request: Any, handler: Any) -> Any:
            request[RECEIVED] = time.time()
            if not self._auth_ok(request):
                return web.json_response({"error": "Unauthorized"}, status=401)
            return await handler(request)

        app = web.Application(middlewares=[auth], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_get("/health", self.health)
        r.add_get("/health_generate", self.health_generate)
        r.add_get("/get_model_info", self.model_info)
        r.add_get("/model_info", self.model_info)
        r.add_get("/get_server_info", self.server_info)
        r.add_get("/server_info", self.server_info)
        r.add_get("/v1/models", self.models)
        r.add_get("/get_load", self.get_load)
        r.add_route("GET", "/flush_cache", self.flush_cache)
        r.add_route("POST", "/flush_cache", self.flush_cache)
        r.add_route("POST", "/generate", self.generate)
        r.add_route("PUT", "/generate", self.generate)
        r.add_post("/v1/completions", self.completions)
        r.add_post("/v1/chat/completions", self.chat_completions)
        return app

    @property
    def _middleware_exempt(self) -> set[str]:
        return {"/health", "/health_generate", "/metrics"}

    def _auth_ok(self, request: Any) -> bool:
        if not self.api_key or request.path in self._middleware_exempt:
            return True
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def _json(self, obj: Any, status: int = 200) -> Any:
        from aiohttp import web

        return web.Response(body=api.dumps(obj), status=status, content_type="application/json")

    def _error(self, message: str, status: int = 400) -> Any:
        return self._json(api.error_body(message, status), status)

    def _not_ready(self) -> Any:
        from aiohttp import web

        return web.Response(status=503)

    # ------------------------------------------------------------ info endpoints

    async def health(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(status=200 if self.ready else 503)

    async def health_generate(self, request: Any) -> Any:
        from aiohttp import web

        if not self.ready:
            return web.Response(status=503)
        req = self._request(f"HEALTH_CHECK_{time.time()}", 1, "", max_new_tokens=1, ignore_eos=True)
        await self._run_to_end(req)
        return web.Response(status=200)

    def _model_info(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "tokenizer_path": flags.value(self.args, "tokenizer_path", default=self.model_path),
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
            "has_image_understanding": bool(flags.value(self.args, "enable_multimodal", default=False)),
            "has_audio_understanding": False,
            "model_type": self.model_cfg.get("model_type"),
            "architectures": self.model_cfg.get("architectures"),
            "llmfleet_simulated": True,
            "llmfleet_note": "simulated SGLang server of the llmfleet lab: no GPU, no model weights, answers simulated",
        }

    async def model_info(self, request: Any) -> Any:
        return self._json(self._model_info())

    def _server_args(self) -> dict[str, Any]:
        out = {}
        for key, value in vars(self.args).items():
            if key in ("api_key", "admin_api_key") and value:
                value = "********"  # a secret never leaves the server
            out[key] = value
        out.update({"model_path": self.model_path, "context_length": self.context_len,
                    "tp_size": int(flags.value(self.args, "tensor_parallel_size", "tp_size", default=1)),
                    "served_model_name": self.served_name})
        return out

    async def server_info(self, request: Any) -> Any:
        if not self.ready:
            return self._not_ready()
        info = self._server_args()
        info.update({
            "internal_states": [{"last_gen_throughput": self.engine.last_gen_throughput,
                                 "#running-req": len(self.engine.running), "llmfleet_simulated": True}],
            "version": sglang_version(),
            "llmfleet_simulated": {
                "note": "simulated SGLang server of the llmfleet lab: no GPU, no model weights",
                "latency_model": self.latency.name,
                "gsm8k_accuracy": self.latency.gsm8k_accuracy,
                "server_args_from": self.flag_source,
            },
        })
        return self._json(info)

    async def models(self, request: Any) -> Any:
        card = {"id": self.served_name, "object": "model", "created": int(self.started), "owned_by": "sglang",
                "root": self.model_path, "parent": None, "max_model_len": self.context_len}
        return self._json({"object": "list", "data": [card]})

    async def get_load(self, request: Any) -> Any:
        """SGLang's /get_load (one record per DP rank): what the router's load monitor and a drain read."""
        waiting, running = self.engine.waiting, self.engine.running
        return self._json(api.load_records(len(running), len(waiting),
                                           sum(r.prompt_tokens for r in running + waiting)))

    async def flush_cache(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(
            text="Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting "
            "requests, the operation will not be performed.)\n"
        )

    # ------------------------------------------------------------ generation

    def _request(self, rid: str, prompt_tokens: int, prompt: str, max_new_tokens: int, ignore_eos: bool,
                 stop: Sequence[str] = (), chat: bool = False) -> Request:
        script, natural = self.text.script(prompt, chat=chat)
        room = max(0, self.context_len - prompt_tokens)
        p = plan(script, min(max_new_tokens, room), ignore_eos, natural, self.text.eos_id, stop)
        return Request(rid, prompt_tokens, script, p)

    async def _run_to_end(self, req: Request) -> None:
        task = asyncio.ensure_future(self.engine.submit(req))
        try:
            while not req.finished:
                await req.event.wait()
                req.event.clear()
        finally:
            if not req.finished:
                req.cancelled = True
            await task

    def _too_long(self, prompt_tokens: int) -> str | None:
        if prompt_tokens >= self.context_len:
            return (f"Input length ({prompt_tokens} tokens) exceeds the maximum allowed length "
                    f"({self.context_len} tokens). Use a shorter input or enable --allow-auto-truncate.")
        return None

    async def _stream(self, request: Any, req: Request, render: Any, tail: Any = None) -> Any:
        """Send render(req) each time the engine reports progress, then tail(req), then [DONE]."""
        from aiohttp import web

        req.received = request.get(RECEIVED)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        task = asyncio.ensure_future(self.engine.submit(req))
        try:
            while True:
                await req.event.wait()
                req.event.clear()
                chunk = render(req)
                if chunk:
                    await resp.write(chunk)
                    if req.first_sent_at is None:
                        req.first_sent_at = time.time()
                if req.finished:
                    break
            if tail is not None:
                for extra in tail(req):
                    await resp.write(extra)
            await resp.write(api.DONE)
            await resp.write_eof()
            if self.log_requests:
                log(finish_line(req))
        except (ConnectionResetError, asyncio.CancelledError):
            req.cancelled = True
            raise
        finally:
            if not req.finished:
                req.cancelled = True
            await asyncio.shield(task)
        return resp

    def _sampling(self, params: dict[str, Any], default_max: int) -> tuple[int, bool, list[str]]:
        max_new = params.get("max_new_tokens")
        max_new = default_max if max_new is None else int(max_new)
        stop = params.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        return max_new, bool(params.get("ignore_eos", False)), stop

    async def generate(self, request: Any) -> Any:
        """SGLang's native /generate: cumulative text and ids per event, meta_info with counts."""
        if not self.ready:
            return self._not_ready()
        body = await request.json()
        texts, ids = body.get("text"), body.get("input_ids")
        batch = isinstance(texts, list) or (isinstance(ids, list) and ids and isinstance(ids[0], list))
        prompts = (texts if isinstance(texts, list) else [texts]) if texts is not None else None
        id_lists = (ids if batch else [ids]) if ids is not None else None
        n = len(prompts) if prompts is not None else len(id_lists or [])
        if n == 0:
            return self._error("Either text or input_ids should be provided.")
        params_list = body.get("sampling_params") or {}
        params_list = params_list if isinstance(params_list, list) else [params_list] * n
        rid = body.get("rid") or uuid.uuid4().hex
        rids = rid if isinstance(rid, list) else [rid if n == 1 else f"{rid}-{i}" for i in range(n)]
        reqs = []
        for i in range(n):
            prompt = prompts[i] if prompts is not None else ""
            prompt_tokens = self.text.count(prompt) if prompts is not None else len((id_lists or [])[i])
            err = self._too_long(prompt_tokens)
            if err:
                return self._error(err)
            max_new, ignore_eos, stop = self._sampling(params_list[i], self.sim.default_max_new_tokens)
            reqs.append(self._request(rids[i], prompt_tokens, prompt, max_new, ignore_eos, stop))
        return_logprob = bool(body.get("return_logprob"))

        def result(req: Request) -> dict[str, Any]:
            latency = (req.finished_at - req.created) if req.finished_at else None
            meta = api.meta_info(req.rid, req.prompt_tokens, req.produced, req.plan.finish if req.finished else None,
                                 latency)
            out_ids = req.output_ids()
            if return_logprob:
                meta["input_token_logprobs"] = [[None, 0, None]] + [[-1.0, 0, None]] * max(req.prompt_tokens - 1, 0)
                meta["output_token_logprobs"] = [[-0.1, t, None] for t in out_ids]
            return api.generate_chunk(req.text(), out_ids, meta)

        if body.get("stream"):
            if n != 1:
                return self._error("[simulated] streaming a batch of prompts is not simulated")
            return await self._stream(request, reqs[0], lambda r: api.sse(result(r)))
        await asyncio.gather(*(self._run_to_end(r) for r in reqs))
        out = [result(r) for r in reqs]
        return self._json(out if batch else out[0])

    async def completions(self, request: Any) -> Any:
        """OpenAI /v1/completions (SGLang's: max_tokens defaults to 16, ignore_eos accepted)."""
        if not self.ready:
            return self._not_ready()
        body = await request.json()
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
        prompt_tokens = self.text.count(prompt)
        err = self._too_long(prompt_tokens)
        if err:
            return self._error(err)
        max_tokens = body.get("max_tokens")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        rid = f"cmpl-{uuid.uuid4().hex}"
        req = self._request(rid, prompt_tokens, prompt, 16 if max_tokens is None else int(max_tokens),
                            bool(body.get("ignore_eos", False)), stop)
        model, created = body.get("model") or self.served_name, int(time.time())
        if body.get("stream"):
            sent = [0]

            def render(r: Request) -> bytes:
                text = r.text()
                delta, sent[0] = text[sent[0]:], len(text)
                return api.sse(api.completion_chunk(rid, created, model, delta, r.plan.finish if r.finished else None))

            return await self._stream(request, req, render, self._usage_tail(body, rid, created, model, "text_completion"))
        await self._run_to_end(req)
        return self._json(api.completion_response(rid, created, model, req.text(), req.plan.finish, prompt_tokens, req.produced))

    @staticmethod
    def _usage_tail(body: dict[str, Any], rid: str, created: int, model: str, obj: str) -> Any:
        """The usage-only chunk at the end of a stream, when stream_options.include_usage asks for it."""
        if not (body.get("stream_options") or {}).get("include_usage"):
            return None
        return lambda r: [api.sse(api.usage_chunk(rid, created, model, obj, r.prompt_tokens, r.produced))]

    async def chat_completions(self, request: Any) -> Any:
        """OpenAI /v1/chat/completions with Llama 4's chat markup for the token count."""
        if not self.ready:
            return self._not_ready()
        body = await request.json()
        messages = body.get("messages") or []
        prompt_tokens, last_user = self.text.count_chat(messages)
        err = self._too_long(prompt_tokens)
        if err:
            return self._error(err)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        limit = self.context_len if max_tokens is None else int(max_tokens)
        req = self._request(rid, prompt_tokens, last_user, limit, bool(body.get("ignore_eos", False)), stop, chat=True)
        model, created = body.get("model") or self.served_name, int(time.time())
        if body.get("stream"):
            sent = [-1]

            def render(r: Request) -> bytes:
                out = b""
                if sent[0] < 0:
                    out += api.sse(api.chat_chunk(rid, created, model, {"role": "assistant", "content": ""}, None))
                    sent[0] = 0
                text = r.text()
                delta, sent[0] = text[sent[0]:], len(text)
                finish = r.plan.finish if r.finished else None
                if delta or finish:
                    out += api.sse(api.chat_chunk(rid, created, model, {"content": delta} if delta else {}, finish))
                return out

            return await self._stream(request, req, render,
                                      self._usage_tail(body, rid, created, model, "chat.completion.chunk"))
        await self._run_to_end(req)
        return self._json(api.chat_response(rid, created, model, req.text(), req.plan.finish, prompt_tokens, req.produced))

    # ------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        """The simulated start-up phases, spread over load_seconds; StartFailed when the memory plan
        does not fit, with the lines a real server logs."""
        s = self.load_seconds
        weights_gb = float((self.model_cfg.get("llmfleet_sim") or {}).get("weights_gb", 0))
        tp = int(flags.value(self.args, "tensor_parallel_size", "tp_size", default=1))
        per_gpu = weights_gb / max(tp, 1)
        total = self.sim.gpu_memory_gb
        avail = total - self.gpu.others_gb()
        arch = (self.model_cfg.get("architectures") or ["?"])[0]
        dtype = flags.value(self.args, "dtype", default="auto")
        log(f"Load weight begin. avail mem={avail:.2f} GB (simulated GPU, no weights are read)", tp=True)
        self.gpu.set(force=True, memory_mb=int(per_gpu * 1024 * 0.5))
        await asyncio.sleep(s * 0.5)
        log(f"Load weight end. type={arch}, dtype={dtype}, avail mem={avail - per_gpu:.2f} GB, "
            f"mem usage={per_gpu:.2f} GB.", tp=True)
        self.gpu.set(force=True, memory_mb=int(per_gpu * 1024))
        fraction = gpu.DEFAULT_MEM_FRACTION if self.mem_fraction is None else float(self.mem_fraction)
        if avail - per_gpu <= total * (1 - fraction):  # SGLang's rest_memory <= 0: no KV cache at all
            log("Scheduler hit an exception: RuntimeError: Not enough memory. Please try to increase "
                f"--mem-fraction-static. Current value: self.server_args.mem_fraction_static={fraction}", tp=True)
            raise StartFailed("memory held by other processes")
        await asyncio.sleep(s * 0.1)
        log(f"max_running_requests={flags.value(self.args, 'max_running_requests', default='auto')}, "
            f"context_len={self.context_len}", tp=True)
        self.gpu.set(force=True, memory_mb=int(fraction * total * 1024))
        log(f"Capture cuda graph begin. This can take up to several minutes. avail mem={total * (1 - fraction):.2f} GB",
            tp=True)
        await asyncio.sleep(s * 0.3)
        if not gpu.capture_fits(self.mem_fraction, self.sim.max_mem_fraction_static):
            lines = gpu.oom_lines(total, fraction)
            log(lines[0], tp=True)
            sys.stderr.write("\n".join(lines[1:]) + "\n")
            sys.stderr.flush()
            raise StartFailed("graph capture out of memory")
        self.gpu.set(force=True, memory_mb=int(gpu.planned_gb(total, self.mem_fraction) * 1024))
        log(f"Capture cuda graph end. Time elapsed: {s * 0.3:.2f} s. mem usage={gpu.GRAPH_MEMORY_GB:.2f} GB. "
            "(simulated: no kernels run)", tp=True)
        await asyncio.sleep(s * 0.1)
        self.ready = True
        self.gpu.set(force=True, ready=True)
        log("The server is fired up and ready to roll!")


class StartFailed(Exception):
    """The simulated start-up failed the way a real one does; the server exits 1."""


async def _heartbeat(device: gpu.Gpu, every: float = 1.0) -> None:
    while True:
        device.heartbeat()
        await asyncio.sleep(every)


async def _serve(server: Server, host: str, port: int) -> int:
    from aiohttp import web

    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        log(f"ERROR:    [Errno {exc.errno}] error while attempting to bind on address ({host!r}, {port}): "
            f"{(exc.strerror or str(exc)).lower()}")
        await runner.cleanup()
        return EXIT_START_FAILED
    log(f"HTTP server listening on http://{host}:{port} (/health answers 503 until the simulated load is done)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine_task = asyncio.ensure_future(server.engine.run())
    load_task = asyncio.ensure_future(server.load())
    beat_task = asyncio.ensure_future(_heartbeat(server.gpu))
    load_task.add_done_callback(lambda t: stop.set() if not t.cancelled() and t.exception() else None)
    await stop.wait()
    failed = load_task.done() and not load_task.cancelled() and load_task.exception() is not None
    log("Shutting down (start-up failed)." if failed else "Shutting down (signal received).")
    for task in (engine_task, load_task, beat_task):
        task.cancel()
    server.gpu.stopped()
    await runner.cleanup()
    return EXIT_START_FAILED if failed else 0


def main(argv: Sequence[str], prog: str | None = None) -> int:
    """Start the simulated server from a real SGLang server command line."""
    sys.stderr.write(BANNER + "\n")
    sys.stderr.flush()
    sim = load_config(config_path())
    parser, flag_source = flags.load_parser(sim.fallback_server_args, prog)
    args = parser.parse_args(list(argv))  # an unknown or bad flag exits 2 here, like the real server
    log(f"server_args (flags checked against {flag_source}): " + " ".join(argv))

    tp = int(flags.value(args, "tensor_parallel_size", "tp_size", default=1))
    pp = int(flags.value(args, "pipeline_parallel_size", "pp_size", default=1))
    problem = gpu_check(tp, pp, visible_gpus())
    if problem:
        log(problem)
        return EXIT_START_FAILED

    model_path = flags.value(args, "model_path")
    try:
        snapshot = hfcache.resolve(model_path, flags.value(args, "revision"))
        tok_dir = hfcache.resolve(flags.value(args, "tokenizer_path", default=model_path))
        draft = flags.value(args, "speculative_draft_model_path")
        if draft:
            hfcache.resolve(draft, flags.value(args, "speculative_draft_model_revision"))
    except hfcache.ModelNotFound as exc:
        log(str(exc))
        return EXIT_START_FAILED
    model_cfg = hfcache.model_config(snapshot)
    try:
        latency = pick_profile(model_cfg, sim)
    except KeyError as exc:
        log(str(exc))
        return EXIT_START_FAILED
    text = TextModel.load(tok_dir, hfcache.tokenizer_config(tok_dir), latency.gsm8k_accuracy, sim.natural_output_tokens)
    context_len = flags.value(args, "context_length") or hfcache.context_length(model_cfg) or 8192
    load_seconds = float(os.environ.get(ENV_LOAD, sim.load_seconds))
    log(f"model {model_path} from {snapshot} (simulated: config and tokenizer only); "
        f"latency model {latency.name!r}; {visible_gpus()} GPUs visible")
    device = gpu.Gpu(gpu.state_dir(), tp * pp, sim.gpu_memory_gb)
    server = Server(args, sim, latency, text, model_path, model_cfg, int(context_len), load_seconds, flag_source, device)
    host = flags.value(args, "host", default="127.0.0.1")
    port = int(flags.value(args, "port", default=30000))
    return asyncio.run(_serve(server, host, port))
