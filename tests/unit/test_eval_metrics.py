"""Metrics on tiny hand-computed examples; the arithmetic is written next to each number."""

from __future__ import annotations

import math

import pytest

from kb.eval.datasets import EvalQuestion
from kb.eval.metrics import (
    RETRIEVAL_KEYS,
    Outcome,
    answered_at,
    answering_metrics,
    auroc,
    choose_threshold,
    dcg,
    dedupe,
    hit_at_k,
    latency_summary,
    mean_faithfulness,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
    retrieval_metrics,
    summarize,
    threshold_curve,
)

L3 = math.log2(3)  # 1.5849625
L5 = math.log2(5)  # 2.3219281


def q(
    qid: str,
    gold: tuple[str, ...] = (),
    *,
    answerable: bool | None = None,
    graded: dict[str, float] | None = None,
    subset: str | None = None,
    containment: float | None = None,
) -> EvalQuestion:
    return EvalQuestion(
        id=qid,
        text=f"question {qid}",
        answerable=bool(gold) if answerable is None else answerable,
        gold_ids=gold,
        graded_qrels=graded,
        subset=subset,
        gold_containment=containment,
    )


def out(question: EvalQuestion, **kw: object) -> Outcome:
    return Outcome(question=question, **kw)  # type: ignore[arg-type]


# --- ranking ----------------------------------------------------------------------------------


def test_dedupe_keeps_first_rank() -> None:
    assert dedupe(["x", "a", "a", "a", "y", "c"]) == ["x", "a", "y", "c"]


def test_recall_hit_mrr_on_deduped_ranking() -> None:
    # chunks x a a a y c -> documents x a y c; gold {a, c}
    ranked = dedupe(["x", "a", "a", "a", "y", "c"])
    gold = {"a", "c"}
    assert recall_at_k(ranked, gold, 1) == 0.0  # top1 {x}: 0/2
    assert recall_at_k(ranked, gold, 2) == 0.5  # {x, a}: 1/2
    # c is document rank 4: inside the top 5 (as chunk it was rank 6, outside)
    assert recall_at_k(ranked, gold, 5) == 1.0
    assert hit_at_k(ranked, gold, 1) == 0.0
    assert hit_at_k(ranked, gold, 5) == 1.0
    assert reciprocal_rank(ranked, gold, 10) == 0.5  # first gold a at rank 2
    assert reciprocal_rank(ranked, {"z"}, 10) == 0.0
    assert reciprocal_rank([f"d{i}" for i in range(10)] + ["a"], {"a"}, 10) == 0.0


def test_recall_without_gold_is_zero() -> None:
    assert recall_at_k(["a"], set(), 5) == 0.0


def test_dcg_uses_log2_rank_plus_one() -> None:
    # 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.2618595 + 0.5
    assert dcg([3, 2, 1]) == pytest.approx(3 + 2 / L3 + 0.5)


def test_binary_ndcg() -> None:
    # ranked x a y c, gains a=1 c=1: DCG = 1/log2(3) + 1/log2(5) = 0.6309298 + 0.4306766
    # ideal a c: 1 + 1/log2(3) = 1.6309298 -> 1.0616064 / 1.6309298 = 0.6509209
    ranked = ["x", "a", "y", "c"]
    assert ndcg_at_k(ranked, {"a": 1.0, "c": 1.0}, 10) == pytest.approx(0.6509209, abs=1e-6)
    assert ndcg_at_k(ranked, {"a": 1.0, "c": 1.0}, 10) == pytest.approx(
        (1 / L3 + 1 / L5) / (1 + 1 / L3)
    )


def test_graded_ndcg_uses_grades_as_gain_and_ideal_from_qrels() -> None:
    # qrels a=2 b=2 r=1; ranked r a z: DCG = 1/1 + 2/log2(3) + 0 = 2.2618595
    # ideal a b r: 2 + 2/log2(3) + 1/log2(4) = 3.7618595 -> 0.6012610
    gains = {"a": 2.0, "b": 2.0, "r": 1.0}
    assert ndcg_at_k(["r", "a", "z"], gains, 10) == pytest.approx(0.6012610, abs=1e-6)
    # the perfect order scores 1
    assert ndcg_at_k(["a", "b", "r"], gains, 10) == pytest.approx(1.0)
    # ndcg@1 of r a z: 1 / 2 (ideal top-1 gain is 2)
    assert ndcg_at_k(["r", "a", "z"], gains, 1) == pytest.approx(0.5)
    assert ndcg_at_k(["a"], {}, 10) == 0.0


