"""What the history changed, with how sure that change is (``kb eval --history``, issue 22).

A three-split figure moves by a few hundredths from one fresh index to the next
(docs/experiments.md), so a gain read off one run says little by itself: +0.074 and +0.100
can be the same code. :func:`history_gain` gives each change with a 95% interval from a
paired bootstrap: the test questions are drawn again with replacement, each keeping its
outcome without and with the history, so the interval holds what the question sample leaves
uncertain (not what another index or another replay would change). A question that is a test
question in several splits is one draw, all its outcomes together: its splits are not
independent evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kb.eval.metrics import Outcome, answered_at

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95

Matrix = np.ndarray[Any, np.dtype[np.float64]]
COLUMNS = ("answerable", "right_0", "right_1", "answered_0", "answered_1", "wrong_0", "wrong_1")
"""What one question counts for, without (``_0``) and with (``_1``) history: right answers
over answerable questions, wrong answers over answered ones (as ``answering_metrics``)."""
_AT = {name: i for i, name in enumerate(COLUMNS)}


def history_gain(
    before: Sequence[Outcome],
    after: Sequence[Outcome],
    threshold: float | None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """The change from ``before`` (without history) to ``after`` (the same questions, in the
    same order, with it) in correct deflection and wrong-answer rate at ``threshold``: the
    pooled figure and its interval (``None`` where a rate has no denominator)."""
    if len(before) != len(after):
        raise ValueError("before and after hold different questions")
    clusters: dict[str, Matrix] = {}
    for b, a in zip(before, after, strict=True):
        if b.question.id != a.question.id:
            raise ValueError(f"question {b.question.id} is paired with {a.question.id}")
        row = clusters.setdefault(b.question.id, np.zeros(len(COLUMNS)))
        row += _counts(b, a, threshold)
    out: dict[str, Any] = {"questions": len(clusters), "resamples": resamples, "level": LEVEL}
    if not clusters:
        return out
    stats = np.asarray(list(clusters.values()))
    n = len(stats)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    totals = np.stack([np.bincount(d, minlength=n) for d in draws]) @ stats
    for name, rate in (("correct_deflection_rate", _correct), ("wrong_answer_rate", _wrong)):
        point = rate(stats.sum(axis=0)[None, :])[0]
        spread = rate(totals)
        spread = spread[~np.isnan(spread)]
        tail = (1 - LEVEL) / 2 * 100
        interval = (
            [round(float(np.percentile(spread, q)), 6) for q in (tail, 100 - tail)]
            if len(spread)
            else None
        )
        out[name] = {
            "change": None if np.isnan(point) else round(float(point), 6),
            "interval": interval,
        }
    return out


def _counts(before: Outcome, after: Outcome, threshold: float | None) -> Matrix:
    answerable = before.question.answerable
    pair = (before, after)
    answered = [answered_at(o, threshold) for o in pair]
    right = [answerable and a and o.cites_gold for o, a in zip(pair, answered, strict=True)]
    wrong = [a and not o.cites_gold for o, a in zip(pair, answered, strict=True)]
    return np.asarray([answerable, *right, *answered, *wrong], dtype=np.float64)


def _ratio(num: Matrix, den: Matrix) -> Matrix:
    return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan))


def _rate(t: Matrix, num: str, den: str) -> Matrix:
    return _ratio(t[:, _AT[num]], t[:, _AT[den]])


def _correct(t: Matrix) -> Matrix:
    return _rate(t, "right_1", "answerable") - _rate(t, "right_0", "answerable")


def _wrong(t: Matrix) -> Matrix:
    return _rate(t, "wrong_1", "answered_1") - _rate(t, "wrong_0", "answered_0")
