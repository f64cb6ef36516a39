"""`invoke lab.serve`: the simulated SGLang server in the foreground on 127.0.0.1.

The `lab` collection (cli/lab.py) adds this task.
"""

from __future__ import annotations

from .common import run_task, task


@task(help={
    "port": "TCP port on 127.0.0.1",
    "model": "scout or maverick (catalog/models.yml)",
    "load_seconds": "simulated load time before /health answers 200 (default: catalog/lab-sim.yml)",
})
@run_task
def serve(c, port=30000, model="scout", load_seconds=None):
    """Run the lab's simulated SGLang server (no GPU, no weights) until Ctrl-C."""
    from ..lab import local_sim

    return local_sim.serve(model, int(port), float(load_seconds) if load_seconds is not None else None)
