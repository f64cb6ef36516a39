"""catalog/reference.yml agrees with the cookbook's blocks (re-parsed from the seed fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet import compare, metrics

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "fixtures" / "bench_logs"
GSM8K = ROOT / "tests" / "fixtures" / "gsm8k_logs"
REFERENCE = compare.load_reference(ROOT / "catalog" / "reference.yml")
PROFILES = {"low": (10, 1), "medium": (80, 16), "high": (500, 100)}


def entry(version: str) -> dict:
    (e,) = [e for e in REFERENCE["entries"] if e["sglang_version"] == version]
    return e


@pytest.mark.parametrize("version,tag", [("0.5.7", "057"), ("0.5.9", "059")])
@pytest.mark.parametrize("model", ["scout", "maverick"])
@pytest.mark.parametrize("profile", list(PROFILES))
def test_reference_bench_matches_the_cookbook_block(version: str, tag: str, model: str, profile: str) -> None:
    e = entry(version)
    assert e["hardware"] == "mi300x" and e["tp"] == 8
    spec = e["models"][model]["bench"][profile]
    assert (spec["num_prompts"], spec["max_concurrency"]) == PROFILES[profile]
    parsed = metrics.parse_file(BENCH / f"seed_cookbook{tag}_{model}_{profile}.txt")
    assert spec["metrics"] == parsed
    assert spec["metrics"]["max_concurrency"] == PROFILES[profile][1]
    assert spec["metrics"]["completed"] == PROFILES[profile][0]


@pytest.mark.parametrize("model,accuracy", [("scout", 0.945), ("maverick", 0.895)])
def test_reference_gsm8k_matches_the_cookbook(model: str, accuracy: float) -> None:
    got = entry("0.5.9")["models"][model]["gsm8k"]
    assert got["num_questions"] == 200
    assert got["metrics"] == metrics.parse_file(GSM8K / f"seed_cookbook059_{model}_gsm8k.txt")
    assert got["metrics"]["accuracy"] == accuracy


def test_reference_images_follow_the_catalog_tag_scheme() -> None:
    assert entry("0.5.7")["image"] == "lmsysorg/sglang:v0.5.7-rocm700-mi30x"
    assert entry("0.5.9")["image"] == "lmsysorg/sglang:v0.5.9-rocm720-mi30x"
    for e in REFERENCE["entries"]:
        assert compare.version_from_image(e["image"]) == e["sglang_version"]
