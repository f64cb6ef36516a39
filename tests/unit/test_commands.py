"""Command builders by exact string: the cookbook's commands are the specification."""

import pytest

from llmfleet import secrets, shell
from llmfleet.commands import docker, sglang

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
TAIL = "--enable-multimodal --context-length 65536 --dtype bfloat16 --trust-remote-code --host 0.0.0.0 --port 8000"


def test_server_default_matches_generator():
    spec = sglang.ServerSpec(hf_id=SCOUT)
    assert shell.join(sglang.server(spec)) == f"sglang serve --model-path {SCOUT} --tp 8 {TAIL}"


def test_server_module_launcher_for_057():
    spec = sglang.ServerSpec(hf_id=SCOUT, launcher="module", context_length=1000000)
    assert shell.join(sglang.server(spec)).startswith(
        f"python3 -m sglang.launch_server --model-path {SCOUT} --tp 8 --enable-multimodal --context-length 1000000"
    )


def test_server_all_features_in_generator_order():
    spec = sglang.ServerSpec(hf_id=SCOUT, quant="fp8", tool_calls=True,
                             eagle3_draft="lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1")  # fmt: skip
    assert shell.join(sglang.server(spec)) == (
        f"sglang serve --model-path {SCOUT} --tp 8 --quantization fp8 --tool-call-parser pythonic "
        "--speculative-algorithm EAGLE3 --speculative-draft-model-path lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1 "
        "--speculative-num-steps 3 --speculative-eagle-topk 1 --speculative-num-draft-tokens 4 "
        f"--mem-fraction-static 0.75 --cuda-graph-max-bs 2 {TAIL}"
    )


def test_bad_quant_refused():
    with pytest.raises(ValueError):
        sglang.server(sglang.ServerSpec(hf_id=SCOUT, quant="int4"))


def test_bench_serving_cookbook_high_profile():
    spec = sglang.BenchSpec(hf_id=SCOUT, port=8000, num_prompts=500, max_concurrency=100,
                            dataset_path="/llmfleet/data/sharegpt-1.json", output_file="/llmfleet/runs/r/bench/high.jsonl")  # fmt: skip
    assert shell.join(sglang.bench_serving(spec)) == (
        f"python3 -m sglang.bench_serving --backend sglang --host 127.0.0.1 --port 8000 --model {SCOUT} "
        "--dataset-name random --dataset-path /llmfleet/data/sharegpt-1.json --random-input-len 1000 --random-output-len 1000 "
        "--num-prompts 500 --max-concurrency 100 --request-rate inf --output-file /llmfleet/runs/r/bench/high.jsonl"
    )


def test_bench_random_ids_needs_no_file():
    spec = sglang.BenchSpec(hf_id=SCOUT, port=8000, num_prompts=10, max_concurrency=1, dataset="random-ids")
    assert "--dataset-name random-ids --random-input-len 1000" in shell.join(sglang.bench_serving(spec))
    assert "--dataset-path" not in shell.join(sglang.bench_serving(spec))


def test_gsm8k_has_scheme_and_data_path():
    assert shell.join(sglang.gsm8k(8000, 200, "/llmfleet/data/gsm8k.jsonl")) == (
        "python3 -m sglang.test.few_shot_gsm8k --num-questions 200 --data-path /llmfleet/data/gsm8k.jsonl "
        "--host http://127.0.0.1 --port 8000"
    )


def test_docker_run_quotes_hostile_values():
    argv = docker.run("c", "img:1", ["sh", "-c", "echo $HOME; rm -rf /"], device_flags=["--ipc=host"],
                      volumes=[("/data/my models", "/m")], labels={"k": "v w"})  # fmt: skip
    text = shell.join(argv)
    assert text == "docker run -d --name c --ipc=host -v '/data/my models:/m' --label 'k=v w' img:1 sh -c 'echo $HOME; rm -rf /'"


def test_join_refuses_a_string():
    with pytest.raises(TypeError):
        shell.join("docker ps")


def test_mask_hides_every_occurrence():
    assert secrets.mask("HF_TOKEN=hf_abcdef and again hf_abcdef", ["hf_abcdef"]) == "HF_TOKEN=******** and again ********"
