"""Where a learned answerability model answers: the probability that holds a wrong-answer rate.

A calibrated probability and the configured confidence threshold are two different scales: the
threshold (``retrieval.confidence_threshold``) was set for the confidence model it ships with,
and read as a probability it is stricter or looser than the deployment chose (at 0.57 the
memory's learned answerability gave emanual_tv fewer right answers than the plain gate: 0.634
against 0.669, with 0.133 wrong against 0.215; issue 22).
A :class:`Gate` is chosen on out-of-fold answers instead, at the probability that keeps their
wrong-answer rate within a target, and :meth:`Gate.confidence` maps probabilities onto the
configured scale (monotone, 0 and 1 fixed) so that the one threshold still decides, every
figure and log keeps one confidence scale, and the order of confidences is the probabilities'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIN_ANSWERED = 10
"""Out-of-fold answers a candidate threshold must keep: a wrong-answer rate over fewer says
nothing."""


@dataclass(frozen=True, slots=True)
class Gate:
    """The probability at which a learned model answers, and what it held out of fold."""

    probability: float
    """Answer at or above this probability."""
    threshold: float
    """The configured confidence threshold it maps onto."""
    target: float
    """The wrong-answer rate it was chosen for."""
    answered: float
    """Share of the out-of-fold questions answered at :attr:`probability`."""
    wrong: float
    """Their wrong-answer rate (with one wrong answer added, see :func:`choose_gate`)."""
    right: int = 0
    """How many of them were right."""

    def confidence(self, p: float) -> float:
        """``p`` on the configured scale: :attr:`probability` becomes :attr:`threshold`,
        linear on either side."""
        t, c = self.probability, self.threshold
        if p >= t:
            return 1.0 if t >= 1.0 else c + (p - t) * (1.0 - c) / (1.0 - t)
        return c if t <= 0.0 else p * c / t

    def to_dict(self) -> dict[str, float]:
        return {
            "answer_probability": round(self.probability, 4),
            "target_wrong_rate": round(self.target, 4),
            "validated_answered": round(self.answered, 4),
            "validated_wrong_rate": round(self.wrong, 4),
        }


def wrong_rate(answered: Sequence[bool], right: Sequence[bool]) -> float | None:
    """The share of wrong answers among the answered questions (``None``: none answered)."""
    n = sum(answered)
    if not n:
        return None
    return sum(a and not r for a, r in zip(answered, right, strict=True)) / n


def choose_gate(
    probabilities: Sequence[float], right: Sequence[bool], target: float, threshold: float
) -> Gate:
    """The lowest cut (the most answers) whose answers, out of fold, are wrong at most
    ``target`` of the time, counting one more wrong answer than they had (a rate read off a
    few hundred questions is optimistic at the threshold chosen on them). Nothing qualifies:
    the gate answers nothing above what it saw (probability 1)."""
    order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
    best: Gate | None = None
    wrong = 0
    for n, i in enumerate(order, start=1):
        wrong += not right[i]
        if n < MIN_ANSWERED:
            continue
        if n < len(order) and probabilities[order[n]] == probabilities[i]:
            continue  # a threshold answers all of a tie or none of it
        rate = (wrong + 1) / (n + 1)
        if rate <= target:
            # Midway to the next probability: where exactly the cut falls between two
            # questions' probabilities is not known, and a cut at either one would move with
            # the slightest change in it.
            below = probabilities[order[n]] if n < len(order) else probabilities[i]
            cut = (probabilities[i] + below) / 2
            best = Gate(cut, threshold, target, n / len(order), rate, n - wrong)
    return best or Gate(1.0, threshold, target, 0.0, 0.0)
