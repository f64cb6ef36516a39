"""`invoke lab.serve`: the simulated server on the control node, in the foreground.

Same simulator as in the lab image, started with the deploy's kind of command line; the
Hugging Face cache entry it needs is written into the lab's state directory, and the
GPUs it "sees" are the lab hardware kind's (the control node has no /dev/kfd).
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import catalog, paths
from . import model_files

LAB_HARDWARE = "mi300x"
CONTEXT_LENGTH = 65536


def hf_home() -> Path:
    return paths.lab_state_dir() / "hf"


def serve_argv(hf_id: str, port: int, tp: int, host: str = "127.0.0.1") -> list[str]:
    """The server flags: the cookbook's Llama 4 command on this host's loopback."""
    return [
        "--model-path", hf_id, "--tp", str(tp), "--context-length", str(CONTEXT_LENGTH), "--dtype", "bfloat16",
        "--trust-remote-code", "--enable-multimodal", "--host", host, "--port", str(port),
    ]


def serve_env(base: dict[str, str], home: Path, gpus: int, load_seconds: float | None) -> dict[str, str]:
    env = dict(base)
    env.update({
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "LLMFLEET_SIM_CONFIG": str(paths.catalog_dir() / "lab-sim.yml"),
        "LLMFLEET_SIM_GPUS": str(gpus),
    })
    if load_seconds is not None:
        env["LLMFLEET_SIM_LOAD_SECONDS"] = str(load_seconds)
    return env


def prepare(model_key: str, port: int, load_seconds: float | None = None) -> tuple[list[str], dict[str, str]]:
    """(server argv, environment) for `lab.serve`; writes the model's simulated cache entry."""
    cat = catalog.load()
    model = cat.model(model_key)
    hw = cat.hw(LAB_HARDWARE)
    home = hf_home()
    model_files.write_snapshot(home, model.hf_id)
    return serve_argv(model.hf_id, port, hw.gpus), serve_env(dict(os.environ), home, hw.gpus, load_seconds)


def serve(model_key: str, port: int, load_seconds: float | None = None) -> int:
    """Run the simulator in this process until SIGINT/SIGTERM; returns its exit code."""
    argv, env = prepare(model_key, port, load_seconds)
    os.environ.clear()
    os.environ.update(env)
    from .sim.server import main

    return main(argv, prog="sglang serve")
