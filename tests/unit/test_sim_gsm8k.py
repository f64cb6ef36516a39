"""GSM8K: the synthetic problems and the simulated model's answers."""

from __future__ import annotations

import ast
import re

from llmfleet.lab.sim import gsm8k


def answer_value(text: str):
    """few_shot_gsm8k's get_answer_value, verbatim in behaviour: the last integer in the text."""
    numbers = re.findall(r"\d+", text.replace(",", ""))
    return ast.literal_eval(numbers[-1]) if numbers else -9999999


def few_shot_prompt(problems, k, question):
    shots = "".join(f"Question: {p.question}\nAnswer: {p.answer}\n\n" for p in problems[:k])
    return shots + f"Question: {question}\nAnswer:"


def test_generate_is_deterministic_distinct_and_gsm8k_shaped():
    a, b = gsm8k.generate(300), gsm8k.generate(300)
    assert a == b
    assert len({p.question for p in a}) == 300
    assert {p.template for p in a} == {t.key for t in gsm8k.TEMPLATES}
    for p in a:
        assert p.answer.endswith(f"\n#### {p.value}")
        assert "<<" in p.answer and p.value >= 0
        assert answer_value(p.answer) == p.value


def test_solve_reads_every_question_back():
    for p in gsm8k.generate(300):
        key, _, value = gsm8k.solve(p.question)
        assert (key, value) == (p.template, p.value)
    assert gsm8k.solve("What is the airspeed velocity of an unladen swallow?") is None


def test_last_question_finds_the_asked_one_after_the_shots():
    ps = gsm8k.generate(10)
    prompt = few_shot_prompt(ps, 5, ps[7].question)
    assert gsm8k.last_question(prompt) == ps[7].question
    assert gsm8k.last_question("no question here") is None
    assert gsm8k.last_question(prompt + " 12") is None  # already answered: nothing asked


def test_answers_are_right_with_the_configured_probability_and_stable():
    ps = gsm8k.generate(300)
    for accuracy in (0.945, 0.895):
        right = 0
        for p in ps:
            text = gsm8k.model_answer(p.question, accuracy)
            assert text == gsm8k.model_answer(p.question, accuracy)  # same question, same answer
            got = answer_value(text)
            ok = gsm8k.answers_correctly(p.question, accuracy)
            assert (got == p.value) == ok
            right += ok
        assert abs(right / len(ps) - accuracy) < 0.02
        for n in (50, 200):  # the data set is ordered so that its prefixes show the accuracy too
            share = sum(gsm8k.answers_correctly(p.question, accuracy) for p in ps[:n]) / n
            assert abs(share - accuracy) <= 0.03
    assert gsm8k.model_answer("Tell me a story.", 0.9) is None
    # a lower accuracy only ever turns right answers wrong (one hash, one threshold)
    assert all(gsm8k.answers_correctly(p.question, 0.945) for p in ps if gsm8k.answers_correctly(p.question, 0.895))
