"""``kb eval --history`` (eval/loop.py): which questions are history, and the learning curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.eval.datasets import DatasetError, EvalQuestion, load_dataset
from kb.eval.loop import LoopOptions, Turn, learning_curve, split_history


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
