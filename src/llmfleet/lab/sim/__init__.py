"""The llmfleet lab's SIMULATED SGLang server: no GPU, no model weights.

It speaks SGLang's HTTP API with latencies shaped like the cookbook's tables
(``catalog/lab-sim.yml``), so that the real deploy path and the real SGLang client
programs (``bench_serving``, ``test.few_shot_gsm8k``) can run against it in the lab.

The package is self-contained (relative imports only; aiohttp, pyyaml and tokenizers
from outside): it runs on the control node as ``llmfleet.lab.sim`` (``invoke lab.serve``)
and is copied into the lab image as ``llmfleet_sim``, where ``sglang serve`` and
``python3 -m sglang.launch_server`` start it.
"""

BANNER = (
    "llmfleet lab: SIMULATED SGLang server. No GPU and no model weights are used; "
    "latency and answers are simulated from the SGLang cookbook's numbers (catalog/lab-sim.yml)."
)
