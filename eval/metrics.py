"""Retrieval and answering metrics over per-question outcomes. Pure: no I/O, no models.

Definitions (docs/eval-datasets.md has them with examples):

- Rankings are of DISTINCT documents: a chunk stands for its document, and a document keeps the
  rank of its first chunk (:func:`dedupe`). Retrieval metrics average over answerable questions
  that have gold documents.
- ``recall@k``: share of the question's gold documents in the top k; ``hit@k``: 1 when any is;
  ``mrr@10``: 1 / rank of the first gold document in the top 10 (0 when none);
  ``ndcg@10``: DCG = sum of gain / log2(rank + 1) over the top 10, divided by the DCG of the
  ideal order of the question's gains (graded qrels when present, else 1 per gold id).
- A question is *answered* at threshold t when the pipeline answered it (with citations),
  its confidence is >= t, and it did not raise. It *cites gold* when a cited document is gold.
  ``deflection_rate`` = answered / all questions; ``correct_deflection_rate`` = answered and
  citing gold / answerable questions; ``wrong_answer_rate`` = answered without citing gold /
  answered; ``escalation_recall`` = escalated / unanswerable questions; ``auroc``: the
  probability that an answerable question gets a higher confidence than an unanswerable one
  (ties count one half: the Mann-Whitney U statistic over P * N pairs).
- A question that raised counts as a failure everywhere: an empty ranking, not answered, not
  escalated, no confidence (left out of AUROC) and no latency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kb.eval.datasets import EvalQuestion

Status = Literal["answered", "escalated", "error"]

KS = (1, 5, 10)
RETRIEVAL_KEYS = (
    "recall@1",
    "recall@5",
    "recall@10",
    "hit@1",
    "hit@5",
    "hit@10",
    "mrr@10",
    "ndcg@10",
)
ANSWERING_KEYS = (
    "deflection_rate",
    "correct_deflection_rate",
    "wrong_answer_rate",
    "escalation_recall",
    "auroc",
    "threshold",
)
DEFAULT_WRONG_ANSWER_TARGET = 0.10


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pipeline did with one question.

    ``ranked``: document keys of the returned passages, best first (repeats allowed: metrics
    dedupe). ``cited``: document keys the answer cites. ``status`` is the pipeline's own;
    :func:`answered_at` re-applies a confidence threshold on top of it. ``faithfulness`` is the
    answer's faithfulness score (None when it was not answered or not checked).
    """

    question: EvalQuestion
    ranked: tuple[str, ...] = ()
    cited: tuple[str, ...] = ()
    confidence: float | None = None
    status: Status = "escalated"
    latency_ms: float | None = None
    faithfulness: float | None = None
    error: str | None = None
    mode: str | None = None
    """``generated`` or ``extractive`` (None: unknown, e.g. a fake pipeline)."""
    fallback_reason: str | None = None
    """Why a configured LLM's answer was not used (``llm_timeout``, ``unsupported``, ...)."""
    model_faithfulness: float | None = None
    """Share of the LLM's sentences the check supported, before any was removed (None when no
    model was asked or it gave nothing to check)."""
    model_refused: bool = False
    """The LLM said the passages do not hold the answer (the question was escalated)."""

    @property
    def cites_gold(self) -> bool:
        """Whether a cited document is one of the question's gold documents."""
        return bool(set(self.cited) & set(self.question.gold_ids))


# --- retrieval ------------------------------------------------------------------------------


def dedupe(keys: Iterable[str]) -> list[str]:
    """Distinct keys in first-seen order: ``["a", "b", "a", "c"]`` -> ``["a", "b", "c"]``."""
    return list(dict.fromkeys(keys))


def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Share of ``gold`` in the first ``k`` of ``ranked`` (a deduped ranking); 0.0 if no gold."""
    gold_set = set(gold)
    if not gold_set:
        return 0.0
    return len(gold_set & set(ranked[:k])) / len(gold_set)


def hit_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when any gold document is in the first ``k``, else 0.0."""
    return 1.0 if set(gold) & set(ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Iterable[str], k: int = 10) -> float:
    """1 / rank of the first gold document within the first ``k`` (0.0 when none)."""
    gold_set = set(gold)
    for rank, key in enumerate(ranked[:k], start=1):
        if key in gold_set:
            return 1.0 / rank
    return 0.0


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains in rank order: sum of g_i / log2(i + 1), i from 1."""
    return sum(g / math.log2(i + 1) for i, g in enumerate(gains, start=1))


def ndcg_at_k(ranked: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k of a deduped ranking against per-document gains (0.0 when no gain is positive)."""
    ideal = dcg(sorted((g for g in gains.values() if g > 0), reverse=True)[:k])
    if ideal <= 0:
        return 0.0
    return dcg([gains.get(key, 0.0) for key in ranked[:k]]) / ideal


