"""The answer threshold from a target wrong-answer rate, read off calibration data (issue 21).

A threshold set by hand says nothing about how often an answer above it is wrong. The
threshold is instead the lowest confidence at which the wrong-answer rate (wrong answers /
answered questions) on calibration data is at most ``answer.target_wrong_rate``
(``KB_ANSWER__TARGET_WRONG_RATE``; the issue's aim is 0.10, not the default yet:
docs/confidence.md says why).

The calibration data is each labelled question's *out-of-fold* confidence (scored by a model
fitted without its fold, so as a new question would be) and whether the answer at that
confidence cites a document that answers it (an unanswerable question's answer never does),
per evaluation set. ``python -m kb.eval.calibrate DATASETS --write FILE`` writes it with the
model fitted on all of them; ``retrieval/trained/confidence-calibration.json`` is the one made
for the confidence model the settings ship with. The sets weigh the same: the rate is the mean
of the sets' rates (a set answering nothing counts 0), so one large set does not decide alone
and the hardest one does not escalate everything in the others (as "every set at most the
target" would). A knowledge base unlike all of them may see another rate: its own confirmed
answers are what calibrate it (the question memory's gate, ``retrieval.gate``).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

SHIPPED = Path(__file__).resolve().parent / "trained" / "confidence-calibration.json"

Points = Sequence[tuple[float, bool]]
"""One set's questions: (out-of-fold confidence, the answer at it would be right)."""


class _Curve:
    """One set's answered and wrong counts at any threshold, by bisection."""

    def __init__(self, points: Points) -> None:
        ordered = sorted(points)
        self.scores = [s for s, _ in ordered]
        wrong_at_or_above = [0] * (len(ordered) + 1)
        for i in range(len(ordered) - 1, -1, -1):
            wrong_at_or_above[i] = wrong_at_or_above[i + 1] + (not ordered[i][1])
        self.wrong = wrong_at_or_above

    def rate(self, threshold: float) -> float:
        i = bisect.bisect_left(self.scores, threshold)
        answered = len(self.scores) - i
        return self.wrong[i] / answered if answered else 0.0


def threshold_for(sets: Mapping[str, Points], target: float) -> float:
    """The lowest threshold (of the confidences seen, to 4 decimals) at which the mean of the
    sets' wrong-answer rates is at most ``target``; 1.0 when none is (answer nothing)."""
    curves = [_Curve(points) for points in sets.values() if points]
    if not curves:
        raise ValueError("calibration data holds no questions")
    for t in sorted({round(s, 4) for c in curves for s in c.scores}):
        if sum(c.rate(t) for c in curves) / len(curves) <= target:
            return t
    return 1.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """Out-of-fold calibration points and the confidence model they were computed for."""

    bias: float
    weights: tuple[tuple[str, float], ...]
    sets: Mapping[str, Points]

    def fits(self, bias: float, weights: Mapping[str, float]) -> bool:
        """Whether this is the calibration of the model ``bias``/``weights`` (to 1e-3)."""
        mine = dict(self.weights)
        return (
            math.isclose(bias, self.bias, abs_tol=1e-3)
            and mine.keys() == weights.keys()
            and all(math.isclose(w, mine[f], abs_tol=1e-3) for f, w in weights.items())
        )

    def threshold(self, target: float) -> float:
        """:func:`threshold_for` on these points (about 2 ms for the shipped 860)."""
        return threshold_for(self.sets, target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bias": self.bias,
            "weights": dict(self.weights),
            "sets": {
                name: [[round(s, 6), int(right)] for s, right in points]
                for name, points in self.sets.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            bias=float(data["bias"]),
            weights=tuple((str(f), float(w)) for f, w in dict(data["weights"]).items()),
            sets={
                str(name): tuple((float(s), bool(right)) for s, right in points)
                for name, points in dict(data["sets"]).items()
            },
        )


def load_calibration(path: Path) -> Calibration:
    """The calibration in ``path`` (read when the settings are built: under a millisecond).

    :raises ValueError: naming the file and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"answer.calibration: cannot read {path} ({exc})") from exc
    try:
        return Calibration.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"answer.calibration: {path} is not a calibration file ({exc})") from exc


class AnswerSettings(BaseModel):
    """Where the answer-or-escalate threshold comes from (``Settings.answer``)."""

    target_wrong_rate: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Set (0.10 is the issue's aim), the threshold is the lowest confidence at which this
    share of answers, at most, was wrong on the calibration data (the mean of its sets' rates),
    unless ``retrieval.confidence_threshold`` is set too. Unset: ``confidence_threshold``. Not
    the default yet: at 0.10 the sample knowledge base answers 46 of its 66 example questions
    instead of 63, and with the question memory on, the English manual answers fewer questions
    right and more wrong than at today's threshold (docs/confidence.md)."""
    calibration: Path = SHIPPED
    """Out-of-fold confidences of labelled questions and the model they were computed for
    (``python -m kb.eval.calibrate DATASETS --write FILE``)."""


class _ConfidenceSettings(Protocol):
    confidence_bias: float
    confidence_weights: dict[str, float]

    @property
    def model_fields_set(self) -> set[str]: ...


def calibrated_threshold(retrieval: _ConfidenceSettings, answer: AnswerSettings) -> float | None:
    """The threshold for ``answer.target_wrong_rate``; ``None`` when a threshold was set (in
    the settings, or by a model file) or no target is.

    :raises ValueError: when the calibration was computed for another confidence model."""
    target = answer.target_wrong_rate
    if target is None or "confidence_threshold" in retrieval.model_fields_set:
        return None
    calibration = load_calibration(answer.calibration)
    if not calibration.fits(retrieval.confidence_bias, retrieval.confidence_weights):
        raise ValueError(
            f"answer.calibration ({answer.calibration}) was computed for another confidence"
            " model than retrieval.confidence_bias and confidence_weights: set"
            " retrieval.confidence_threshold, or answer.calibration to the file that"
            " `python -m kb.eval.calibrate DATASETS --write FILE` wrote for them"
        )
    return calibration.threshold(target)
