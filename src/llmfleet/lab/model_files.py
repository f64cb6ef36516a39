"""Simulated Hugging Face cache entries: a model's config and tokenizer, no weights.

On a real host the model sits in the Hugging Face cache and both the server and the
benchmark client resolve ``meta-llama/Llama-4-Scout-17B-16E-Instruct`` from it offline.
The lab writes the same layout (``hub/models--org--name/{blobs,refs,snapshots}``) with a
``config.json`` that says it is simulated, a README saying there are no weights, and a
small byte-level BPE tokenizer trained with the `tokenizers` library on the lab's own
synthetic text, which transformers' ``AutoTokenizer`` loads with ``HF_HUB_OFFLINE=1``.
Deterministic: the same bytes (and so the same revision hash) every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .. import catalog, paths
from . import datasets
from .sim.engine import FILLER

VOCAB_SIZE = 4096
BOS, EOS, EOT, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|eot|>", "<|finetune_right_pad|>"
SPECIAL_TOKENS = [BOS, EOS, "<|header_start|>", "<|header_end|>", EOT, "<|eom|>", PAD, "<|python_start|>",
                  "<|python_end|>", "<|image|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|header_start|>{{ message['role'] }}<|header_end|>\n\n"
    "{{ message['content'] }}<|eot|>{% endfor %}"
    "{% if add_generation_prompt %}<|header_start|>assistant<|header_end|>\n\n{% endif %}"
)
NOTE = "SIMULATED model for the llmfleet lab: config and tokenizer only, no weights. Not a real model."


@lru_cache(maxsize=1)
def tokenizer_json() -> str:
    """The lab tokenizer (byte-level BPE like Llama 4's, far smaller), serialized."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = datasets.corpus() + [FILLER] * 50
    tok.train_from_iterator(texts, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    return tok.to_str()


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _sim_config() -> dict[str, Any]:
    with open(paths.catalog_dir() / "lab-sim.yml") as fh:
        return yaml.safe_load(fh)


def snapshot_files(hf_id: str) -> dict[str, bytes]:
    """file name -> content of the simulated cache entry for hf_id."""
    cat = catalog.load()
    sim = _sim_config()
    profile = next((m.key for m in cat.models.values() if m.hf_id == hf_id), None)
    drafts = {m.eagle3_draft for m in cat.models.values() if m.eagle3_draft}
    tok_json = tokenizer_json()
    vocab = json.loads(tok_json)["model"]["vocab"]
    ids = {t: vocab.get(t) for t in (BOS, EOS, EOT)}
    for added in json.loads(tok_json)["added_tokens"]:
        ids[added["content"]] = added["id"]
    if profile:
        config = json.loads(json.dumps(sim["models"][profile].get("hf_config", {})))
        weights_gb = cat.models[profile].weights_gb
    elif hf_id in drafts:
        config, weights_gb = dict(sim.get("draft_hf_config", {})), 0
    else:
        config, weights_gb = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, 0
    text_cfg = config.setdefault("text_config", {}) if "text_config" in config else config
    text_cfg["vocab_size"] = len(vocab)
    text_cfg["bos_token_id"] = ids[BOS]
    text_cfg["eos_token_id"] = [ids[EOS], ids[EOT]]
    config.update(
        {
            "llmfleet_simulated": True,
            "llmfleet_sim": {"hf_id": hf_id, "profile": profile, "weights_gb": weights_gb, "note": NOTE},
            "torch_dtype": "bfloat16",
        }
    )
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOT,
        "pad_token": PAD,
        "model_max_length": (config.get("text_config") or config).get("max_position_embeddings", 131072),
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
        "llmfleet_simulated": True,
    }
    readme = (
        f"# {hf_id} (SIMULATED)\n\n{NOTE}\n\nWritten by llmfleet's lab (llmfleet.lab.model_files) so that an offline "
        "SGLang server and its benchmark clients resolve this model id from the Hugging Face cache. The "
        "tokenizer is a small byte-level BPE trained on the lab's synthetic text; there are no "
        "safetensors, and the server that uses this entry is the lab's simulator.\n"
    )
    return {
        "README.md": readme.encode(),
        "config.json": _dump(config),
        "generation_config.json": _dump({"bos_token_id": ids[BOS], "eos_token_id": [ids[EOS], ids[EOT]],
                                         "llmfleet_simulated": True}),
        "special_tokens_map.json": _dump({"bos_token": BOS, "eos_token": EOT, "pad_token": PAD}),
        "tokenizer.json": tok_json.encode(),
        "tokenizer_config.json": _dump(tok_config),
    }


def git_blob_sha(data: bytes) -> str:
    """The hub's etag for a small (non-LFS) file, and the cache's blob name."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def revision_of(files: dict[str, bytes]) -> str:
    h = hashlib.sha1()
    for name in sorted(files):
        h.update(f"{name}\0{git_blob_sha(files[name])}\n".encode())
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_snapshot(hf_home: Path, hf_id: str) -> Path:
    """Write the simulated cache entry for hf_id under hf_home; returns the snapshot directory."""
    files = snapshot_files(hf_id)
    rev = revision_of(files)
    repo = Path(hf_home) / "hub" / ("models--" + hf_id.replace("/", "--"))
    blobs, snapshot = repo / "blobs", repo / "snapshots" / rev
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    for name, data in sorted(files.items()):
        blob = blobs / git_blob_sha(data)
        _write_atomic(blob, data)
        link = snapshot / name
        target = os.path.relpath(blob, snapshot)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(target)
    _write_atomic(repo / "refs" / "main", rev.encode())
    return snapshot
