"""argv builders for SGLang: the server command (the cookbook's generator) and its clients."""

from __future__ import annotations

from dataclasses import dataclass, field

# The cookbook's EAGLE3 settings (Llama4ScoutDeployment generator, AMD and NVIDIA alike).
EAGLE3_FLAGS = [
    "--speculative-num-steps", "3",
    "--speculative-eagle-topk", "1",
    "--speculative-num-draft-tokens", "4",
    "--mem-fraction-static", "0.75",
    "--cuda-graph-max-bs", "2",
]  # fmt: skip


@dataclass(frozen=True)
class ServerSpec:
    """Everything that decides the server's command line."""

    hf_id: str
    tp: int = 8
    quant: str = "bf16"  # bf16 | fp8
    tool_calls: bool = False
    eagle3_draft: str | None = None  # set => EAGLE3 speculative decoding
    context_length: int = 65536
    host: str = "0.0.0.0"
    port: int = 8000
    launcher: str = "serve"  # serve: `sglang serve`; module: `python3 -m sglang.launch_server`
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    mem_fraction_static: float | None = None  # None: SGLang's own choice (EAGLE3 sets 0.75)


def launcher_argv(launcher: str) -> list[str]:
    if launcher == "serve":
        return ["sglang", "serve"]
    if launcher == "module":
        return ["python3", "-m", "sglang.launch_server"]
    raise ValueError(f"unknown launcher {launcher!r}")


def server(spec: ServerSpec) -> list[str]:
    """The server command, flag for flag and in the order of the cookbook's command generator."""
    argv = launcher_argv(spec.launcher) + ["--model-path", spec.hf_id, "--tp", str(spec.tp)]
    if spec.quant == "fp8":
        argv += ["--quantization", "fp8"]
    elif spec.quant != "bf16":
        raise ValueError(f"unknown quantization {spec.quant!r}")
    if spec.tool_calls:
        argv += ["--tool-call-parser", "pythonic"]
    if spec.eagle3_draft:
        argv += ["--speculative-algorithm", "EAGLE3", "--speculative-draft-model-path", spec.eagle3_draft]
        argv += EAGLE3_FLAGS if spec.mem_fraction_static is None else [a for a in EAGLE3_FLAGS if a not in ("--mem-fraction-static", "0.75")]
    if spec.mem_fraction_static is not None:
        argv += ["--mem-fraction-static", str(spec.mem_fraction_static)]
    argv += [
        "--enable-multimodal",
        "--context-length", str(spec.context_length),
        "--dtype", "bfloat16",
        "--trust-remote-code",
        "--host", spec.host,
        "--port", str(spec.port),
    ]  # fmt: skip
    return argv + list(spec.extra_args)


@dataclass(frozen=True)
class BenchSpec:
    """One bench_serving run (one profile)."""

    hf_id: str
    port: int
    num_prompts: int
    max_concurrency: int
    input_len: int = 1000
    output_len: int = 1000
    request_rate: str = "inf"
    dataset: str = "random"  # random | random-ids | sharegpt-file
    dataset_path: str | None = None
    tokenizer: str | None = None
    output_file: str | None = None
    seed: int | None = None
    base_url: str | None = None  # set: bench this URL (the router), not the local server on `port`


def bench_serving(spec: BenchSpec) -> list[str]:
    """`python3 -m sglang.bench_serving` with the cookbook's flags, against the local server (or `base_url`)."""
    argv = ["python3", "-m", "sglang.bench_serving", "--backend", "sglang"]
    target = ["--base-url", spec.base_url] if spec.base_url else ["--host", "127.0.0.1", "--port", str(spec.port)]
    argv += [*target, "--model", spec.hf_id]
    if spec.tokenizer:
        argv += ["--tokenizer", spec.tokenizer]
    if spec.dataset == "sharegpt-file":
        if not spec.dataset_path:
            raise ValueError("dataset sharegpt-file needs a dataset path")
        argv += ["--dataset-name", "sharegpt", "--dataset-path", spec.dataset_path]
    elif spec.dataset in ("random", "random-ids"):
        argv += ["--dataset-name", spec.dataset]
        if spec.dataset == "random" and spec.dataset_path:
            argv += ["--dataset-path", spec.dataset_path]
        argv += ["--random-input-len", str(spec.input_len), "--random-output-len", str(spec.output_len)]
    else:
        raise ValueError(f"unknown dataset {spec.dataset!r}")
    argv += [
        "--num-prompts", str(spec.num_prompts),
        "--max-concurrency", str(spec.max_concurrency),
        "--request-rate", str(spec.request_rate),
    ]  # fmt: skip
    if spec.seed is not None:
        argv += ["--seed", str(spec.seed)]
    if spec.output_file:
        argv += ["--output-file", spec.output_file]
    return argv


def gsm8k(port: int, num_questions: int, data_path: str, parallel: int | None = None) -> list[str]:
    """`python3 -m sglang.test.few_shot_gsm8k` on a staged data file (no download on the host)."""
    argv = ["python3", "-m", "sglang.test.few_shot_gsm8k", "--num-questions", str(num_questions)]
    argv += ["--data-path", data_path, "--host", "http://127.0.0.1", "--port", str(port)]
    if parallel:
        argv += ["--parallel", str(parallel)]
    return argv