def test_question_gains_graded_or_binary() -> None:
    assert q("1", ("a",), graded={"a": 2, "r": 1, "n": 0}).gains() == {"a": 2.0, "r": 1.0}
    assert q("2", ("a", "b")).gains() == {"a": 1.0, "b": 1.0}


def test_retrieval_metrics_average_answerable_only() -> None:
    q1 = q("1", ("a", "c"))
    q2 = q("2", ("b",))
    q3 = q("3", answerable=False)
    outcomes = [
        out(q1, ranked=("x", "a", "a", "a", "y", "c")),
        out(q2, ranked=("b", "b")),
        out(q3, ranked=("a",)),  # unanswerable: not scored
    ]
    m = retrieval_metrics(outcomes)
    assert set(m) == set(RETRIEVAL_KEYS)
    assert m["recall@1"] == pytest.approx((0 + 1) / 2)  # 0.5
    assert m["recall@5"] == pytest.approx((1 + 1) / 2)  # 1.0
    assert m["hit@1"] == pytest.approx((0 + 1) / 2)
    assert m["mrr@10"] == pytest.approx((0.5 + 1) / 2)  # 0.75
    assert m["ndcg@10"] == pytest.approx((0.6509209 + 1) / 2, abs=1e-6)  # 0.8254605


def test_retrieval_metrics_error_counts_as_empty_ranking() -> None:
    q1, q2 = q("1", ("a",)), q("2", ("b",))
    m = retrieval_metrics([out(q1, ranked=("a",)), out(q2, ranked=("b",), error="boom")])
    assert m["recall@1"] == pytest.approx((1 + 0) / 2)


def test_retrieval_metrics_none_without_answerable() -> None:
    m = retrieval_metrics([out(q("1", answerable=False))])
    assert all(v is None for v in m.values())


# --- answering --------------------------------------------------------------------------------
# Six questions: three answerable (gold a, b, c), three not.
#   A1 conf 0.9 answers citing a (gold)      A2 conf 0.7 cites x (wrong)
#   A3 conf 0.4 cites c (gold)               U1 conf 0.8 cites y
#   U2 conf 0.3 cites z                      U3 conf 0.0 escalated (no passage)

A1, A2, A3 = q("A1", ("a",)), q("A2", ("b",)), q("A3", ("c",))
U1, U2, U3 = q("U1", answerable=False), q("U2", answerable=False), q("U3", answerable=False)
SIX = [
    out(A1, ranked=("a",), cited=("a",), confidence=0.9, status="answered", faithfulness=1.0),
    out(A2, ranked=("x", "b"), cited=("x",), confidence=0.7, status="answered", faithfulness=0.5),
    out(A3, ranked=("c",), cited=("c",), confidence=0.4, status="answered", faithfulness=1.0),
    out(U1, ranked=("y",), cited=("y",), confidence=0.8, status="answered", faithfulness=0.0),
    out(U2, ranked=("z",), cited=("z",), confidence=0.3, status="answered", faithfulness=1.0),
    out(U3, confidence=0.0, status="escalated"),
]


def test_answering_metrics_as_returned() -> None:
    m = answering_metrics(SIX)
    assert m["deflection_rate"] == pytest.approx(5 / 6)  # A1 A2 A3 U1 U2 answered of 6
    assert m["correct_deflection_rate"] == pytest.approx(2 / 3)  # A1 A3 of 3 answerable
    assert m["wrong_answer_rate"] == pytest.approx(3 / 5)  # A2 U1 U2 of 5 answered
    assert m["escalation_recall"] == pytest.approx(1 / 3)  # U3 of 3 unanswerable
    assert m["threshold"] is None


def test_answering_metrics_at_threshold() -> None:
    m = answering_metrics(SIX, 0.5)
    assert m["deflection_rate"] == pytest.approx(3 / 6)  # A1 .9, A2 .7, U1 .8
    assert m["correct_deflection_rate"] == pytest.approx(1 / 3)  # A1
    assert m["wrong_answer_rate"] == pytest.approx(2 / 3)  # A2 U1 of 3
    assert m["escalation_recall"] == pytest.approx(2 / 3)  # U2 U3
    assert m["threshold"] == 0.5


