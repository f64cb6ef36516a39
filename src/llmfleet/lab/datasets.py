"""Synthetic benchmark data for the lab: nothing can be downloaded there.

* ``sharegpt``: a ShareGPT-format JSON (`[{"id", "conversations": [{"from", "value"}, ...]}]`)
  for ``bench_serving --dataset-name random --dataset-path FILE``, which takes token ids from
  its prompts and repeats or truncates them to ``--random-input-len``. Its first entry (a
  one-turn README that bench_serving skips) and every id say it is synthetic.
* ``gsm8k``: a GSM8K-format JSONL (`{"question", "answer": "... #### N"}`) for
  ``few_shot_gsm8k --data-path FILE``, from the templates the simulated server reads back.

Both are deterministic: the same bytes every time.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .sim import gsm8k

SHAREGPT_FILE = "sharegpt-synthetic.json"
GSM8K_FILE = "gsm8k-synthetic.jsonl"
SHAREGPT_CONVERSATIONS = 1200
GSM8K_PROBLEMS = 300

TOPICS = [
    "a rolling upgrade of a GPU cluster", "tensor parallelism across eight GPUs", "a benchmark report",
    "the latency of a language model server", "container images on a fleet of hosts", "an SSH deploy lock",
    "a health check with a deadline", "a run archive with checksums", "the first start of a server",
    "a cache of model weights", "network namespaces in a test lab", "the throughput of a batch scheduler",
]
WORDS = (
    "the a of and to in is for on with as by at from this that it be are was were can will should would "
    "server model request token latency throughput host cluster container image deploy benchmark report "
    "number time first second minute hour queue batch step prompt answer question result value table "
    "memory cache disk network link packet address port process log line error warning check status "
    "start stop wait ready health archive file path version tag layer engine runtime device driver "
    "simple clear short long fast slow small large new old good best every each some many few more most "
    "explain describe compare list show write give tell make find measure count keep move send read "
    "why how what when where which because however therefore also then again still only just very"
).split()


def _sentence(rng: random.Random, topic: str) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), topic)
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "?", "!"])


def sharegpt_conversations(count: int = SHAREGPT_CONVERSATIONS, seed: int = 4) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = [
        {
            "id": "README",
            "conversations": [
                {
                    "from": "system",
                    "value": "Synthetic ShareGPT-format data written by llmfleet's lab for offline benchmarks "
                    "(bench_serving --dataset-name random --dataset-path). Not real conversations.",
                }
            ],
        }
    ]
    for i in range(count):
        topic = rng.choice(TOPICS)
        human = f"Please explain {topic}. " + " ".join(_sentence(rng, topic) for _ in range(rng.randint(2, 40)))
        gpt = " ".join(_sentence(rng, topic) for _ in range(rng.randint(2, 30)))
        out.append(
            {
                "id": f"llmfleet-synthetic-{i:05d}",
                "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}],
            }
        )
    return out


def gsm8k_lines(count: int = GSM8K_PROBLEMS) -> list[dict]:
    return [{"question": p.question, "answer": p.answer} for p in gsm8k.generate(count)]


def corpus() -> list[str]:
    """Text the lab tokenizer is trained on: the same words the data sets use."""
    texts = []
    for conv in sharegpt_conversations(300):
        texts += [turn["value"] for turn in conv["conversations"]]
    for line in gsm8k_lines(GSM8K_PROBLEMS):
        texts += [line["question"], line["answer"], "Question: " + line["question"] + "\nAnswer:"]
    return texts


def write_datasets(dest_dir: Path) -> dict[str, Path]:
    """Write both files into dest_dir; returns {"sharegpt": path, "gsm8k": path}."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    sharegpt = dest_dir / SHAREGPT_FILE
    sharegpt.write_text(json.dumps(sharegpt_conversations(), indent=1, ensure_ascii=False) + "\n")
    gsm = dest_dir / GSM8K_FILE
    gsm.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in gsm8k_lines()))
    return {"sharegpt": sharegpt, "gsm8k": gsm}
