"""Entry points of the lab image's shims for `python3 -m sglang.launch_server` and `sglang`.

The image replaces only these two ways to start a server; every other sglang module is
the real one from PyPI. `sglang serve ...` and `python3 -m sglang.launch_server ...`
start the simulator with the same arguments; `sglang version` answers like the real CLI.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import server


def launch_server_main(argv: Sequence[str]) -> int:
    """`python3 -m sglang.launch_server ARGS` (argparse's prog is launch_server.py, as in the real one)."""
    return server.main(argv)


def sglang_cli_main(argv: Sequence[str]) -> int:
    """`sglang SUBCOMMAND ...`: the real CLI's subcommands, with `serve` simulated."""
    parser = argparse.ArgumentParser(prog="sglang")
    sub = parser.add_subparsers(dest="subcommand", required=True)
    sub.add_parser("serve", help="Launch the SGLang server.", add_help=False)
    sub.add_parser("generate", help="Run inference on a multimodal model.", add_help=False)
    sub.add_parser("version", help="Show the version information.")
    args, extra = parser.parse_known_args(list(argv))
    if args.subcommand == "serve":
        if any(h in extra for h in ("-h", "--help")):
            print("Usage: sglang serve --model-path <model-name-or-path> [additional-arguments]\n")
            print("(llmfleet lab: `sglang serve` starts the SIMULATED server; its flags are the installed sglang's.)\n")
        return server.main(extra, prog="sglang")
    if args.subcommand == "version":
        print(f"sglang version: {server.sglang_version()}")
        print("git revision: unknown (llmfleet lab image: sglang installed from PyPI, server simulated)")
        return 0
    sys.stderr.write(
        f"[simulated] `sglang {args.subcommand}` needs SGLang's GPU runtime, which the llmfleet lab image does not have.\n"
    )
    return 1
