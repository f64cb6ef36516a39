"""Every real log fixture names its public source."""

from __future__ import annotations

import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "fixtures" / "bench_logs"
SOURCES = (BENCH / "SOURCES.md").read_text()


def _listed() -> set[str]:
    names: set[str] = set()
    for cell in re.findall(r"^\| `([^`]+)`", SOURCES, re.M):
        m = re.match(r"(.*)\{([^}]*)\}(.*)\{([^}]*)\}(.*)", cell)
        if m:  # seed_cookbook057_{scout,maverick}_{low,medium,high}.txt
            for a in m.group(2).split(","):
                for b in m.group(4).split(","):
                    names.add(m.group(1) + a + m.group(3) + b + m.group(5))
            continue
        m = re.match(r"(.*)\{([^}]*)\}(.*)", cell)
        if m:
            names.update(m.group(1) + a + m.group(3) for a in m.group(2).split(","))
        else:
            names.add(cell)
    return names


def test_every_fixture_is_in_sources_md() -> None:
    logs = {p.name for p in BENCH.iterdir() if p.suffix in (".txt", ".jsonl")}
    gsm = {p.name for p in (BENCH.parent / "gsm8k_logs").iterdir() if p.suffix == ".txt"}
    listed = _listed()
    assert logs <= listed, logs - listed
    assert gsm <= listed, gsm - listed


def test_at_least_15_real_published_logs_besides_the_seeds() -> None:
    real = [p for p in BENCH.iterdir() if p.suffix in (".txt", ".jsonl") and not p.name.startswith("seed_")]
    assert len(real) >= 15
    # of several tools and versions: SGLang and vLLM both present
    assert any(p.name.startswith("vllm") for p in real) and any(p.name.startswith("sglang") for p in real)
