"""``kb eval``'s summary of generated answers (issue 7), on hand-made outcomes."""

from __future__ import annotations

import pytest

from kb.eval.datasets import EvalQuestion
from kb.eval.metrics import Outcome, generation_summary, summarize


def _o(qid, *, status="answered", conf=0.9, mode=None, reason=None, model=None, refused=False):
    q = EvalQuestion(id=qid, text=qid, answerable=True, gold_ids=("d1",))
    faith = 1.0 if status == "answered" else None
    return Outcome(
        question=q,
        ranked=("d1",),
        cited=("d1",) if status == "answered" else (),
        confidence=conf,
        status=status,
        faithfulness=faith,
        mode=mode,
        fallback_reason=reason,
        model_faithfulness=model,
        model_refused=refused,
    )


def test_generation_summary_counts_generated_refused_and_fallbacks_at_the_threshold():
    outcomes = [
        _o("q1", mode="generated", model=0.75),
        _o("q2", mode="extractive", reason="unsupported", model=0.25),
        _o("q3", mode="extractive", reason="llm_timeout"),
        _o("q4", status="escalated", mode="generated", refused=True),
        _o("q5", conf=0.1, mode="generated", model=1.0),  # under the threshold: not counted
        _o("q6", status="escalated", conf=0.1, mode="generated", refused=True),  # idem
    ]
    gen = generation_summary(outcomes, threshold=0.5)
    assert gen == {
        "asked": 4,
        "generated": 1,
        "refused": 1,
        "fallbacks": {"llm_timeout": 1, "unsupported": 1},
        "fallback_rate": 0.5,
        "model_faithfulness": pytest.approx(0.5),
        "faithfulness": 1.0,
    }
    assert summarize(outcomes, threshold=0.5)["generation"] == gen


def test_no_generation_block_without_a_model():
    outcomes = [_o("q1", mode="extractive"), _o("q2")]
    assert generation_summary(outcomes, threshold=0.5) is None
    assert "generation" not in summarize(outcomes, threshold=0.5)
