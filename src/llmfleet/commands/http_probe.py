"""HTTP requests to the server from inside its container, for when the control node cannot reach its port.

One small script (the container always has python3) serves every such check: it takes the
port and a JSON list of requests, and prints one JSON list of answers. The checks decide
what the answers mean on the control node (pure functions, unit-tested), not in the script.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

SCRIPT = """
import json, sys, urllib.error, urllib.request
port, asks = sys.argv[1], json.loads(sys.argv[2])
out = []
for path, body, timeout in asks:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            out.append([r.status, r.read().decode("utf-8", "replace")])
    except urllib.error.HTTPError as e:
        out.append([e.code, ""])
    except Exception:
        out.append([0, ""])
print(json.dumps(out))
""".strip()

Ask = tuple[str, Any, float]  # (path, JSON body or None for a GET, seconds)


def argv(port: int, asks: Sequence[Ask]) -> list[str]:
    """What `docker exec CONTAINER` runs for these requests."""
    return ["python3", "-c", SCRIPT, str(port), json.dumps([list(a) for a in asks])]


def answers(stdout: str, n: int) -> list[tuple[int, Any]]:
    """(status, body: parsed JSON when it is JSON, else text) per request; status 0 where nothing answered."""
    try:
        raw = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raw = []
    out: list[tuple[int, Any]] = []
    for item in list(raw)[:n] if isinstance(raw, list) else []:
        status, text = (item + [0, ""])[:2] if isinstance(item, list) else (0, "")
        text = text if isinstance(text, str) else ""
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        out.append((status if isinstance(status, int) else 0, body))
    return out + [(0, None)] * (n - len(out))


HEALTH: list[Ask] = [("/health", None, 5), ("/v1/models", None, 5)]


def model_ids(status: int, body: Any) -> list[Any]:
    """The model IDs a /v1/models answer (parsed JSON) lists; none unless it is a 200 with a list of models."""
    data = body.get("data", []) if status == 200 and isinstance(body, dict) else []
    return [d.get("id") for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def health_answer(stdout: str) -> dict[str, Any]:
    """The health probe's answer as the health check reads it: {"health": status, "models": [ids]}."""
    (health, _), (models, body) = answers(stdout, 2)
    return {"health": health, "models": model_ids(models, body)}


def generate_asks(prompt: str = "The capital of France is", max_new_tokens: int = 8) -> list[Ask]:
    """/health_generate, then one short deterministic /generate (the health gate's real generation)."""
    body = {"text": prompt, "sampling_params": {"max_new_tokens": max_new_tokens, "temperature": 0}}
    return [("/health_generate", None, 120), ("/generate", body, 120)]


def generate_answer(stdout: str) -> dict[str, Any]:
    """{"health_generate": status, "generate": status, "tokens": completion tokens (0 when none)}."""
    (hg, _), (code, body) = answers(stdout, 2)
    meta = body.get("meta_info", {}) if code == 200 and isinstance(body, dict) else {}
    tokens = meta.get("completion_tokens", 0) if isinstance(meta, dict) else 0
    return {"health_generate": hg, "generate": code, "tokens": tokens if isinstance(tokens, int) else 0}


LOAD: list[Ask] = [("/get_load", None, 5)]


def load_answer(stdout: str) -> int:
    """Requests the server is working on, summed over its data-parallel ranks; -1 when it cannot say."""
    ((status, body),) = answers(stdout, 1)
    rows = body if isinstance(body, list) else [body]
    if status != 200 or not all(isinstance(r, dict) for r in rows):
        return -1
    try:
        return sum(int(r.get("num_reqs", 0)) for r in rows)
    except (TypeError, ValueError):
        return -1
