"""Resolve `--model-path` the way an offline SGLang start does: through the Hugging Face cache.

A lab host has no route to the hub, so a model is either in the cache
(``$HF_HOME/hub/models--org--name/snapshots/<rev>``, written for the lab by
``llmfleet.lab.model_files``) or the start fails like a real offline start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class ModelNotFound(Exception):
    pass


def hub_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home) / "hub"


def repo_folder(hf_id: str) -> str:
    return "models--" + hf_id.replace("/", "--")


def resolve(model_path: str, revision: str | None = None, hub: Path | None = None) -> Path:
    """The directory holding the model's files (a local directory, or a cached snapshot)."""
    local = Path(model_path)
    if local.is_dir():
        return local
    hub = hub or hub_dir()
    repo = hub / repo_folder(model_path)
    ref = revision or "main"
    rev = ref
    ref_file = repo / "refs" / ref
    if ref_file.is_file():
        rev = ref_file.read_text().strip()
    snapshot = repo / "snapshots" / rev
    if (snapshot / "config.json").is_file():
        return snapshot
    raise ModelNotFound(
        "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them "
        f"in the cached files.\nCheck your internet connection or see how to run the library in offline mode at "
        "'https://huggingface.co/docs/transformers/installation#offline-mode'.\n"
        f"[simulated] no snapshot of {model_path!r} (revision {ref}) under {hub}; the lab writes one with "
        "llmfleet.lab.model_files.write_snapshot"
    )


def load_json(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


def model_config(snapshot: Path) -> dict[str, Any]:
    return load_json(snapshot / "config.json")


def tokenizer_config(snapshot: Path) -> dict[str, Any]:
    path = snapshot / "tokenizer_config.json"
    return load_json(path) if path.is_file() else {}


def context_length(config: dict[str, Any]) -> int | None:
    """The model's own maximum context (Scout's config asks for ~10M tokens)."""
    for cfg in (config.get("text_config") or {}, config):
        for key in ("max_position_embeddings", "max_sequence_length", "seq_length"):
            if isinstance(cfg.get(key), int):
                return cfg[key]
    return None
