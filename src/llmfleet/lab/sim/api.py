"""SGLang's HTTP response shapes (0.5.x), as pure functions.

Read from the real server's sources (``srt/entrypoints/http_server.py``,
``managers/tokenizer_manager.py``, ``entrypoints/openai/protocol.py`` and
``serving_completions.py`` / ``serving_chat.py``) and checked against the parsers of the
real clients: ``bench_serving`` (``async_request_sglang_generate``,
``async_request_openai_completions``) and ``sglang.lang``'s ``RuntimeEndpoint``.
"""

from __future__ import annotations

from typing import Any

try:  # the real server encodes with orjson too; it keeps long streams cheap
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)

except ImportError:  # pragma: no cover - depends on the environment
    import json

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


DONE = b"data: [DONE]\n\n"


def sse(obj: Any) -> bytes:
    """One server-sent event, the way SGLang writes them: ``data: {json}\\n\\n``."""
    return b"data: " + dumps(obj) + b"\n\n"


def meta_info(rid: str, prompt_tokens: int, completion_tokens: int, finish: dict | None,
              e2e_latency: float | None = None) -> dict[str, Any]:
    """``meta_info`` of /generate (tokenizer_manager's order of keys)."""
    meta: dict[str, Any] = {
        "id": rid,
        "finish_reason": finish,
        "prompt_tokens": prompt_tokens,
        "weight_version": "default",
        "total_retractions": 0,
        "completion_tokens": completion_tokens,
        "cached_tokens": 0,
    }
    if finish is not None and e2e_latency is not None:
        meta["e2e_latency"] = e2e_latency
    return meta


def generate_chunk(text: str, output_ids: list[int], meta: dict[str, Any]) -> dict[str, Any]:
    """A /generate result: cumulative text and ids (the default, without --stream-output)."""
    return {"text": text, "output_ids": output_ids, "meta_info": meta}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
    }


def openai_finish(finish: dict | None) -> tuple[str | None, Any]:
    """(finish_reason, matched_stop) of the OpenAI API from SGLang's finish dict."""
    if not finish:
        return None, None
    return finish["type"], finish.get("matched")


def _openai(rid: str, obj: str, created: int, model: str, field: str, payload: Any, finish: dict | None,
            usage_doc: dict[str, Any] | None, final: bool) -> dict[str, Any]:
    """The OpenAI envelope SGLang wraps every completion, chat answer and stream chunk in."""
    reason, matched = openai_finish(finish)
    doc = {
        "id": rid,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [{"index": 0, field: payload, "logprobs": None, "finish_reason": reason, "matched_stop": matched}],
        "usage": usage_doc,
    }
    if final:
        doc["metadata"] = {"weight_version": "default"}
    return doc


def completion_response(rid: str, created: int, model: str, text: str, finish: dict | None, prompt_tokens: int,
                        completion_tokens: int) -> dict[str, Any]:
    return _openai(rid, "text_completion", created, model, "text", text, finish,
                   usage(prompt_tokens, completion_tokens), final=True)  # fmt: skip


def completion_chunk(rid: str, created: int, model: str, delta: str, finish: dict | None) -> dict[str, Any]:
    return _openai(rid, "text_completion", created, model, "text", delta, finish, None, final=False)


def chat_response(rid: str, created: int, model: str, text: str, finish: dict | None, prompt_tokens: int,
                  completion_tokens: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "reasoning_content": None, "tool_calls": None}
    return _openai(rid, "chat.completion", created, model, "message", message, finish,
                   usage(prompt_tokens, completion_tokens), final=True)  # fmt: skip


def chat_chunk(rid: str, created: int, model: str, delta: dict[str, Any], finish: dict | None) -> dict[str, Any]:
    return _openai(rid, "chat.completion.chunk", created, model, "delta", delta, finish, None, final=False)


def usage_chunk(rid: str, created: int, model: str, obj: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The final chunk when ``stream_options.include_usage`` is set: no choices, only usage."""
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [],
            "usage": usage(prompt_tokens, completion_tokens)}


def load_records(running: int, waiting: int, tokens: int) -> list[dict[str, Any]]:
    """/get_load: ``GetLoadReqOutput`` per DP rank (one rank without DP attention)."""
    return [{"dp_rank": 0, "num_reqs": running + waiting, "num_waiting_reqs": waiting, "num_tokens": tokens}]


def error_body(message: str, code: int = 400, kind: str = "BadRequestError") -> dict[str, Any]:
    """SGLang's ErrorResponse."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}
