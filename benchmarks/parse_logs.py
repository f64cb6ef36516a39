"""Parser throughput over every log fixture: blocks per second (no lab needed)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llmfleet import metrics  # noqa: E402


def main() -> None:
    texts = [p.read_text() for d in ("bench_logs", "gsm8k_logs") for p in sorted((ROOT / "tests/fixtures" / d).glob("*.txt"))]
    rounds = 50
    start = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            metrics.parse_text(text)
    elapsed = time.perf_counter() - start
    total_bytes = sum(len(t) for t in texts) * rounds
    print(json.dumps({
        "benchmark": "parse_logs",
        "files": len(texts),
        "parses": len(texts) * rounds,
        "seconds": round(elapsed, 4),
        "parses_per_s": round(len(texts) * rounds / elapsed, 1),
        "mb_per_s": round(total_bytes / elapsed / 1e6, 2),
    }))


if __name__ == "__main__":
    main()
