"""The simulated model's "mind": token counting with the cached tokenizer, and what it writes.

Prompts are tokenized once per request (the tokenizer from the model's cache entry, with
the `tokenizers` library); the output is a GSM8K answer when the prompt asks one of the
lab's GSM8K-format questions, then a fixed filler text that says what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import gsm8k
from .engine import FILLER, Pieces, Script


@dataclass
class TextModel:
    tokenizer: Any  # tokenizers.Tokenizer
    eos_id: int | None
    bos: str
    accuracy: float
    natural_range: tuple[int, int]
    filler: Pieces

    @classmethod
    def load(cls, snapshot: Path, tokenizer_config: dict[str, Any], accuracy: float,
             natural_range: tuple[int, int]) -> "TextModel":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(snapshot / "tokenizer.json"))
        eos = _token_text(tokenizer_config.get("eos_token")) or "<|eot|>"
        bos = _token_text(tokenizer_config.get("bos_token")) or ""
        decode = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731
        filler = Pieces.from_ids(tok.encode(FILLER, add_special_tokens=False).ids, decode)
        return cls(tok, tok.token_to_id(eos), bos, accuracy, natural_range, filler)

    def count(self, text: str) -> int:
        """Prompt tokens as the server counts them (with the BOS the tokenizer adds)."""
        return len(self.tokenizer.encode(text).ids)

    def count_chat(self, messages: Sequence[dict[str, Any]]) -> tuple[int, str]:
        """(prompt tokens, last user text) for a chat request, with Llama 4's chat markup."""
        parts = [self.bos]
        last_user = ""
        for m in messages:
            content = message_text(m.get("content"))
            if m.get("role") == "user":
                last_user = content
            parts.append(f"<|header_start|>{m.get('role', 'user')}<|header_end|>\n\n{content}<|eot|>")
        parts.append("<|header_start|>assistant<|header_end|>\n\n")
        return len(self.tokenizer.encode("".join(parts), add_special_tokens=False).ids), last_user

    def natural_length(self, prompt: str) -> int:
        lo, hi = self.natural_range
        return lo + int(gsm8k.unit_hash(prompt, "natural-length") * (hi - lo + 1))

    def script(self, prompt: str, chat: bool = False) -> tuple[Script, int]:
        """(what the model writes, where it would stop by itself)."""
        question = gsm8k.last_question(prompt)
        if question is None and chat:
            question = prompt.strip()
        answer = gsm8k.model_answer(question, self.accuracy) if question else None
        if answer is None:
            empty = Pieces((), "", (0,))
            return Script(empty, self.filler), self.natural_length(prompt)
        text = answer.lstrip() if chat else answer
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        head = Pieces.from_ids(self.tokenizer.encode(text, add_special_tokens=False).ids, decode)
        return Script(head, self.filler), len(head)


def _token_text(token: Any) -> str | None:
    if isinstance(token, dict):
        return token.get("content")
    return token


def message_text(content: Any) -> str:
    """The text of a chat message (a string, or a list of parts with type "text")."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""
