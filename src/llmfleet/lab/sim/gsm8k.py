"""GSM8K-format word problems: the lab's synthetic data set and the simulator's answers.

One table of templates serves both directions: `generate` fills a template with names and
numbers (the data set, written by ``llmfleet.lab.datasets``); `solve` reads a question back
with the same template turned into a regular expression and works out the answer from the
numbers in its text. The simulated model then answers correctly with the configured
probability, decided by a hash of the question so the same question always gets the same
answer. Questions that match no template get an answer the simulator cannot vouch for.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Callable

NAMES = [
    "Ava", "Ben", "Chloe", "Diego", "Emma", "Farah", "George", "Hana", "Ivan", "Julia", "Kofi", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wen", "Yara", "Zoe",
]
ITEMS = [
    "apples", "pencils", "stickers", "marbles", "cookies", "stamps", "shells", "cards", "books", "candles",
    "buttons", "oranges", "balloons", "crayons", "muffins", "tickets",
]


class Slots(dict):
    """A template's filled slots; attribute access keeps the explanation f-strings short."""

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


@dataclass(frozen=True)
class Template:
    key: str
    text: str
    ranges: dict[str, tuple[int, int]]
    solve: Callable[[dict], int]
    steps: Callable[[dict, int], list[str]]  # explanation lines; the last one shows the final value
    valid: Callable[[dict], bool] = lambda v: True


def _c(expr: str, value: int, annotate: bool) -> str:
    """`48+24 = <<48+24=72>>72` (the data set's calculator notation) or `48 + 24 = 72`."""
    if annotate:
        return f"{expr.replace(' ', '')} = <<{expr.replace(' ', '')}={value}>>{value}"
    return f"{expr} = {value}"


