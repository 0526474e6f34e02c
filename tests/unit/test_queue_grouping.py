"""Queue grouping with the real multilingual-e5 query embedder, on SQLite and PostgreSQL:
paraphrases in English, Japanese and across the two share a group; other needs do not."""

from __future__ import annotations

import uuid

import pytest

from kb.db.engine import Database
from kb.db.models import QueryLog
from kb.retrieval.embedders import build_embedders
from kb.retrieval.errors import KBError
from kb.retrieval.lang import detect_lang
from kb.retrieval.settings import EmbedderSettings, SupportSettings
from kb.services.access import Access
from kb.services.queue import best_group, enqueue, list_groups, update_group

THRESHOLD = SupportSettings().group_similarity

PARKING = [
    "Is there visitor parking at the Yokohama office?",
    "Where can guests park their car when they visit the Yokohama office?",
    "横浜オフィスに来客用の駐車場はありますか？",
]
PASSWORD = [
    "How do I reset my TeamLedger password?",
    "TeamLedger のパスワードをリセットする方法は？",
    "I forgot my TeamLedger login password, how can I get a new one?",
]
PETS = ["Can I bring my dog to the office?", "会社に犬を連れてきても大丈夫ですか？"]

STAFF = Access("sato", frozenset(), frozenset({"support"}), "token")


@pytest.fixture(scope="module")
def e5():
    return build_embedders(EmbedderSettings(models=["e5"]))[0]


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def log(db: Database, question: str, user: str = "u1") -> str:
    query_id = str(uuid.uuid4())
    with db.session() as s:
        s.add(
            QueryLog(
                id=query_id,
                question=question,
                user_id=user,
                lang=detect_lang(question),
                status="escalated",
            )
        )
    return query_id


def test_the_same_need_in_other_words_and_languages_forms_one_group(db, e5):
    placements = {}
    for i, question in enumerate(
        [
            PARKING[0],
            PASSWORD[0],
            PETS[0],
            PARKING[1],
            PASSWORD[1],
            PARKING[2],
            PETS[1],
            PASSWORD[2],
        ]
    ):
        placements[question] = enqueue(
            db, e5, log(db, question, f"u{i}"), "escalated", threshold=THRESHOLD
        )
    for need in (PARKING, PASSWORD, PETS):
        groups = {placements[q].group_id for q in need}
        assert len(groups) == 1, [(q, placements[q]) for q in need]
        assert placements[need[0]].new_group
        assert all(placements[q].similarity >= THRESHOLD for q in need[1:])
    assert len({p.group_id for p in placements.values()}) == 3
    queue = list_groups(db, STAFF)
    assert [g["count"] for g in queue] == [3, 3, 2]
    parking = next(g for g in queue if g["representative"] == PARKING[0])
    assert parking["languages"] == ["en", "ja"] and parking["users"] == 3
    assert [v["question"] for v in parking["variants"]] == PARKING
    assert parking["first_seen"] <= parking["last_seen"]


def test_an_item_joins_only_open_groups_and_keeps_one_item_per_query(db, e5):
    first = enqueue(db, e5, log(db, PARKING[0]), "escalated", threshold=THRESHOLD)
    update_group(db, first.group_id, STAFF, state="dismissed")
    later = enqueue(db, e5, log(db, PARKING[1]), "escalated", threshold=THRESHOLD)
    assert later.new_group and later.group_id != first.group_id
    query_id = log(db, PARKING[2])
    a = enqueue(db, e5, query_id, "escalated", threshold=THRESHOLD)
    b = enqueue(db, e5, query_id, "user_escalation", threshold=THRESHOLD, note="please")
    assert a.group_id == b.group_id == later.group_id
    group = list_groups(db, STAFF)[0]
    assert group["count"] == 2 and group["reasons"] == {"escalated": 2, "user_escalation": 1}
    assert update_group(db, later.group_id, STAFF, assignee="sato")["assignee"] == "sato"
    assert update_group(db, later.group_id, STAFF, clear_assignee=True)["assignee"] is None
    with pytest.raises(KBError) as exc:
        update_group(db, later.group_id, STAFF, state="answered")
    assert exc.value.code == "VALIDATION_ERROR"


def test_a_strict_threshold_keeps_paraphrases_apart(db, e5):
    strict = [enqueue(db, e5, log(db, q), "escalated", threshold=0.99).group_id for q in PARKING]
    assert len(set(strict)) == 3


def test_best_group_ignores_vectors_of_another_size():
    assert best_group([1.0, 0.0], [(1, [0.0, 1.0]), (2, [1.0, 0.0, 0.0]), (3, [2.0, 0.1])]) == (
        3,
        pytest.approx(0.99875, abs=1e-4),
    )
    assert best_group([1.0, 0.0], []) == (None, -1.0)