def test_auroc_counts_pairs() -> None:
    # positives .9 .7 .4, negatives .8 .3 .0
    # .9 beats 3, .7 beats .3 and .0 (2), .4 beats .3 and .0 (2): 7 of 9 pairs
    assert answering_metrics(SIX)["auroc"] == pytest.approx(7 / 9)


def test_auroc_ties_count_half() -> None:
    # pos .5 .5, neg .5 .2: (.5,.5) ties 2 x 0.5 = 1, (.5,.2) wins 2 -> 3 / 4
    assert auroc([0.5, 0.5, 0.5, 0.2], [True, True, False, False]) == pytest.approx(0.75)
    assert auroc([0.1, 0.2], [True, True]) is None
    assert auroc([], []) is None
    assert auroc([0.1], [False]) is None
    assert auroc([0.9, 0.1], [True, False]) == 1.0
    assert auroc([0.1, 0.9], [True, False]) == 0.0


def test_errors_count_as_failures() -> None:
    outcomes = [
        out(A1, ranked=("a",), cited=("a",), confidence=0.9, status="answered"),
        out(A2, status="error", error="boom"),
        out(U1, status="error", error="boom"),
        out(U3, confidence=0.0, status="escalated"),
    ]
    m = answering_metrics(outcomes)
    assert m["deflection_rate"] == pytest.approx(1 / 4)  # errors stay in the denominator
    assert m["correct_deflection_rate"] == pytest.approx(1 / 2)  # A1 of A1 A2
    assert m["wrong_answer_rate"] == 0.0  # 0 of 1 answered
    assert m["escalation_recall"] == pytest.approx(1 / 2)  # U3 yes, the failed U1 no
    assert m["auroc"] == 1.0  # errors have no confidence: .9 vs .0
    assert not answered_at(outcomes[1], None)


def test_rates_undefined_without_denominator() -> None:
    m = answering_metrics([out(A1, confidence=0.1, status="escalated")])
    assert m["wrong_answer_rate"] is None  # nothing answered
    assert m["escalation_recall"] is None  # no unanswerable question
    assert m["auroc"] is None


# --- sweep ------------------------------------------------------------------------------------


def test_threshold_curve_every_observed_confidence() -> None:
    curve = threshold_curve(SIX)
    assert [p["threshold"] for p in curve] == [0.0, 0.3, 0.4, 0.7, 0.8, 0.9]
    by_t = {p["threshold"]: p for p in curve}
    # t=0.0 and 0.3: the five answered ones (U3 was escalated by the pipeline: no passage)
    assert by_t[0.3]["answered"] == 5
    assert by_t[0.3]["wrong_answer_rate"] == pytest.approx(3 / 5)
    # t=0.4: A1 A2 A3 U1 -> defl 4/6, correct 2/3, wrong A2 U1 = 2/4, esc U2 U3 = 2/3
    assert by_t[0.4]["deflection_rate"] == pytest.approx(4 / 6)
    assert by_t[0.4]["correct_deflection_rate"] == pytest.approx(2 / 3)
    assert by_t[0.4]["wrong_answer_rate"] == pytest.approx(0.5)
    assert by_t[0.4]["escalation_recall"] == pytest.approx(2 / 3)
    # t=0.8: A1 U1 -> defl 2/6, correct 1/3, wrong 1/2
    assert by_t[0.8]["deflection_rate"] == pytest.approx(2 / 6)
    assert by_t[0.8]["wrong_answer_rate"] == pytest.approx(0.5)
    # t=0.9: A1 only -> defl 1/6, correct 1/3, wrong 0, all three unanswerable escalated
    assert by_t[0.9]["deflection_rate"] == pytest.approx(1 / 6)
    assert by_t[0.9]["wrong_answer_rate"] == 0.0
    assert by_t[0.9]["escalation_recall"] == 1.0


