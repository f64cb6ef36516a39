"""The lab's simulated Hugging Face cache entries and synthetic data sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmfleet.lab import datasets, model_files
from llmfleet.lab.sim import gsm8k, hfcache

pytest.importorskip("tokenizers")

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
MAVERICK = "meta-llama/Llama-4-Maverick-17B-128E-Instruct"
DRAFT = "lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1"


def tree(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


def test_snapshot_layout_is_the_hub_cache_and_deterministic(tmp_path):
    a = model_files.write_snapshot(tmp_path / "a", SCOUT)
    model_files.write_snapshot(tmp_path / "b", SCOUT)
    again = model_files.write_snapshot(tmp_path / "a", SCOUT)
    assert a == again and tree(tmp_path / "a") == tree(tmp_path / "b")
    repo = tmp_path / "a" / "hub" / "models--meta-llama--Llama-4-Scout-17B-16E-Instruct"
    rev = (repo / "refs" / "main").read_text()
    assert a == repo / "snapshots" / rev and len(rev) == 40
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "README.md"):
        link = a / name
        assert link.is_symlink() and (repo / "blobs") == link.resolve().parent
    assert hfcache.resolve(SCOUT, hub=tmp_path / "a" / "hub") == a


def test_snapshot_says_it_is_simulated_and_carries_the_profile(tmp_path):
    snap = model_files.write_snapshot(tmp_path, SCOUT)
    cfg = json.loads((snap / "config.json").read_text())
    assert cfg["llmfleet_simulated"] is True
    assert cfg["llmfleet_sim"]["profile"] == "scout" and cfg["llmfleet_sim"]["weights_gb"] == 220
    assert cfg["architectures"] == ["Llama4ForConditionalGeneration"]
    assert hfcache.context_length(cfg) == 10485760
    assert "no weights" in (snap / "README.md").read_text()
    assert not list(snap.glob("*.safetensors"))
    mav = json.loads((model_files.write_snapshot(tmp_path, MAVERICK) / "config.json").read_text())
    assert mav["llmfleet_sim"]["profile"] == "maverick" and mav["text_config"]["num_local_experts"] == 128
    draft = json.loads((model_files.write_snapshot(tmp_path, DRAFT) / "config.json").read_text())
    assert draft["architectures"] == ["LlamaForCausalLMEagle3"] and draft["llmfleet_sim"]["profile"] is None


def test_tokenizer_loads_offline_and_adds_bos(tmp_path):
    from tokenizers import Tokenizer

    snap = model_files.write_snapshot(tmp_path, SCOUT)
    tok = Tokenizer.from_file(str(snap / "tokenizer.json"))
    enc = tok.encode("Question: Emma has 19 pencils.\nAnswer:")
    assert enc.tokens[0] == model_files.BOS
    assert tok.decode(enc.ids, skip_special_tokens=True) == "Question: Emma has 19 pencils.\nAnswer:"
    tcfg = json.loads((snap / "tokenizer_config.json").read_text())
    assert tcfg["tokenizer_class"] == "PreTrainedTokenizerFast" and tcfg["eos_token"] == "<|eot|>"
    assert tok.token_to_id("<|eot|>") is not None


def test_missing_model_fails_like_an_offline_start(tmp_path):
    with pytest.raises(hfcache.ModelNotFound) as exc:
        hfcache.resolve("meta-llama/Nope", hub=tmp_path)
    assert "couldn't find them in the cached files" in str(exc.value)


def test_datasets_are_deterministic_and_big_enough(tmp_path):
    a = datasets.write_datasets(tmp_path / "a")
    b = datasets.write_datasets(tmp_path / "b")
    assert set(a) == {"sharegpt", "gsm8k"}
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes()
    convs = json.loads(a["sharegpt"].read_text())
    assert "Synthetic" in convs[0]["conversations"][0]["value"] and len(convs[0]["conversations"]) == 1
    usable = [c for c in convs if len(c.get("conversations", [])) >= 2]
    assert len(usable) >= 500  # bench_serving keeps only conversations with two turns
    assert all(c["id"].startswith("llmfleet-synthetic-") for c in usable)
    lines = [json.loads(line) for line in a["gsm8k"].read_text().splitlines()]
    assert len(lines) >= 250
    for line in lines:
        assert set(line) == {"question", "answer"} and "#### " in line["answer"]
        assert gsm8k.solve(line["question"])[2] == int(line["answer"].split("#### ")[-1])
