"""The signature file is validated (file:line) and diagnose() is safe on any text and any file."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfleet import diagnose
from llmfleet.errors import InputError

GOOD = '- id: a\n  pattern: "boom"\n  cause: c\n  fix: f\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sigs.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,line,words",
    [
        (GOOD + '- id: b\n  pattern: "(unclosed"\n  cause: c\n  fix: f\n', 6, "does not compile"),
        (GOOD + "- id: b\n  patern: x\n  cause: c\n  fix: f\n", 6, "did you mean 'pattern'"),
        (GOOD + '- id: b\n  pattern: "x"\n  cause: c\n', 5, "missing key 'fix'"),
        (GOOD + '- id: a\n  pattern: "y"\n  cause: c\n  fix: f\n', 5, "used twice"),
        (GOOD + '- id: b\n  pattern: "x"\n  unless: ["[bad"]\n  cause: c\n  fix: f\n', 7, "does not compile"),
    ],
)
def test_a_malformed_entry_is_an_input_error_at_its_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        diagnose.load_signatures(path)
    assert err.value.path == str(path) and err.value.line == line and words in str(err.value)


def test_diagnose_never_raises_on_a_broken_file_or_odd_text(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + '- id: b\n  pattern: "(x"\n  cause: c\n  fix: f\n')
    found = diagnose.diagnose("boom", path)
    assert [d.signature for d in found] == ["signature-file-invalid"]
    assert "sigs.yml:6" in found[0].cause
    for text in ("", "\x00\ufffd" * 1000, "boom" * 100000):
        diagnose.diagnose(text)
    assert [d.signature for d in diagnose.diagnose("a boom", _write(tmp_path, GOOD))] == ["a"]


def test_the_catalog_file_loads_and_the_json_shape() -> None:
    sigs = diagnose.load_signatures()
    assert len({s.id for s in sigs}) == len(sigs) >= 25
    out = diagnose.findings_json(diagnose.diagnose("OSError: [Errno 98] Address already in use"))
    assert list(out) == ["findings"] and set(out["findings"][0]) == {"cause", "fix", "evidence", "signature"}
