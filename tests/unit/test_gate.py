"""Where a learned answerability model answers (retrieval/gate.py)."""

from __future__ import annotations

import pytest

from kb.retrieval.gate import MIN_ANSWERED, Gate, choose_gate, wrong_rate


def test_the_gate_answers_as_much_as_the_target_wrong_rate_allows():
    # 40 questions, the better-scored right more often: the first 21 right, then a mix.
    p = [1.0 - i / 40 for i in range(40)]
    right = [i < 20 or i % 2 == 0 for i in range(40)]
    strict = choose_gate(p, right, 0.05, 0.57)
    loose = choose_gate(p, right, 0.25, 0.57)
    # 21 right answers, counted with one more wrong: 1/22 <= 0.05; the 22nd is wrong.
    assert strict.probability == pytest.approx((p[20] + p[21]) / 2)
    assert strict.answered == 21 / 40
    assert strict.wrong == pytest.approx(1 / 22)
    assert loose.probability < strict.probability
    assert loose.wrong <= 0.25 and loose.answered > strict.answered


def test_nothing_qualifies_and_too_few_answers_say_nothing():
    p = [0.9, 0.8, 0.7, 0.6]
    assert choose_gate(p, [True] * 4, 0.1, 0.5).probability == 1.0  # under MIN_ANSWERED
    many = [1.0 - i / 100 for i in range(MIN_ANSWERED * 2)]
    nothing = choose_gate(many, [False] * len(many), 0.1, 0.5)
    assert nothing.probability == 1.0 and nothing.answered == 0.0


def test_a_tie_is_answered_whole_or_not_at_all():
    # Twelve right questions at 0.9, then a tie of ten at 0.5 of which half are wrong.
    p = [0.9] * 12 + [0.5] * 10
    right = [True] * 12 + [True, False] * 5
    gate = choose_gate(p, right, 0.1, 0.57)
    assert gate.probability == 0.7  # 0.5 would answer five wrong of 22 (> 10%)
    assert choose_gate(p, right, 0.3, 0.57).probability == 0.5  # all of them


def test_probabilities_map_onto_the_configured_scale_in_order():
    gate = Gate(probability=0.8, threshold=0.57, target=0.1, answered=0.5, wrong=0.05)
    assert gate.confidence(0.8) == pytest.approx(0.57)
    assert gate.confidence(0.0) == 0.0 and gate.confidence(1.0) == pytest.approx(1.0)
    values = [gate.confidence(i / 100) for i in range(101)]
    assert values == sorted(values)
    assert gate.confidence(0.79) < 0.57 <= gate.confidence(0.81)
    closed = Gate(probability=1.0, threshold=0.57, target=0.1, answered=0.0, wrong=0.0)
    assert closed.confidence(0.99) < 0.57


def test_wrong_rate():
    assert wrong_rate([True, True, False], [True, False, False]) == 0.5
    assert wrong_rate([False, False], [True, True]) is None
