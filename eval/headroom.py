"""What the loop could give on a history split (``kb eval --history``, issue 22), beside what
it gave: the test questions a confirmed question can carry an answer to, where their gold
documents stood without and with the history, and what a perfect choice of gate would answer
at the wrong-answer rate the product had without it (docs/question-memory.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kb.eval.datasets import EvalQuestion
from kb.eval.metrics import Outcome, choose_threshold, dedupe, hit_at_k, threshold_curve


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

    def within(k: int) -> Callable[[Outcome], bool]:
        return lambda o: bool(hit_at_k(dedupe(o.ranked), o.question.gold_ids, k))

    return {
        "shared": len(shared),
        "answerable": len(answerable),
        "first_without": count(before, within(1)),
        "top3_without": count(before, within(3)),
        "first_with": count(after, within(1)),
        "cited_with": count(after, lambda o: o.cites_gold),
    }


def headroom(
    counts: Sequence[Mapping[str, int]],
    without_wrong_rate: float | None,
    after: Sequence[Outcome],
) -> dict[str, Any]:
    """What the loop could give, beside what it gave: the share of answerable test questions
    that share a gold document with the history and where their gold documents stood
    (``counts``: :func:`shared_gold` of each split, summed), and the correct deflection with
    history (``after``) at the best threshold whose wrong-answer rate is no higher than
    ``without_wrong_rate``, the product's without history (read on the test questions
    themselves: what a perfect choice of gate would give, not a figure the product reaches)."""
    pooled: Counter[str] = Counter()
    for c in counts:
        pooled.update(c)
    shared, answerable = pooled["shared"], pooled["answerable"]
    best = (
        choose_threshold(threshold_curve(after), without_wrong_rate)
        if without_wrong_rate is not None
        else None
    )
    return {
        **pooled,
        "shared_gold": round(shared / answerable, 6) if answerable else None,
        "without_wrong_rate": without_wrong_rate,
        "best_gate_correct": best["correct_deflection_rate"] if best else None,
        "best_gate_threshold": best["threshold"] if best else None,
    }
