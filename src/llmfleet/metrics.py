"""Metrics out of benchmark and accuracy logs: bench_serving (SGLang, vLLM) and few_shot_gsm8k.

Why a parser by label: the result block of ``sglang.bench_serving`` changes with
almost every release (0.4.x has no TPOT rows nor text/vision lines, 0.5.7 adds
the Peak lines, 0.5.9 a P90 E2E row, 0.5.23 P90/P95 rows everywhere), vLLM
prints a sibling block with other labels, and logs arrive wrapped in tqdm bars,
ANSI colours, CRLF, markdown fences or comment prefixes. So every line is
optional and is recognised by its label alone; a value is kept exactly as
printed (``6101`` stays an int, ``74.62`` a float).

Several blocks in one text (a sweep, a log appended to): ``parse_blocks``
returns one dict per block, in order; ``parse_text`` returns the *last complete*
block (one closed by its ``=====`` line), or, when none is complete (a log cut
short), the last block as far as it goes. Lines a block prints before its
header (vLLM's ``Traffic request rate: inf`` / ``Maximum request concurrency:``
preamble) belong to the block that follows them; a value inside the block wins.
A text with no block header at all (a GSM8K log, a fragment) is parsed whole.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

# --- label table -----------------------------------------------------------
# (label regex, key, value kind). Labels are matched at the start of a line
# (after an optional prefix of blanks, '#', '>', '|' or '*'), case-sensitively,
# and must be followed by ':'.

Kind = str  # "str" | "num" | "rate" | "concurrency"

_LABELS: list[tuple[str, str, Kind]] = [
    (r"Backend", "backend", "str"),
    (r"Traffic request rate", "request_rate", "rate"),
    (r"Request rate configured \(RPS\)", "request_rate", "rate"),  # vLLM >= 0.10
    (r"Max(?:imum)? re(?:que|qeue)st concurrency", "max_concurrency", "concurrency"),  # 0.4.0 typo "reqeuest"
    (r"Successful requests", "completed", "num"),
    (r"Failed requests", "failed", "num"),  # vLLM
    (r"Benchmark duration \(s\)", "duration_s", "num"),
    (r"Total input tokens", "total_input_tokens", "num"),
    (r"Total input text tokens", "total_input_text_tokens", "num"),
    (r"Total input vision tokens", "total_input_vision_tokens", "num"),
    (r"Total generated tokens", "total_output_tokens", "num"),
    (r"Total output tokens", "total_output_tokens", "num"),
    (r"Total generated tokens \(retokenized\)", "total_output_tokens_retokenized", "num"),
    (r"Request throughput \(req/s\)", "request_throughput", "num"),
    (r"Request goodput \(req/s\)", "request_goodput", "num"),
    (r"Input token throughput \(tok/s\)", "input_throughput", "num"),
    (r"Output token throughput \(tok/s\)", "output_throughput", "num"),
    (r"Peak output token throughput \(tok/s\)", "peak_output_throughput", "num"),
    (r"Peak concurrent requests", "peak_concurrent_requests", "num"),
    (r"Total [Tt]oken throughput \(tok/s\)", "total_throughput", "num"),
    (r"Total throughput \(tok/s\)", "total_throughput", "num"),  # SGLang 0.2.x
    (r"Concurrency", "concurrency", "num"),
    (r"Accept length", "accept_length", "num"),
    # few_shot_gsm8k
    (r"Accuracy", "accuracy", "num"),
    (r"Invalid", "invalid", "num"),
    (r"Latency", "latency_s", "num"),
    (r"Output throughput", "output_throughput", "num"),
]

# Latency rows: "<stat> <metric> (ms):", e.g. "Median TTFT (ms):", "P90 E2E Latency (ms):",
# vLLM's "Mean E2EL (ms):", "P99.9 ITL (ms):" (vLLM --metric-percentiles).
_STAT_ROW = re.compile(
    r"(?P<stat>Mean|Median|Std|Max|Min|P\d+(?:\.\d+)?) (?P<metric>E2E Latency|E2EL|TTFT|TPOT|ITL) \(ms\)"
)
_METRIC_KEY = {"E2E Latency": "e2e", "E2EL": "e2e", "TTFT": "ttft", "TPOT": "tpot", "ITL": "itl"}

_PREFIX = r"^[\s#>|*]*"
_LABEL_RE = re.compile(
    _PREFIX + r"(?P<label>" + "|".join(f"(?:{p})" for p, _, _ in _LABELS) + "|" + _STAT_ROW.pattern + r"):(?P<rest>.*)$"
)
_LABEL_LOOKUP = [(re.compile(p + r"\Z"), key, kind) for p, key, kind in _LABELS]

_HEADER_RE = re.compile(_PREFIX + r"=+\s*Serving Benchmark Result\s*=+\s*$")
_CLOSE_RE = re.compile(_PREFIX + r"={20,}\s*$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]")
_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?\Z")

# Keys the DESIGN interface promises (the parser may emit more: p95_e2e_ms, p90_ttft_ms, ...).
BENCH_KEYS: tuple[str, ...] = (
    "backend", "request_rate", "max_concurrency", "completed", "failed", "duration_s",
    "total_input_tokens", "total_input_text_tokens", "total_input_vision_tokens",
    "total_output_tokens", "total_output_tokens_retokenized", "request_throughput",
    "input_throughput", "output_throughput", "peak_output_throughput", "peak_concurrent_requests",
    "total_throughput", "concurrency", "accept_length", "mean_e2e_ms", "median_e2e_ms",
    "p90_e2e_ms", "p99_e2e_ms", "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms",
    "median_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "p95_itl_ms", "p99_itl_ms",
    "max_itl_ms",
)
GSM8K_KEYS: tuple[str, ...] = ("accuracy", "invalid", "latency_s", "output_throughput")


# --- values ------------------------------------------------------------------


def parse_number(token: str) -> int | float | None:
    """A number exactly as printed: "6101" -> 6101, "74.62" -> 74.62, "-0.00" -> -0.0."""
    try:
        if _INT_RE.match(token):
            return int(token)
        if _FLOAT_RE.match(token):
            return float(token)
    except ValueError:  # an int longer than Python converts (4300 digits): no number a tool prints
        return None
    return None


def _value(kind: Kind, rest: str) -> tuple[bool, Any]:
    """(found, value) for the text after a label's colon; found=False when there is no usable value."""
    rest = rest.strip()
    if not rest:
        return False, None
    token = rest.split()[0]
    if kind == "str":
        return True, token
    if kind == "concurrency":
        if rest.lower().startswith("not set"):
            return True, None
        num = parse_number(token)
        if isinstance(num, float) and num.is_integer():
            num = int(num)
        return (num is not None), num
    if kind == "rate":
        if token.lower() in ("inf", "infinity"):
            return True, "inf"
        if token == "trace":
            return True, "trace"
        num = parse_number(token)
        return (num is not None), (float(num) if num is not None else None)
    num = parse_number(token)
    return (num is not None), num