def _templates(annotate: bool) -> list[Template]:
    a = annotate
    return [
        Template(
            "buy_give",
            "{name} has {a} {item}. {name} buys {b} more {item} and then gives {c} {item} to {friend}. "
            "How many {item} does {name} have now?",
            {"a": (5, 60), "b": (2, 40), "c": (1, 30)},
            lambda v: v["a"] + v["b"] - v["c"],
            lambda v, f: [
                f"After buying more, {v.name} has {_c(f'{v.a} + {v.b}', v.a + v.b, a)} {v.item}.",
                f"After giving some to {v.friend}, {v.name} has {_c(f'{v.a + v.b} - {v.c}', f, a)} {v.item}.",
            ],
            lambda v: v["c"] <= v["a"] + v["b"],
        ),
        Template(
            "boxes",
            "A box holds {a} {item}. {name} fills {b} boxes and then uses {c} {item} for a party. "
            "How many {item} are left?",
            {"a": (4, 24), "b": (2, 12), "c": (1, 40)},
            lambda v: v["a"] * v["b"] - v["c"],
            lambda v, f: [
                f"The boxes hold {_c(f'{v.a} * {v.b}', v.a * v.b, a)} {v.item}.",
                f"After the party there are {_c(f'{v.a * v.b} - {v.c}', f, a)} {v.item} left.",
            ],
            lambda v: v["c"] < v["a"] * v["b"],
        ),
        Template(
            "wage",
            "{name} earns ${a} per hour and works {b} hours a day. How many dollars does {name} earn in {c} days?",
            {"a": (8, 40), "b": (2, 10), "c": (2, 7)},
            lambda v: v["a"] * v["b"] * v["c"],
            lambda v, f: [
                f"In one day {v.name} earns {_c(f'{v.a} * {v.b}', v.a * v.b, a)} dollars.",
                f"In {v.c} days that is {_c(f'{v.a * v.b} * {v.c}', f, a)} dollars.",
            ],
        ),
        Template(
            "pages",
            "A book has {a} pages. {name} reads {b} pages every day. How many pages are left after {c} days?",
            {"a": (100, 600), "b": (5, 40), "c": (2, 12)},
            lambda v: v["a"] - v["b"] * v["c"],
            lambda v, f: [
                f"In {v.c} days {v.name} reads {_c(f'{v.b} * {v.c}', v.b * v.c, a)} pages.",
                f"So {_c(f'{v.a} - {v.b * v.c}', f, a)} pages are left.",
            ],
            lambda v: v["b"] * v["c"] < v["a"],
        ),
        Template(
            "bags",
            "{name} has {a} {item} and puts them into bags of {b}. How many bags does {name} fill?",
            {"a": (20, 300), "b": (3, 12)},
            lambda v: v["a"] // v["b"],
            lambda v, f: [f"{v.name} fills {_c(f'{v.a} / {v.b}', f, a)} bags."],
            lambda v: v["a"] % v["b"] == 0,
        ),
        Template(
            "change",
            "{name} buys {a} {item} at ${b} each and pays with a ${c} bill. How much change does {name} get in dollars?",
            {"a": (2, 9), "b": (2, 15), "c": (50, 200)},
            lambda v: v["c"] - v["a"] * v["b"],
            lambda v, f: [
                f"The {v.item} cost {_c(f'{v.a} * {v.b}', v.a * v.b, a)} dollars.",
                f"The change is {_c(f'{v.c} - {v.a * v.b}', f, a)} dollars.",
            ],
            lambda v: v["a"] * v["b"] < v["c"] and v["c"] % 10 == 0,
        ),
        Template(
            "ages",
            "{name} is {a} years old. {friend} is {b} years older than twice {name}'s age. How old is {friend}?",
            {"a": (5, 40), "b": (1, 15)},
            lambda v: 2 * v["a"] + v["b"],
            lambda v, f: [
                f"Twice {v.name}'s age is {_c(f'2 * {v.a}', 2 * v.a, a)} years.",
                f"So {v.friend} is {_c(f'{2 * v.a} + {v.b}', f, a)} years old.",
            ],
        ),
        Template(
            "chairs",
            "There are {a} rows of chairs with {b} chairs in each row. {c} chairs are taken. How many chairs are free?",
            {"a": (3, 30), "b": (4, 25), "c": (1, 80)},
            lambda v: v["a"] * v["b"] - v["c"],
            lambda v, f: [
                f"There are {_c(f'{v.a} * {v.b}', v.a * v.b, a)} chairs.",
                f"So {_c(f'{v.a * v.b} - {v.c}', f, a)} chairs are free.",
            ],
            lambda v: v["c"] < v["a"] * v["b"],
        ),
        Template(
            "running",
            "{name} runs {a} km on Monday and {b} km on Tuesday. On Wednesday {name} runs twice as far as on Monday. "
            "How many km does {name} run in total?",
            {"a": (2, 20), "b": (2, 20)},
            lambda v: 3 * v["a"] + v["b"],
            lambda v, f: [
                f"On Wednesday {v.name} runs {_c(f'2 * {v.a}', 2 * v.a, a)} km.",
                f"In total that is {_c(f'{v.a} + {v.b} + {2 * v.a}', f, a)} km.",
            ],
        ),
        Template(
            "farm",
            "A farm has {a} cows and {b} chickens. How many legs do the animals have in total?",
            {"a": (2, 40), "b": (2, 60)},
            lambda v: 4 * v["a"] + 2 * v["b"],
            lambda v, f: [
                f"The cows have {_c(f'4 * {v.a}', 4 * v.a, a)} legs.",
                f"The chickens have {_c(f'2 * {v.b}', 2 * v.b, a)} legs.",
                f"Together they have {_c(f'{4 * v.a} + {2 * v.b}', f, a)} legs.",
            ],
        ),
        Template(
            "savings",
            "{name} saves ${a} every week. After {b} weeks {name} spends ${c} on a gift. How many dollars does {name} have left?",
            {"a": (5, 50), "b": (3, 20), "c": (5, 120)},
            lambda v: v["a"] * v["b"] - v["c"],
            lambda v, f: [
                f"{v.name} saves {_c(f'{v.a} * {v.b}', v.a * v.b, a)} dollars.",
                f"After the gift {v.name} has {_c(f'{v.a * v.b} - {v.c}', f, a)} dollars left.",
            ],
            lambda v: v["c"] < v["a"] * v["b"],
        ),
        Template(
            "school",
            "A school has {a} classes with {b} students each. If {c} students are absent today, how many students are at school?",
            {"a": (4, 30), "b": (15, 35), "c": (1, 60)},
            lambda v: v["a"] * v["b"] - v["c"],
            lambda v, f: [
                f"The school has {_c(f'{v.a} * {v.b}', v.a * v.b, a)} students.",
                f"Today {_c(f'{v.a * v.b} - {v.c}', f, a)} students are at school.",
            ],
            lambda v: v["c"] < v["a"] * v["b"],
        ),
    ]


TEMPLATES = _templates(annotate=True)  # for the data set's answers
_PLAIN = {t.key: t for t in _templates(annotate=False)}  # for the simulated model's answers