def question_retrieval(outcome: Outcome) -> dict[str, float]:
    """All retrieval metrics of one question."""
    ranked = dedupe(outcome.ranked) if outcome.error is None else []
    gold = outcome.question.gold_ids
    out: dict[str, float] = {}
    for k in KS:
        out[f"recall@{k}"] = recall_at_k(ranked, gold, k)
    for k in KS:
        out[f"hit@{k}"] = hit_at_k(ranked, gold, k)
    out["mrr@10"] = reciprocal_rank(ranked, gold, 10)
    out["ndcg@10"] = ndcg_at_k(ranked, outcome.question.gains(), 10)
    return out


def retrieval_metrics(outcomes: Sequence[Outcome]) -> dict[str, float | None]:
    """Means over answerable questions with gold documents (None for each when there are none)."""
    scored = [question_retrieval(o) for o in outcomes if _judged(o.question)]
    if not scored:
        return dict.fromkeys(RETRIEVAL_KEYS, None)
    return {key: sum(s[key] for s in scored) / len(scored) for key in RETRIEVAL_KEYS}


def _judged(q: EvalQuestion) -> bool:
    return q.answerable and bool(q.gold_ids)


# --- answering ------------------------------------------------------------------------------


def answered_at(outcome: Outcome, threshold: float | None) -> bool:
    """Answered at ``threshold``: no error, the pipeline answered, confidence >= threshold.
    ``threshold=None`` takes the pipeline's status as it is."""
    if outcome.error is not None or outcome.status != "answered":
        return False
    if threshold is None:
        return True
    return outcome.confidence is not None and outcome.confidence >= threshold


def answering_metrics(
    outcomes: Sequence[Outcome], threshold: float | None = None
) -> dict[str, float | None]:
    """Deflection, correct deflection, wrong-answer rate, escalation recall at ``threshold``,
    and the AUROC of the confidence; a rate is None when its denominator is 0.
    ``"threshold"`` echoes the threshold applied."""
    answered = [o for o in outcomes if answered_at(o, threshold)]
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    correct = sum(1 for o in answered if o.question.answerable and o.cites_gold)
    wrong = sum(1 for o in answered if not o.cites_gold)
    escalated = sum(1 for o in unanswerable if o.error is None and not answered_at(o, threshold))
    return {
        "deflection_rate": _ratio(len(answered), len(outcomes)),
        "correct_deflection_rate": _ratio(correct, len(answerable)),
        "wrong_answer_rate": _ratio(wrong, len(answered)),
        "escalation_recall": _ratio(escalated, len(unanswerable)),
        "auroc": confidence_auroc(outcomes),
        "threshold": threshold,
    }


