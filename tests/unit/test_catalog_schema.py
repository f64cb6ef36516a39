"""Every catalog file goes through one validator (llmfleet.schema): a malformed entry is an
InputError that names the file and line, never a traceback or a silent default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmfleet import catalog, paths
from llmfleet.errors import InputError


def _mutated(tmp_path: Path, name: str, old: str, new: str) -> Path:
    d = tmp_path / "catalog"
    shutil.copytree(paths.catalog_dir(), d)
    text = (d / name).read_text()
    assert old in text, f"{name} no longer holds {old!r}: update the test"
    (d / name).write_text(text.replace(old, new, 1))
    return d


@pytest.mark.parametrize("name, old, new, message", [
    ("models.yml", "weights_gb: 800", "weigths_gb: 800", r"models\.yml:\d+: model maverick: unknown key 'weigths_gb' \(did you mean 'weights_gb'\?\)"),
    ("models.yml", "weights_gb: 220", "weights_gb: lots", r"models\.yml:\d+: model scout\.weights_gb: Expected `int`, got `str`"),
    ("models.yml", "hf_id: meta-llama/Llama-4-Scout-17B-16E-Instruct", "hf_id: not a repo id", r"models\.yml:\d+: model scout\.hf_id"),
    ("images.yml", "launcher: module", "launcher: modul", r"images\.yml:\d+: .*launcher: Invalid enum value 'modul'"),
    ("images.yml", 'default_version: "0.5.9"', 'default_version: "0.4.0"', r"images\.yml: default_version '0\.4\.0' is not one of versions"),
    ("profiles.yml", "num_prompts: 500", "num_prompts: -1", r"profiles\.yml:\d+: profiles\.high\.num_prompts: Expected `int` >= 1"),
    ("profiles.yml", "max_concurrency: 16", "max_concurency: 16", r"profiles\.yml:\d+: profiles\.medium: unknown key 'max_concurency'"),
])  # fmt: skip
def test_a_malformed_catalog_entry_names_file_and_line(tmp_path, name, old, new, message):
    with pytest.raises(InputError, match=message):
        catalog.load(_mutated(tmp_path, name, old, new))


def test_the_shipped_catalog_loads_typed():
    cat = catalog.load()
    assert cat.images.versions[cat.images.default_version].launcher in ("serve", "module")
    assert cat.bench_defaults.request_rate == "inf" and cat.accuracy_defaults.num_questions == 200
    assert cat.models["scout"].weights_gb > 0