_SLOT = re.compile(r"\{(\w+)\}")
_WORD_SLOTS = {"name": r"[A-Z][a-z]+", "friend": r"[A-Z][a-z]+", "item": r"[a-z]+"}


def template_regex(text: str) -> re.Pattern[str]:
    """The template as a regex: numbers and words captured by name, repeats back-referenced."""
    out, seen, pos = [], set(), 0
    for m in _SLOT.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        slot = m.group(1)
        if slot in seen:
            out.append(f"(?P={slot})")
        else:
            seen.add(slot)
            out.append(f"(?P<{slot}>{_WORD_SLOTS.get(slot, r'[0-9]+')})")
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out))


_REGEXES = [(t, template_regex(t.text)) for t in TEMPLATES]


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str  # GSM8K style: steps with <<calc>> notes, then "#### N"
    value: int
    template: str


def _draw(count: int, rng: random.Random) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    while len(out) < count:
        t = TEMPLATES[len(out) % len(TEMPLATES)] if len(out) < len(TEMPLATES) else rng.choice(TEMPLATES)
        for _ in range(1000):
            v = Slots({k: rng.randint(lo, hi) for k, (lo, hi) in t.ranges.items()})
            v["name"], v["friend"] = rng.sample(NAMES, 2)
            v["item"] = rng.choice(ITEMS)
            if t.valid(v):
                break
        else:
            continue
        question = _SLOT.sub(lambda m, v=v: str(v[m.group(1)]), t.text)
        if question in seen:
            continue
        seen.add(question)
        value = t.solve(v)
        answer = "\n".join(t.steps(v, value)) + f"\n#### {value}"
        out.append(Problem(question, answer, value, t.key))
    return out


def _van_der_corput(i: int) -> float:
    x, denom = 0.0, 1.0
    while i:
        denom *= 2
        i, bit = divmod(i, 2)
        x += bit / denom
    return x


def generate(count: int, seed: int = 8) -> list[Problem]:
    """`count` distinct problems, the same ones for the same seed.

    They are drawn from a larger pool and ordered so that their per-question fates
    (`unit_hash`) are spread evenly over [0, 1) in every prefix: the first N questions of
    the lab's data set then show the configured accuracy of any model (within about 1/N)
    instead of sampling noise, while each question's answer still depends on its text only.
    """
    pool = _draw(count * 4, random.Random(seed))
    fate = {p.question: unit_hash(" ".join(p.question.split()), "gsm8k-correct") for p in pool}
    out: list[Problem] = []
    for i in range(count):
        target = _van_der_corput(i)
        best = min(range(len(pool)), key=lambda j: (abs(fate[pool[j].question] - target), j))
        out.append(pool.pop(best))
    return out


def solve(question: str) -> tuple[str, dict, int] | None:
    """(template key, slot values, answer) for a question in one of the templates' forms."""
    q = " ".join(question.split())
    for t, rx in _REGEXES:
        m = rx.fullmatch(q)
        if m:
            v = Slots({k: (int(x) if k not in _WORD_SLOTS else x) for k, x in m.groupdict().items()})
            return t.key, v, t.solve(v)
    return None


_QUESTION = re.compile(r"Question:\s*(.*?)\s*\n\s*Answer:\s*$", re.S)


def last_question(prompt: str) -> str | None:
    """The question few_shot_gsm8k asks: the last "Question: ...\\nAnswer:" at the prompt's end."""
    idx = prompt.rfind("Question:")
    if idx < 0:
        return None
    m = _QUESTION.match(prompt, idx)
    return m.group(1) if m else None


def unit_hash(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by the text: the same question always gets the same fate."""
    digest = hashlib.sha256(f"{salt}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def answers_correctly(question: str, accuracy: float) -> bool:
    return unit_hash(" ".join(question.split()), "gsm8k-correct") < accuracy


def wrong_value(question: str, right: int) -> int:
    """A plausible slip: off by 1 to 9, never negative, never the right answer."""
    h = int(unit_hash(question, "gsm8k-slip") * 2**32)
    delta = 1 + h % 9
    return right - delta if (h >> 8) & 1 and right - delta >= 0 else right + delta


def model_answer(question: str, accuracy: float) -> str | None:
    """What the simulated model writes after "Answer:", or None if it cannot read the question."""
    solved = solve(question)
    if solved is None:
        return None
    key, v, right = solved
    final = right if answers_correctly(question, accuracy) else wrong_value(question, right)
    lines = _PLAIN[key].steps(v, final)
    return " " + "\n".join(lines) + f"\n#### {final}"
