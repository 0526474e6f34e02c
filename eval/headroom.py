"""What the loop could give on a history split (``kb eval --history``, issue 22), beside what
it gave: the test questions a confirmed question can carry an answer to, where their gold
documents stood without and with the history, and what a perfect choice of gate would answer
at the wrong-answer rate the product had without it (docs/question-memory.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kb.eval.datasets import EvalQuestion
from kb.eval.metrics import (
    Outcome,
    answering_metrics,
    choose_threshold,
    dedupe,
    threshold_curve,
)


def shared_gold(
    history: Sequence[EvalQuestion],
    test: Sequence[EvalQuestion],
    before: Sequence[Outcome] = (),
    after: Sequence[Outcome] = (),
) -> dict[str, int]:
    """How many answerable test questions share a gold document with an answerable history
    question (``shared``), of how many (``answerable``): only those can be answered from a
    confirmed question's passage. Of those, from the outcomes without history (``before``)
    and with it (``after``): how many had a gold document first (``first_without``,
    ``first_with``), among the first three documents without history (``top3_without``) and
    cited with it (``cited_with``; an answer counts as right when any citation is gold)."""
    seen = {g for q in history if q.answerable for g in q.gold_ids}
    answerable = [q for q in test if q.answerable]
    shared = {q.id for q in answerable if seen.intersection(q.gold_ids)}

    def count(outcomes: Sequence[Outcome], right: Callable[[Outcome], bool]) -> int:
        return sum(1 for o in outcomes if o.question.id in shared and right(o))

    def first(o: Outcome) -> bool:
        return bool(o.ranked) and o.ranked[0] in o.question.gold_ids

    def top3(o: Outcome) -> bool:
        return bool(set(dedupe(o.ranked)[:3]) & set(o.question.gold_ids))

    return {
        "shared": len(shared),
        "answerable": len(answerable),
        "first_without": count(before, first),
        "top3_without": count(before, top3),
        "first_with": count(after, first),
        "cited_with": count(after, lambda o: o.cites_gold),
    }


def headroom(
    counts: Sequence[dict[str, Any]],
    before: Sequence[Outcome],
    after: Sequence[Outcome],
    threshold: float,
) -> dict[str, Any]:
    """What the loop could give, beside what it gave: the share of answerable test questions
    that share a gold document with the history and where their gold documents stood
    (``counts``: :func:`shared_gold` of each split, summed), and the correct deflection with
    history at the best threshold whose wrong-answer rate is no higher than without it at
    ``threshold`` (read on the test questions themselves: what a perfect choice of gate would
    give, not a figure the product reaches)."""
    keys = ("shared", "answerable", "first_without", "top3_without", "first_with", "cited_with")
    pooled = {k: sum(int(c.get(k, 0)) for c in counts) for k in keys}
    shared, answerable = pooled["shared"], pooled["answerable"]
    wrong = answering_metrics(before, threshold)["wrong_answer_rate"]
    best = choose_threshold(threshold_curve(after), wrong) if wrong is not None else None
    return {
        **pooled,
        "shared_gold": round(shared / answerable, 6) if answerable else None,
        "without_wrong_rate": wrong,
        "best_gate_correct": best["correct_deflection_rate"] if best else None,
        "best_gate_threshold": best["threshold"] if best else None,
    }