def confidence_auroc(outcomes: Sequence[Outcome]) -> float | None:
    """AUROC of the confidence for answerable (positive) vs unanswerable questions."""
    pairs = [
        (o.confidence, o.question.answerable)
        for o in outcomes
        if o.error is None and o.confidence is not None
    ]
    return auroc([s for s, _ in pairs], [y for _, y in pairs])


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Mann-Whitney AUROC: (pairs ranked right + half the tied pairs) / (P * N).

    Computed with mid-ranks: U = (sum of the positives' ranks) - P(P + 1)/2. None when either
    class is empty.
    """
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    n_pos = sum(1 for y in labels if y)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1  # ranks i+1 .. j+1 share their mean
        for t in range(i, j + 1):
            ranks[order[t]] = mid
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


# --- threshold sweep ------------------------------------------------------------------------


def threshold_curve(outcomes: Sequence[Outcome]) -> list[dict[str, float | int | None]]:
    """Answering metrics at every distinct observed confidence, lowest threshold first.

    Exact only when the outcomes were produced with the pipeline's own gate open (threshold
    0), so that every question it could answer carries its citations.
    """
    values = sorted(
        {o.confidence for o in outcomes if o.error is None and o.confidence is not None}
    )
    curve: list[dict[str, float | int | None]] = []
    for t in values:
        m = answering_metrics(outcomes, t)
        curve.append(
            {
                "threshold": t,
                "answered": sum(1 for o in outcomes if answered_at(o, t)),
                "deflection_rate": m["deflection_rate"],
                "correct_deflection_rate": m["correct_deflection_rate"],
                "wrong_answer_rate": m["wrong_answer_rate"],
                "escalation_recall": m["escalation_recall"],
            }
        )
    return curve


def choose_threshold(
    curve: Sequence[Mapping[str, Any]], target: float = DEFAULT_WRONG_ANSWER_TARGET
) -> dict[str, Any] | None:
    """The curve point with wrong-answer rate <= ``target`` (nothing answered counts as 0) and
    the highest correct deflection; ties go to the higher threshold (fewer wrong answers).
    None when no point meets the target."""
    best: Mapping[str, Any] | None = None
    for point in curve:
        wrong = point["wrong_answer_rate"]
        if wrong is not None and wrong > target:
            continue
        if best is None or _key(point) >= _key(best):
            best = point
    if best is None:
        return None
    return {**best, "target_wrong_answer_rate": target}


def _key(point: Mapping[str, Any]) -> tuple[float, float]:
    return (point["correct_deflection_rate"] or 0.0, point["threshold"])


# --- latency, faithfulness, summary ---------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks
    (numpy's default); None for no values."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def latency_summary(outcomes: Sequence[Outcome]) -> dict[str, float | None]:
    """p50 and p95 of the per-question latency in ms (questions that raised left out)."""
    values = [o.latency_ms for o in outcomes if o.error is None and o.latency_ms is not None]
    return {"p50": percentile(values, 50), "p95": percentile(values, 95)}


def mean_faithfulness(outcomes: Sequence[Outcome], threshold: float | None) -> float | None:
    """Mean faithfulness score of the answers given at ``threshold`` (None when none)."""
    scores = [
        o.faithfulness for o in outcomes if answered_at(o, threshold) and o.faithfulness is not None
    ]
    return sum(scores) / len(scores) if scores else None


def generation_summary(
    outcomes: Sequence[Outcome], threshold: float | None
) -> dict[str, Any] | None:
    """How generated answers fared (None when no LLM was asked, i.e. no endpoint configured).

    Over the questions the pipeline answered at ``threshold`` or that the model refused:
    ``asked`` (questions the model was asked), ``generated`` (answers given as generated),
    ``refused`` (escalated because the model said the passages do not hold the answer),
    ``fallbacks`` (extractive answers given instead, by reason), ``model_faithfulness`` (mean
    share of the model's sentences supported, before removal: how faithful the model is) and
    ``faithfulness`` (mean faithfulness of the generated answers as given).
    """
    asked = [
        o
        for o in outcomes
        if o.error is None
        and (o.mode == "generated" or o.fallback_reason is not None)
        and (answered_at(o, threshold) or (o.model_refused and _above(o, threshold)))
    ]
    if not asked and not any(o.mode == "generated" or o.fallback_reason for o in outcomes):
        return None
    fallbacks: dict[str, int] = {}
    for o in asked:
        if o.fallback_reason:
            fallbacks[o.fallback_reason] = fallbacks.get(o.fallback_reason, 0) + 1
    generated = [o for o in asked if o.mode == "generated" and not o.model_refused]
    model_scores = [o.model_faithfulness for o in asked if o.model_faithfulness is not None]
    final_scores = [o.faithfulness for o in generated if o.faithfulness is not None]
    return {
        "asked": len(asked),
        "generated": len(generated),
        "refused": sum(1 for o in asked if o.model_refused),
        "fallbacks": dict(sorted(fallbacks.items())),
        "fallback_rate": _ratio(sum(fallbacks.values()), len(asked)),
        "model_faithfulness": sum(model_scores) / len(model_scores) if model_scores else None,
        "faithfulness": sum(final_scores) / len(final_scores) if final_scores else None,
    }


def summarize(
    outcomes: Sequence[Outcome],
    *,
    threshold: float | None,
    target: float = DEFAULT_WRONG_ANSWER_TARGET,
) -> dict[str, Any]:
    """Everything the report holds for one dataset and variant, except index time and names:
    ``retrieval``, ``answering``, ``faithfulness``, ``latency_ms``, ``questions``, ``errors``,
    ``curve``, ``chosen_threshold``, and ``subsets`` / ``on_clean_gold`` when the set has them."""
    curve = threshold_curve(outcomes)
    out: dict[str, Any] = {
        "retrieval": retrieval_metrics(outcomes),
        "answering": answering_metrics(outcomes, threshold),
        "faithfulness": mean_faithfulness(outcomes, threshold),
        "latency_ms": latency_summary(outcomes),
        "questions": len(outcomes),
        "errors": sum(1 for o in outcomes if o.error is not None),
        "curve": curve,
        "chosen_threshold": choose_threshold(curve, target),
    }
    generation = generation_summary(outcomes, threshold)
    if generation is not None:
        out["generation"] = generation
    subsets = sorted({o.question.subset for o in outcomes if o.question.subset is not None})
    if subsets:
        out["subsets"] = {name: _slice(outcomes, _in_subset(name), threshold) for name in subsets}
    if any(o.question.clean_gold is not None for o in outcomes):
        # Unanswerable questions have no gold to doubt: they stay in the clean slice.
        out["on_clean_gold"] = _slice(
            outcomes, lambda o: o.question.clean_gold is not False, threshold
        )
    return out


def _above(outcome: Outcome, threshold: float | None) -> bool:
    # A question under the threshold escalates before any model is asked.
    return threshold is None or (outcome.confidence or 0.0) >= threshold


def _slice(
    outcomes: Sequence[Outcome], keep: Callable[[Outcome], bool], threshold: float | None
) -> dict[str, Any]:
    part = [o for o in outcomes if keep(o)]
    return {
        "questions": len(part),
        "retrieval": retrieval_metrics(part),
        "answering": answering_metrics(part, threshold),
    }


def _in_subset(name: str) -> Callable[[Outcome], bool]:
    return lambda o: o.question.subset == name


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None