def test_choose_threshold_under_target() -> None:
    curve = threshold_curve(SIX)
    chosen = choose_threshold(curve, 0.10)  # only t=0.9 has wrong <= 0.10
    assert chosen is not None
    assert chosen["threshold"] == 0.9
    assert chosen["deflection_rate"] == pytest.approx(1 / 6)
    assert chosen["correct_deflection_rate"] == pytest.approx(1 / 3)
    assert chosen["target_wrong_answer_rate"] == 0.10
    # target 0.5: t=0.4 (wrong 0.5, correct 2/3) beats 0.8 and 0.9 (correct 1/3)
    assert choose_threshold(curve, 0.5)["threshold"] == 0.4  # type: ignore[index]
    # target 0.7: 0.0, 0.3 and 0.4 tie on correct 2/3 -> the highest threshold, 0.4
    assert choose_threshold(curve, 0.7)["threshold"] == 0.4  # type: ignore[index]


def test_choose_threshold_none_when_target_unreachable() -> None:
    # one answered, wrong: 1/1 > 0.1 at the only threshold
    curve = threshold_curve([out(U1, cited=("y",), confidence=0.8, status="answered")])
    assert choose_threshold(curve, 0.1) is None
    assert choose_threshold([], 0.1) is None


# --- latency, faithfulness, summary -------------------------------------------------------


def test_percentile_linear_interpolation() -> None:
    values = [40.0, 10.0, 30.0, 100.0, 20.0]
    assert percentile(values, 50) == 30.0  # sorted 10 20 30 40 100, position 4 * 0.5 = 2
    # position 4 * 0.95 = 3.8 -> 40 + (100 - 40) * 0.8 = 88
    assert percentile(values, 95) == pytest.approx(88.0)
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0


def test_latency_leaves_out_errors() -> None:
    outcomes = [
        out(A1, latency_ms=10.0),
        out(A2, latency_ms=30.0),
        out(A3, latency_ms=5000.0, error="timeout"),
    ]
    # 10, 30: p50 = 20; p95 = 10 + 20 * 0.95 = 29
    assert latency_summary(outcomes) == pytest.approx({"p50": 20.0, "p95": 29.0})


def test_mean_faithfulness_over_answers_given() -> None:
    # at 0.5: A1 1.0, A2 0.5, U1 0.0 -> 0.5
    assert mean_faithfulness(SIX, 0.5) == pytest.approx(0.5)
    # as returned: 1.0 + 0.5 + 1.0 + 0.0 + 1.0 = 3.5 / 5 = 0.7
    assert mean_faithfulness(SIX, None) == pytest.approx(0.7)
    assert mean_faithfulness([out(U3, status="escalated")], None) is None


def test_summarize_slices() -> None:
    qa = q("a", ("a",), subset="normal", containment=0.9)
    qb = q("b", ("b",), subset="yes_no", containment=0.2)
    qu = q("u", answerable=False, subset="normal")
    outcomes = [
        out(qa, ranked=("a",), cited=("a",), confidence=0.9, status="answered", latency_ms=5.0),
        out(qb, ranked=("x",), cited=("x",), confidence=0.6, status="answered", latency_ms=7.0),
        out(qu, ranked=("y",), confidence=0.2, status="escalated", latency_ms=9.0),
    ]
    s = summarize(outcomes, threshold=0.5, target=0.1)
    assert s["questions"] == 3 and s["errors"] == 0
    assert s["retrieval"]["recall@1"] == pytest.approx(0.5)  # a found, b not
    assert s["answering"]["wrong_answer_rate"] == pytest.approx(0.5)  # b wrong of 2
    assert set(s["subsets"]) == {"normal", "yes_no"}
    assert s["subsets"]["normal"]["questions"] == 2
    assert s["subsets"]["yes_no"]["retrieval"]["recall@1"] == 0.0
    # clean gold: a (0.9) and the unanswerable u stay, b (0.2) goes
    assert s["on_clean_gold"]["questions"] == 2
    assert s["on_clean_gold"]["retrieval"]["recall@1"] == 1.0
    assert s["chosen_threshold"]["threshold"] == 0.9  # 0.6 answers b: wrong 1/2
    assert s["latency_ms"] == pytest.approx({"p50": 7.0, "p95": 8.8})  # 7 + 2 * 0.9


def test_summarize_without_slices() -> None:
    s = summarize(SIX, threshold=0.5)
    assert "subsets" not in s and "on_clean_gold" not in s
