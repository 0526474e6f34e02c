"""``kb eval --history`` (eval/loop.py): which questions are history, and the learning curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.eval.datasets import DatasetError, EvalQuestion, load_dataset
from kb.eval.gain import history_gain
from kb.eval.headroom import headroom, shared_gold
from kb.eval.loop import (
    LoopOptions,
    Simulation,
    Turn,
    learning_curve,
    source_named,
    split_history,
)
from kb.eval.metrics import Outcome, answering_metrics
from kb.services.ask import AskResponse, Citation


def _folder(tmp_path: Path, n: int, history: int = 0) -> Path:
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"id": "d1", "title": "T", "text": "text"}) + "\n", encoding="utf-8"
    )
    rows = [{"id": f"q{i}", "text": f"question {i}", "gold_ids": ["d1"]} for i in range(n)]
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    if history:
        past = [{"id": f"h{i}", "text": f"past {i}", "gold_ids": []} for i in range(history)]
        (tmp_path / "history.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in past), encoding="utf-8"
        )
    return tmp_path


def test_a_share_of_the_questions_is_history_the_same_share_every_time(tmp_path):
    dataset = load_dataset(_folder(tmp_path, 40), extra_dir=None)
    split = split_history(dataset, LoopOptions(share=0.5, seed=3))
    assert len(split.history) == 20 and len(split.test) == 20
    assert {q.id for q in split.history}.isdisjoint({q.id for q in split.test})
    # Test questions keep the dataset's order; the same seed picks the same history.
    order = [q.id for q in dataset.questions]
    assert [q.id for q in split.test] == [i for i in order if i in {q.id for q in split.test}]
    assert split_history(dataset, LoopOptions(share=0.5, seed=3)) == split
    assert split_history(dataset, LoopOptions(share=0.5, seed=4)).history != split.history
    assert split.source == "share 0.5, seed 3"


def test_a_history_file_is_replayed_before_every_question(tmp_path):
    dataset = load_dataset(_folder(tmp_path, 5, history=3), extra_dir=None)
    split = split_history(dataset, LoopOptions())
    assert [q.id for q in split.history] == ["h0", "h1", "h2"]
    assert [q.id for q in split.test] == [q.id for q in dataset.questions]
    assert not split.history[0].answerable  # no gold: the agent marks it not covered


def test_a_share_that_leaves_a_side_empty_is_refused(tmp_path):
    dataset = load_dataset(_folder(tmp_path, 1), extra_dir=None)
    with pytest.raises(DatasetError, match="no history or no test questions"):
        split_history(dataset, LoopOptions(share=0.5))


def test_the_learning_curve_counts_per_window():
    questions = [EvalQuestion(id=f"q{i}", text="t", answerable=i != 3) for i in range(5)]
    turns = [
        Turn("answered", ("d",), True, "thumbs_up"),
        Turn("answered", ("x",), False, "thumbs_down"),
        Turn("escalated", (), False, "escalated"),
        Turn("escalated", (), False, "escalated"),  # unanswerable, rightly escalated
        Turn("answered", ("d",), True, "thumbs_up"),
    ]
    points = learning_curve(turns, questions, window=4)
    assert [(p["start"], p["end"]) for p in points] == [(0, 4), (4, 5)]
    first = points[0]
    assert first["correct_deflection_rate"] == pytest.approx(1 / 3)
    assert first["wrong_answer_rate"] == pytest.approx(1 / 2)
    assert first["deflection_rate"] == pytest.approx(2 / 4)
    assert points[1]["correct_deflection_rate"] == 1.0 and points[1]["wrong_answer_rate"] == 0.0


def test_the_headroom_counts_shared_gold_and_reads_the_best_gate_at_the_old_wrong_rate():
    """What the loop could give: the test questions whose gold document a history question
    shares, and the right answers with history at the best threshold that answers no more
    wrongly than the product did without it."""
    history = [
        EvalQuestion(id="h0", text="t", answerable=True, gold_ids=("a",)),
        EvalQuestion(id="h1", text="t", answerable=False, gold_ids=("b",)),
    ]
    test = [
        EvalQuestion(id="q0", text="t", answerable=True, gold_ids=("a", "c")),
        EvalQuestion(id="q1", text="t", answerable=True, gold_ids=("b",)),
        EvalQuestion(id="q2", text="t", answerable=True, gold_ids=("c",)),
        EvalQuestion(id="q3", text="t", answerable=False),
    ]
    # An unanswerable history question teaches no document.
    assert shared_gold(history, test)["shared"] == 1

    def outcome(q: EvalQuestion, cited: str, confidence: float) -> Outcome:
        return Outcome(q, ranked=(cited,), cited=(cited,), confidence=confidence, status="answered")

    # Without history at 0.5: q0 right, q2 wrong: half the answers wrong.
    before = [outcome(test[0], "a", 0.9), outcome(test[1], "x", 0.1), outcome(test[2], "x", 0.6),
              outcome(test[3], "x", 0.2)]  # fmt: skip
    # With history the product answers all four at 0.5 (two wrong of four); a gate at 0.7
    # would answer q3 wrongly too, one at 0.8 answers q0 and q1, both right (ties go to the
    # higher threshold).
    after = [outcome(test[0], "a", 0.9), outcome(test[1], "b", 0.8), outcome(test[2], "x", 0.6),
             outcome(test[3], "x", 0.7)]  # fmt: skip
    counts = shared_gold(history, test, before, after)
    # q0 shares gold "a" with h0: first with and without history, cited with it.
    assert counts == {
        "shared": 1, "answerable": 3, "first_without": 1, "top3_without": 1, "first_with": 1,
        "cited_with": 1,
    }  # fmt: skip
    room = headroom([counts], answering_metrics(before, 0.5)["wrong_answer_rate"], after)
    assert room["shared_gold"] == pytest.approx(1 / 3) and room["without_wrong_rate"] == 0.5
    assert room["best_gate_correct"] == pytest.approx(2 / 3)
    assert room["best_gate_threshold"] == 0.8
    assert headroom([counts, counts], 0.5, after)["answerable"] == 6


# --- the change and its interval (eval/gain.py) ----------------------------------------------


def _outcome(qid: str, *, right: bool, answered: bool = True, answerable: bool = True) -> Outcome:
    question = EvalQuestion(
        id=qid, text="t", gold_ids=("d1",) if answerable else (), answerable=answerable
    )
    cited = ("d1",) if right else ("d2",)
    return Outcome(
        question, cited=cited, confidence=0.9, status="answered" if answered else "escalated"
    )


def test_the_change_is_the_pooled_figures_difference_with_an_interval_around_it():
    before = [_outcome(f"q{i}", right=i < 10, answered=i < 14) for i in range(40)]
    after = [_outcome(f"q{i}", right=i < 16, answered=i < 18) for i in range(40)]
    gain = history_gain(before, after, 0.5)
    was, now = answering_metrics(before, 0.5), answering_metrics(after, 0.5)
    for key in ("correct_deflection_rate", "wrong_answer_rate"):
        change = gain[key]["change"]
        assert change == pytest.approx(now[key] - was[key])
        low, high = gain[key]["interval"]
        assert low < change < high  # 40 questions leave room either way
    assert gain["correct_deflection_rate"]["change"] == pytest.approx(0.15)
    assert gain["questions"] == 40 and gain["level"] == 0.95
    assert history_gain(before, after, 0.5) == gain  # a fixed seed: the same interval


def test_no_change_has_no_spread_and_a_change_on_every_question_is_certain():
    same = [_outcome(f"q{i}", right=i % 2 == 0) for i in range(20)]
    assert history_gain(same, same, 0.5)["correct_deflection_rate"] == {
        "change": 0.0,
        "interval": [0.0, 0.0],
    }
    wrong = [_outcome(f"q{i}", right=False) for i in range(20)]
    right = [_outcome(f"q{i}", right=True) for i in range(20)]
    gain = history_gain(wrong, right, 0.5)
    assert gain["correct_deflection_rate"] == {"change": 1.0, "interval": [1.0, 1.0]}
    assert gain["wrong_answer_rate"] == {"change": -1.0, "interval": [-1.0, -1.0]}


def test_a_question_in_several_splits_is_drawn_as_one():
    # One question gained in three splits is one piece of evidence, not three: a draw without
    # it, about a third of them, shows no change at all (the pooled figure weighs it thrice).
    base = [_outcome(f"q{i}", right=i < 5) for i in range(20)]
    once = [*base, _outcome("x", right=False)]
    gained = [*base, _outcome("x", right=True)]
    thrice_before = [*base, *[_outcome("x", right=False)] * 3]
    thrice_after = [*base, *[_outcome("x", right=True)] * 3]
    one = history_gain(once, gained, 0.5)
    three = history_gain(thrice_before, thrice_after, 0.5)
    assert one["questions"] == three["questions"] == 21
    assert three["correct_deflection_rate"]["change"] == pytest.approx(3 / 23, abs=1e-6)
    assert one["correct_deflection_rate"]["interval"][0] == 0.0
    assert three["correct_deflection_rate"]["interval"][0] == 0.0


def test_an_unanswerable_answered_counts_wrong_and_nothing_answered_has_no_rate():
    before = [_outcome("u", right=False, answerable=False)]
    after = [_outcome("u", right=False, answered=False, answerable=False)]
    gain = history_gain(before, after, 0.5)
    assert gain["correct_deflection_rate"] == {"change": None, "interval": None}
    assert gain["wrong_answer_rate"] == {"change": None, "interval": None}


def test_outcomes_of_other_questions_are_refused():
    with pytest.raises(ValueError, match="paired"):
        history_gain([_outcome("a", right=True)], [_outcome("b", right=True)], 0.5)


def test_the_simulated_asker_names_the_first_gold_source():
    """A thumbs-up names the source that held the answer (the widget's "This answered it"), so
    the memory learns the gold passage, not whichever passage was quoted first."""

    def cited(n: int, document_id: str) -> Citation:
        return Citation(
            n=n, document_id=document_id, title="t", location="", url="", snippet="", score=1.0,
            version=1,
        )  # fmt: skip

    response = AskResponse(
        query_id="q", conversation_id="c", status="answered", answer="a [1] b [2] c [3]",
        citations=[cited(1, "doc-a"), cited(2, "doc-b"), cited(3, "doc-c")], confidence=0.9,
        lang="en", mode="extractive",
    )  # fmt: skip
    keys = ("section_1", "section_2", "section_3")
    assert source_named(response.citations, keys, {"section_2", "section_3"}) == 2
    assert source_named(response.citations, keys, {"section_9"}) is None


def test_a_share_of_the_askers_names_the_source_the_same_ones_every_time():
    questions = [
        EvalQuestion(id=f"q{i}", text=f"question {i}", answerable=True) for i in range(400)
    ]

    def naming(share: float, seed: int = 0) -> list[bool]:
        sim = Simulation(
            kb=None, db=None, keys=lambda doc, _path: doc, documents={}, noise=0.0, seed=seed,
            named=share,
        )  # fmt: skip
        return [sim.names(q) for q in questions]

    assert all(naming(1.0)) and not any(naming(0.0))
    half = naming(0.5)
    assert 160 <= sum(half) <= 240
    assert naming(0.5) == half and naming(0.5, seed=1) != half