def _key_for(label: str) -> tuple[str, Kind] | None:
    stat = _STAT_ROW.fullmatch(label)
    if stat:
        name = stat.group("stat").lower().replace(".", "_")
        return f"{name}_{_METRIC_KEY[stat.group('metric')]}_ms", "num"
    for pattern, key, kind in _LABEL_LOOKUP:
        if pattern.match(label):
            return key, kind
    return None


def parse_line(line: str) -> tuple[str, Any] | None:
    """(key, value) for one metric line, or None when the line is no metric or has no value."""
    m = _LABEL_RE.match(line)
    if not m:
        return None
    found = _key_for(m.group("label"))
    if not found:
        return None
    key, kind = found
    ok, value = _value(kind, m.group("rest"))
    return (key, value) if ok else None


# --- text and blocks ---------------------------------------------------------


def clean_lines(text: str) -> list[str]:
    """Lines without ANSI escapes; CRLF, lone CR (tqdm redraws) and LF all end a line."""
    text = _ANSI_RE.sub("", text)
    return re.split(r"\r\n|\r|\n", text)


@dataclass
class Block:
    """One result block: its metrics, whether its closing '=====' line was seen, where it starts."""

    metrics: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    line: int = 0  # 1-based line of the header (0: a headerless text)


def _collect(lines: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in lines:
        got = parse_line(line)
        if got:
            out[got[0]] = got[1]
    return out


def blocks(text: str) -> list[Block]:
    """Every result block of a text, in order (see the module docstring for the rules)."""
    lines = clean_lines(text)
    found: list[Block] = []
    preamble: list[str] = []
    current: Block | None = None
    body: list[str] = []

    def finish() -> None:
        assert current is not None
        current.metrics = {**_collect(preamble_of_current), **_collect(body)}
        found.append(current)

    preamble_of_current: list[str] = []
    for no, line in enumerate(lines, 1):
        if _HEADER_RE.match(line):
            if current is not None:
                finish()
            current = Block(line=no)
            preamble_of_current, preamble, body = preamble, [], []
            continue
        if current is None:
            preamble.append(line)
        elif _CLOSE_RE.match(line):
            current.complete = True
            finish()
            current, body = None, []
        else:
            body.append(line)
    if current is not None:
        # A block never closed was cut short; if the text also stops mid-line,
        # that last line may hold half a number ("Mean TPOT (ms):  1"): drop it.
        if body and lines and lines[-1] != "" and body[-1] is lines[-1]:
            body.pop()
        finish()
    return found


def parse_blocks(text: str, complete_only: bool = False) -> list[dict[str, Any]]:
    """The metrics of every block, in order; complete_only drops blocks cut short."""
    return [b.metrics for b in blocks(text) if b.metrics and (b.complete or not complete_only)]


def parse_text(text: str) -> dict[str, Any]:
    """The metrics of one log: its last complete block, else its last block, else the whole text."""
    found = [b for b in blocks(text) if b.metrics]
    complete = [b for b in found if b.complete]
    if complete:
        return complete[-1].metrics
    if found:
        return found[-1].metrics
    return _collect(clean_lines(text))


# --- bench_serving --output-file (JSONL) --------------------------------------

# JSONL key -> our key, where they differ. SGLang: bench_serving.py `result = {...}`
# (0.4.x .. 0.5.23); vLLM: the --save-result JSON of `vllm bench serve`.
_JSONL_RENAME = {
    "duration": "duration_s",
    "max_output_tokens_per_s": "peak_output_throughput",
    "max_concurrent_requests": "peak_concurrent_requests",
    "total_token_throughput": "total_throughput",  # vLLM
}
_JSONL_LAT = re.compile(r"(?P<stat>mean|median|std|p\d+(?:\.\d+)?|max|min)_(?P<metric>e2e_latency|e2el|ttft|tpot|itl)_ms\Z")
_JSONL_PLAIN = set(BENCH_KEYS) - {"duration_s", "peak_output_throughput", "peak_concurrent_requests"}
_JSONL_PLAIN |= {"failed", "request_goodput"}


def _jsonl_key(key: str) -> str | None:
    if key in _JSONL_RENAME:
        return _JSONL_RENAME[key]
    m = _JSONL_LAT.match(key)
    if m:
        metric = "e2e" if m.group("metric") in ("e2e_latency", "e2el") else m.group("metric")
        return f"{m.group('stat').replace('.', '_')}_{metric}_ms"
    return key if key in _JSONL_PLAIN else None


def from_result_record(record: dict[str, Any]) -> dict[str, Any]:
    """One bench_serving --output-file record in the keys of parse_text."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        ours = _jsonl_key(key)
        if ours is None:
            continue
        if ours == "request_rate":
            if isinstance(value, float) and math.isinf(value) or value in ("inf", "Infinity"):
                value = "inf"
            elif isinstance(value, (int, float)):
                value = float(value)
        elif ours == "max_concurrency":
            pass  # None means "not set", like the text block
        elif value is None:
            continue  # accept_length is null without speculative decoding
        if not isinstance(value, SCALARS):
            continue  # a list or object where a figure belongs: no metric (and nothing deep to carry)
        out[ours] = value
    return out


SCALARS = (str, int, float, bool, type(None))


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float made valid JSON: request_rate inf is "inf", others null.

    Python's json writes ``Infinity``/``NaN``, which no other JSON reader accepts.
    """
    return _json_safe(value, None)


def _json_safe(value: Any, key: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if key == "request_rate" and value > 0 else None
    if isinstance(value, dict):
        return {k: _json_safe(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, None) for v in value]
    return value


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    """Every record of a bench_serving --output-file (appended to once per run).

    Tolerant: records may span lines (a pretty-printed or re-wrapped file); text
    that is not JSON between records is skipped. ``Infinity`` (request rate inf)
    is accepted as Python's json does.
    """
    decoder = json.JSONDecoder()
    records: list[dict[str, Any]] = []
    pos, end = 0, len(text)
    while pos < end:
        start = text.find("{", pos)
        if start < 0:
            break
        try:
            obj, pos = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the stack: skip the line
            pos = text.find("\n", start)
            pos = end if pos < 0 else pos + 1
            continue
        if isinstance(obj, dict):
            records.append(from_result_record(obj))
    return records


# --- files -------------------------------------------------------------------


def parse_file(path: str | Path) -> dict[str, Any]:
    """The metrics of a log file; a ``.jsonl``/``.json`` file is read as bench_serving --output-file."""
    path = Path(path)
    return parse_named(path.name, path.read_text(encoding="utf-8", errors="replace"))


def is_jsonl(name: str) -> bool:
    """Whether a file is read as bench_serving --output-file (by its suffix)."""
    return Path(name).suffix in (".jsonl", ".json")


def parse_named(name: str, text: str, all_blocks: bool = False) -> Any:
    """The metrics of a log's text (a list of every block with ``all_blocks``); the name picks JSONL or text."""
    if all_blocks:
        return parse_jsonl(text) if is_jsonl(name) else parse_blocks(text)
    if is_jsonl(name):
        records = parse_jsonl(text)
        return records[-1] if records else {}
    return parse_text(text)


def kind_of(metrics: dict[str, Any]) -> str:
    """"gsm8k", "bench" or "empty": what a parsed log was."""
    if not metrics:
        return "empty"
    if "accuracy" in metrics:
        return "gsm8k"
    return "bench"

