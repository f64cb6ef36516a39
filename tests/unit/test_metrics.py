"""The bench_serving / GSM8K parser against real published logs and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfleet import metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BENCH = FIXTURES / "bench_logs"
GSM8K = FIXTURES / "gsm8k_logs"
LOGS = sorted(p for d in (BENCH, GSM8K) for p in d.iterdir() if p.suffix in (".txt", ".jsonl"))


def expected_of(log: Path) -> dict:
    return json.loads(log.with_name(log.stem + ".expected.json").read_text())


@pytest.mark.parametrize("log", LOGS, ids=[p.name for p in LOGS])
def test_fixture_parses_to_its_hand_checked_json(log: Path) -> None:
    got = metrics.parse_file(log)
    want = expected_of(log)
    assert got == want
    # ints stay ints, floats stay floats (JSON round trip keeps the distinction)
    for key, value in want.items():
        assert type(got[key]) is type(value), key


def test_every_log_has_an_expected_file_and_no_orphans() -> None:
    expected = {p.name for d in (BENCH, GSM8K) for p in d.glob("*.expected.json")}
    assert expected == {p.stem + ".expected.json" for p in LOGS}
    assert len(LOGS) >= 12 + 15 + 2


def test_seed_blocks_all_present() -> None:
    seeds = sorted(p.name for p in BENCH.glob("seed_cookbook*.txt"))
    assert len(seeds) == 12  # 2 revisions x 2 models x 3 profiles
    assert len(list(GSM8K.glob("seed_cookbook059_*_gsm8k.txt"))) == 2


def test_keys_are_the_design_keys_or_documented_extensions() -> None:
    allowed = set(metrics.BENCH_KEYS) | set(metrics.GSM8K_KEYS) | {"request_goodput"}
    for log in LOGS:
        for key in metrics.parse_file(log):
            if key.startswith(("p", "std_", "min_")) and key.endswith("_ms"):
                continue  # p90/p95/p99.9 rows of 0.5.23 and vLLM, std_ of the JSONL
            assert key in allowed, (log.name, key)


# --- the cookbook block, line by line ------------------------------------------------

COOKBOOK_LOW = (BENCH / "seed_cookbook057_scout_low.txt").read_text()


def test_cookbook_block_exact_values() -> None:
    m = metrics.parse_text(COOKBOOK_LOW)
    assert m["backend"] == "sglang"
    assert m["request_rate"] == "inf"
    assert m["max_concurrency"] == 1 and isinstance(m["max_concurrency"], int)
    assert m["completed"] == 10
    assert m["total_input_tokens"] == 6101 and isinstance(m["total_input_tokens"], int)
    assert m["total_input_vision_tokens"] == 0
    assert m["peak_output_throughput"] == 146.0 and isinstance(m["peak_output_throughput"], float)
    assert m["peak_concurrent_requests"] == 2
    assert m["p99_ttft_ms"] == 48091.05
    assert m["max_itl_ms"] == 10.44
    assert len(m) == 30


def test_every_line_is_optional() -> None:
    lines = COOKBOOK_LOW.splitlines(keepends=True)
    full = metrics.parse_text(COOKBOOK_LOW)
    for i, line in enumerate(lines):
        if ":" not in line:
            continue
        got = metrics.parse_text("".join(lines[:i] + lines[i + 1 :]))
        missing = set(full) - set(got)
        assert len(missing) == 1, (line, missing)
        assert {k: v for k, v in full.items() if k not in missing} == got


def test_crlf_ansi_and_tqdm_noise() -> None:
    noisy = (
        "\x1b[32mINFO\x1b[0m starting benchmark\r\n"
        "  0%|          | 0/10 [00:00<?, ?it/s]\r 50%|#####     | 5/10 [00:05<00:05]\r100%|##########| 10/10\r\n"
        "/usr/lib/python3/warnings.py:1: FutureWarning: `sglang.bench_serving` is deprecated\r\n"
        + COOKBOOK_LOW.replace("\n", "\r\n").replace("Median TTFT (ms):", "\x1b[1mMedian TTFT (ms):\x1b[0m")
    )
    assert metrics.parse_text(noisy) == metrics.parse_text(COOKBOOK_LOW)


def test_not_set_inf_and_float_rate() -> None:
    text = (
        "============ Serving Benchmark Result ============\n"
        "Backend:                                 sglang-oai\n"
        "Traffic request rate:                    32.0\n"
        "Max request concurrency:                not set\n"
        "Successful requests:                     1920\n"
        "==================================================\n"
    )
    m = metrics.parse_text(text)
    assert m == {"backend": "sglang-oai", "request_rate": 32.0, "max_concurrency": None, "completed": 1920}
    assert json.loads(json.dumps(m))["max_concurrency"] is None
    assert metrics.parse_text(text.replace("32.0", "inf"))["request_rate"] == "inf"
    assert metrics.parse_text(text.replace("32.0", "trace"))["request_rate"] == "trace"


def test_label_variants_across_versions() -> None:
    text = "\n".join([
        "Max reqeuest concurrency:                4",  # 0.4.0's typo
        "Total output tokens:                     99",
        "Total throughput (tok/s):                12.50",  # 0.2.x
        "Total Token throughput (tok/s):          13.50",  # vLLM: later line wins
        "Maximum request concurrency:             8",  # vLLM
        "Request rate configured (RPS):           1.50",  # vLLM >= 0.10
        "Failed requests:                         3          <<< annotation",
        "Mean E2EL (ms):                          900.00",
        "P99.9 ITL (ms):                          12.00",
        "P90 E2E Latency (ms):                    1000.00",
        "P95 TTFT (ms):                           150.00",
        "Accept length:                           2.58",
        "",
    ])
    m = metrics.parse_text(text)
    assert m == {
        "max_concurrency": 8, "total_output_tokens": 99, "total_throughput": 13.5, "request_rate": 1.5,
        "failed": 3, "mean_e2e_ms": 900.0, "p99_9_itl_ms": 12.0, "p90_e2e_ms": 1000.0, "p95_ttft_ms": 150.0,
        "accept_length": 2.58,
    }


def test_values_exactly_as_printed() -> None:
    assert metrics.parse_number("6101") == 6101 and isinstance(metrics.parse_number("6101"), int)
    assert metrics.parse_number("74.62") == 74.62
    assert metrics.parse_number("-0.00") == 0.0 and isinstance(metrics.parse_number("-0.00"), float)
    assert metrics.parse_number("1e3") == 1000.0
    assert metrics.parse_number("n/a") is None
    assert metrics.parse_line("Peak concurrent requests:                1000.00   ") == ("peak_concurrent_requests", 1000.0)


def test_lines_that_are_not_metrics() -> None:
    assert metrics.parse_line("Median TTFT (ms):") is None  # no value
    assert metrics.parse_line("Median TTFT (ms):   n/a") is None
    assert metrics.parse_line("The Concurrency: 5 of this") is None  # label not at line start
    assert metrics.parse_line("max request concurrency: 5") is None  # labels are case-sensitive
    assert metrics.parse_line("Mean E2E Latency (ms) 5") is None  # no colon


def test_parse_blocks_returns_every_block_and_parse_text_the_last_complete() -> None:
    text = (BENCH / "sglang_dlora_six_rates.txt").read_text()
    blocks = metrics.parse_blocks(text)
    assert [b["request_rate"] for b in blocks] == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    assert metrics.parse_text(text) == blocks[-1]
    # a complete block followed by one cut short: the complete one wins
    cut = COOKBOOK_LOW + COOKBOOK_LOW.replace("74.62", "99.99")[:700]
    assert metrics.parse_text(cut)["duration_s"] == 74.62
    assert len(metrics.parse_blocks(cut)) == 2
    assert len(metrics.parse_blocks(cut, complete_only=True)) == 1


def test_only_a_cut_block_is_parsed_as_far_as_it_goes_without_its_half_line() -> None:
    cut = COOKBOOK_LOW[: COOKBOOK_LOW.index("Median TTFT (ms):") + len("Median TTFT (ms):") + 25]
    assert cut.endswith(" 6")  # the cut fell inside "68.57"
    m = metrics.parse_text(cut)
    assert "median_ttft_ms" not in m
    assert m["mean_ttft_ms"] == 4246.98


def test_vllm_preamble_belongs_to_the_next_block() -> None:
    blocks = metrics.parse_blocks((BENCH / "vllm_fork_pp_comment_prefixed_two_blocks.txt").read_text())
    assert [(b["max_concurrency"], b["duration_s"]) for b in blocks] == [(32, 150.87), (32, 198.68)]
    text = "Maximum request concurrency: 2\n" + COOKBOOK_LOW
    assert metrics.parse_text(text)["max_concurrency"] == 1  # the block's own line wins


def test_headerless_text_and_empty_text() -> None:
    assert metrics.parse_text("") == {}
    assert metrics.parse_text("nothing to see\n") == {}
    assert metrics.kind_of({}) == "empty"
    assert metrics.kind_of(metrics.parse_file(GSM8K / "seed_cookbook059_scout_gsm8k.txt")) == "gsm8k"
    assert metrics.kind_of(metrics.parse_text(COOKBOOK_LOW)) == "bench"


# --- bench_serving --output-file ----------------------------------------------------

SGLANG_059_RECORD = {
    # the keys bench_serving.py 0.5.9 writes (its `result = {...}`), with plausible values
    "tag": None, "backend": "sglang", "dataset_name": "random", "request_rate": float("inf"),
    "max_concurrency": 16, "sharegpt_output_len": None, "random_input_len": 1000, "random_output_len": 1000,
    "random_range_ratio": 0.0, "server_info": {"version": "0.5.9"}, "duration": 45.41, "completed": 80,
    "total_input_tokens": 49668, "total_input_text_tokens": 49668, "total_input_vision_tokens": 0,
    "total_output_tokens": 40805, "total_output_tokens_retokenized": 40516, "request_throughput": 2.26,
    "input_throughput": 1120.46, "output_throughput": 1152.47, "total_throughput": 2272.84,
    "mean_e2e_latency_ms": 6089.22, "median_e2e_latency_ms": 6568.8, "std_e2e_latency_ms": 1.0,
    "p90_e2e_latency_ms": 7000.0, "p99_e2e_latency_ms": 7500.0, "mean_ttft_ms": 124.44, "median_ttft_ms": 87.42,
    "std_ttft_ms": 2.0, "p99_ttft_ms": 268.72, "mean_tpot_ms": 11.88, "median_tpot_ms": 12.0, "std_tpot_ms": 0.5,
    "p99_tpot_ms": 15.49, "mean_itl_ms": 11.72, "median_itl_ms": 10.54, "std_itl_ms": 3.0, "p95_itl_ms": 11.22,
    "p99_itl_ms": 67.88, "concurrency": 14.76, "accept_length": None, "max_output_tokens_per_s": 1520.0,
    "max_concurrent_requests": 21,
}


def test_jsonl_record_maps_to_text_keys() -> None:
    text = json.dumps(SGLANG_059_RECORD) + "\n"
    assert "Infinity" in text
    (rec,) = metrics.parse_jsonl(text)
    block = metrics.parse_file(BENCH / "seed_cookbook057_scout_medium.txt")
    shared = set(rec) & set(block)
    assert shared >= {"backend", "request_rate", "max_concurrency", "completed", "duration_s", "output_throughput",
                      "peak_output_throughput", "peak_concurrent_requests", "median_e2e_ms", "p99_itl_ms"}
    assert {k: rec[k] for k in shared} == {k: block[k] for k in shared}
    assert rec["p90_e2e_ms"] == 7000.0 and rec["std_itl_ms"] == 3.0
    assert "accept_length" not in rec and "server_info" not in rec and "tag" not in rec


def test_jsonl_appended_runs_wrapped_lines_and_junk() -> None:
    one = json.dumps({"completed": 1, "max_concurrency": None, "request_rate": 4})
    two = json.dumps({"completed": 2, "mean_e2el_ms": 5.0, "total_token_throughput": 9.5, "failed": 0}, indent=1)
    recs = metrics.parse_jsonl(one + "\nnot json {oops\n" + two + "\n")
    assert recs == [
        {"completed": 1, "max_concurrency": None, "request_rate": 4.0},
        {"completed": 2, "mean_e2e_ms": 5.0, "total_throughput": 9.5, "failed": 0},
    ]
    assert metrics.parse_jsonl("") == []


def test_parse_file_reads_jsonl_by_suffix(tmp_path: Path) -> None:
    p = tmp_path / "low.jsonl"
    p.write_text(json.dumps({"completed": 1}) + "\n" + json.dumps({"completed": 2}) + "\n")
    assert metrics.parse_file(p) == {"completed": 2}
