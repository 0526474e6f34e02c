"""Suggestions where few people have asked yet: the knowledge base's own Q&A questions.

A newcomer on a new installation gets no popular questions (nobody has asked twice and
confirmed an answer), so the widget asks for ``starters``: the questions of the Q&A entries
the viewer may read, in the viewer's language, one category at a time, each one a question
the knowledge base answers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.db.engine import Database
from kb.ingest.pipeline import Ingestor
from kb.retrieval.models import AccessFilter
from kb.retrieval.service import KnowledgeBase
from kb.services.identity import Identity
from kb.services.staff_answers import _index as index_staff_answer
from kb.services.suggestions import entry_questions, suggestions
from tests.integration.conftest import CORPUS, sample_settings

FAQ = CORPUS / "faq" / "kos-support-faq.csv"
EVERYONE = AccessFilter()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _viewer(*groups: str) -> Identity:
    return Identity("newcomer", tuple(groups), ("employee",), None)


def test_the_sample_suggests_its_faq_questions_a_category_at_a_time(sample_kb):
    kb, db, _ = sample_kb
    rows = _rows(FAQ)
    for lang in ("en", "ja"):
        questions = entry_questions(db, kb, EVERYONE, lang=lang)
        own = [r["question"] for r in rows if r["lang"] == lang]
        assert sorted(questions) == sorted(own)
        # One category at a time: the first questions are each category's first, in order.
        categories = list(dict.fromkeys(r["category"] for r in rows if r["lang"] == lang))
        firsts = [next(r["question"] for r in rows if r["category"] == c and r["lang"] == lang)
                  for c in categories]  # fmt: skip
        assert questions[: len(firsts)] == firsts
        # A widget asks for a few: the sheets are then read only until there are enough.
        for limit in (1, 2, len(firsts), len(firsts) + 1, len(questions) + 1):
            assert entry_questions(db, kb, EVERYONE, lang=lang, limit=limit) == questions[:limit]


def test_starters_fill_the_suggestions_and_each_is_answered_from_its_entry(sample_kb):
    kb, db, report = sample_kb
    faq = next(f.document_id for f in report.files if f.path == "faq/kos-support-faq.csv")
    for lang in ("en", "ja"):
        # Without starters only popular questions count (none for a viewer of no group here).
        plain = suggestions(db, kb, _viewer("nobody-asks-here"), lang=lang, limit=5)
        assert all(s["kind"] == "popular" for s in plain)
        shown = suggestions(db, kb, _viewer("nobody-asks-here"), lang=lang, limit=20, starters=True)
        assert len(shown) == 20
        starters = [s for s in shown if s["kind"] == "entry"]
        assert starters and all("users" not in s for s in starters)
        for s in starters:
            result = kb.ask(s["question"], acl=EVERYONE)
            assert result.status == "answered", (s, result.confidence)
            assert faq in {c.document_id for c in result.citations}, s


@pytest.fixture
def own_kb(tmp_path: Path) -> Iterator[tuple[KnowledgeBase, Database, Path]]:
    settings = sample_settings(tmp_path / "data")
    db = Database(settings.db_url())
    db.migrate()
    kb = KnowledgeBase.open(settings)
    docs = tmp_path / "docs"
    docs.mkdir()
    yield kb, db, docs
    kb.close()
    db.dispose()


def _write_sheet(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["question", "answer", "category", "groups"])
        out.writerows(rows)


def test_starters_stay_within_the_viewers_groups_and_follow_the_current_version(own_kb):
    kb, db, docs = own_kb
    sheet = docs / "hr-faq.csv"
    _write_sheet(
        sheet,
        [
            ("How many days of paid leave do I get?", "Twenty days a year.", "Leave", ""),
            ("How do I book a meeting room?", "Use the Rooms app.", "Facilities", ""),
            ("What is the salary band for grade 7?", "See the HR portal.", "Pay", "hr"),
        ],
    )
    ingestor = Ingestor(kb, db)
    ingestor.sync_folder(docs)
    everyone = entry_questions(db, kb, EVERYONE, lang="en")
    assert everyone == ["How many days of paid leave do I get?", "How do I book a meeting room?"]
    hr = entry_questions(db, kb, AccessFilter(groups=("hr",)), lang="en")
    assert "What is the salary band for grade 7?" in hr
    assert entry_questions(db, kb, EVERYONE, lang="ja") == []

    # A row removed from the sheet is no longer suggested once the sheet is re-ingested.
    _write_sheet(sheet, [("How do I book a meeting room?", "Use the Rooms app.", "Facilities", "")])
    ingestor.sync_folder(docs)
    assert entry_questions(db, kb, EVERYONE, lang="en") == ["How do I book a meeting room?"]

    # Staff answers are Q&A entries too, within their groups, after the sheets' categories.
    index_staff_answer(kb, db, "staff-1", "Can I bring a guest to the canteen?",
                       "Yes, sign them in at reception.", (), "sue")  # fmt: skip
    index_staff_answer(kb, db, "staff-2", "Who approves overtime for grade 7?",
                       "Your HR partner.", ("hr",), "sue")  # fmt: skip
    assert entry_questions(db, kb, EVERYONE, lang="en") == [
        "How do I book a meeting room?",
        "Can I bring a guest to the canteen?",
    ]
    assert entry_questions(db, kb, EVERYONE, lang="en", limit=1) == [
        "How do I book a meeting room?"
    ]
    assert entry_questions(db, kb, EVERYONE, lang="en", limit=2) == [
        "How do I book a meeting room?",
        "Can I bring a guest to the canteen?",
    ]
    assert "Who approves overtime for grade 7?" in entry_questions(
        db, kb, AccessFilter(groups=("hr",)), lang="en"
    )
