"""The simulator's command line: flags read from sglang's own server_args.py with ast."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from llmfleet import paths
from llmfleet.lab.sim import flags

# The shapes found in sglang 0.5.x's server_args.py, reduced to a few of each kind.
SOURCE = textwrap.dedent(
    '''
    import argparse
    import dataclasses

    QUANTIZATION_CHOICES = ["awq", "fp8", "gptq"]
    SAMPLING_BACKEND_CHOICES = {"flashinfer", "pytorch"}


    def add_quantization_method_choices(choices):
        QUANTIZATION_CHOICES.extend(choices)


    @dataclasses.dataclass
    class ServerArgs:
        model_path: str
        tp_size: int = 1
        port: int = 30000
        host: str = "127.0.0.1"
        dtype: str = "auto"
        quantization: Optional[str] = None

        @staticmethod
        def add_cli_args(parser: argparse.ArgumentParser):
            parser.add_argument("--model-path", "--model", type=str, help="The path.", required=True)
            parser.add_argument("--host", type=str, default=ServerArgs.host, help="The host.")
            parser.add_argument("--port", type=int, default=ServerArgs.port, help="The port.")
            parser.add_argument("--dtype", type=str, default=ServerArgs.dtype,
                                choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
            parser.add_argument("--quantization", type=str, default=ServerArgs.quantization,
                                choices=QUANTIZATION_CHOICES)
            parser.add_argument("--tool-call-parser", type=str, choices=tool_call_parser_choices)
            parser.add_argument("--sampling-backend", type=str, choices=SAMPLING_BACKEND_CHOICES)
            parser.add_argument("--tensor-parallel-size", "--tp-size", type=int, default=ServerArgs.tp_size,
                                help="The tensor parallelism size.")
            parser.add_argument("--mem-fraction-static", type=float, help="100% of it")
            parser.add_argument("--trust-remote-code", action="store_true")
            parser.add_argument("--hybrid-kvcache-ratio", action=DeprecatedAction, help="deprecated")
            parser.add_argument("--json-model-override-args", type=json.loads, default="{}")
            parser.add_argument("--lora-paths", type=str, nargs="*", action=LoRAPathAction)
            parser.add_argument("--cuda-graph-bs", type=int, nargs="+")
            if is_hip():
                parser.add_argument("--enable-aiter-allreduce", action="store_true")
    '''
)

COOKBOOK = (
    "--model-path meta-llama/Llama-4-Scout-17B-16E-Instruct --tp 8 --quantization fp8 "
    "--tool-call-parser pythonic --trust-remote-code --host 0.0.0.0 --port 8000 --dtype bfloat16"
).split()


def parser():
    return flags.build_parser(flags.extract_options(SOURCE), prog="launch_server.py")


def test_extracts_every_add_argument_in_source_order():
    specs = flags.extract_options(SOURCE)
    assert [s.flags[0] for s in specs][:3] == ["--model-path", "--host", "--port"]
    assert len(specs) == 15
    by = {s.flags[0]: s for s in specs}
    assert by["--model-path"].flags == ["--model-path", "--model"] and by["--model-path"].required
    assert by["--port"].type == "int" and by["--port"].default == 30000  # ServerArgs.port resolved
    assert by["--mem-fraction-static"].type == "float"
    assert by["--trust-remote-code"].action == "store_true"
    assert by["--hybrid-kvcache-ratio"].action == "deprecated"
    assert by["--quantization"].choices == ["awq", "fp8", "gptq"]  # a module-level name
    assert by["--sampling-backend"].choices == ["flashinfer", "pytorch"]  # a set, sorted
    assert by["--tool-call-parser"].choices is None  # computed at import time: anything goes
    assert by["--json-model-override-args"].type == "str"
    assert by["--cuda-graph-bs"].nargs == "+"
    assert "--enable-aiter-allreduce" in by  # added under a condition: still a real flag


def test_accepts_the_cookbook_command_and_abbreviations():
    ns = parser().parse_args(COOKBOOK)
    assert ns.tensor_parallel_size == 8  # `--tp` is argparse's prefix match for --tp-size
    assert ns.quantization == "fp8" and ns.port == 8000 and ns.trust_remote_code
    assert flags.value(ns, "tensor_parallel_size", "tp_size") == 8
    defaults = parser().parse_args(["--model-path", "x"])
    assert (defaults.host, defaults.port, defaults.tensor_parallel_size) == ("127.0.0.1", 30000, 1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model-path", "x", "--bogus"], "unrecognized arguments: --bogus"),
        (["--model-path", "x", "--dtype", "fp7"], "argument --dtype: invalid choice: 'fp7'"),
        (["--model-path", "x", "--tp", "eight"], "argument --tensor-parallel-size/--tp-size: invalid int value"),
        (["--model-path", "x", "--quantization", "int3"], "argument --quantization: invalid choice"),
        ([], "the following arguments are required: --model-path/--model"),
    ],
)
def test_rejects_like_argparse_with_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: launch_server.py")
    assert f"launch_server.py: error: {message}" in err


def test_fallback_list_takes_the_deploy_flag_sets():
    doc = yaml.safe_load((paths.catalog_dir() / "lab-sim.yml").read_text())
    p = flags.build_parser(flags.specs_from_fallback(doc["fallback_server_args"]))
    full = COOKBOOK + (
        "--enable-multimodal --context-length 65536 --speculative-algorithm EAGLE3 "
        "--speculative-draft-model-path lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1 "
        "--speculative-num-steps 3 --speculative-eagle-topk 1 --speculative-num-draft-tokens 4 "
        "--mem-fraction-static 0.75 --cuda-graph-max-bs 2"
    ).split()
    ns = p.parse_args(full)
    assert ns.speculative_algorithm == "EAGLE3" and ns.cuda_graph_max_bs == 2 and ns.context_length == 65536
    with pytest.raises(SystemExit):
        p.parse_args(["--model-path", "x", "--speculative-algorithm", "MEDUSA"])


def test_real_installed_server_args_if_present():
    source = flags.find_server_args_source()
    if source is None:
        pytest.skip("no sglang package installed here (the lab image has one; see tests/lab/test_sim_clients.py)")
    specs = flags.extract_options(source.read_text())
    assert len(specs) > 200
    ns = flags.build_parser(specs).parse_args(COOKBOOK)
    assert ns.tensor_parallel_size == 8
