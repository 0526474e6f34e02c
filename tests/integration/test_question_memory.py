"""The loop learns (issue 22), through the API against the real store and database (SQLite and
PostgreSQL): staff links and staff answers teach the bot, a confirmed gap escalates, thumbs
demote, a changed or deleted passage re-validates its pairs, and pairs never cross groups.

The app reads a sample knowledge base of this module's own and gets a fresh database per test, so
the memory of one test is not seen by another; documents a test uploads are deleted after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kb.api.app import create_app
from kb.db.engine import Database
from kb.db.models import DocumentRecord, MemoryEntry, QueryLog
from kb.ingest.pipeline import IngestReport
from kb.retrieval.service import KnowledgeBase
from tests.integration._kb import OWNER
from tests.integration.conftest import sample_kb_at
from tests.serving import serving

pytestmark = pytest.mark.integration

SUPPORT = {"X-User-Id": "sato", "X-User-Roles": "support"}
INTERNAL_STAFF = {
    "X-User-Id": "ito",
    "X-User-Roles": "support",
    "X-User-Groups": "support-internal",
}
RUNBOOK = "internal/support-escalation-runbook.md"

PARKING = "Is there visitor parking at the Yokohama office?"
PARKING_AGAIN = "Is there any visitor parking at the Yokohama office?"
ANSWERED = "How many sheets of paper does the main tray on the Aster hold?"
ANSWERED_AGAIN = "How many sheets of paper does the Aster's main tray hold?"


def user(uid: str, groups: str = "") -> dict[str, str]:
    return {"X-User-Id": uid, "X-User-Department": "sales", "X-User-Groups": groups}


@pytest.fixture(scope="module")
def sample_kb(tmp_path_factory) -> Iterator[tuple[KnowledgeBase, Database, IngestReport]]:
    """The sample knowledge base of this suite's own: it uploads documents and staff answers
    (tests/integration/conftest.py, ``sample_kb``)."""
    with sample_kb_at(tmp_path_factory.mktemp("memory-kb")) as opened:
        yield opened


@pytest.fixture
def app(sample_kb, database_url) -> Iterator[tuple[TestClient, Database]]:
    kb, _, _ = sample_kb
    db = Database(database_url)
    db.migrate()
    settings = kb.settings.model_copy(update={"database_url": database_url})
    try:
        with TestClient(create_app(settings, lifespan=serving(kb, db))) as client:
            yield client, db
    finally:
        with db.session() as s:
            uploaded = s.execute(
                select(DocumentRecord.id).where(DocumentRecord.source == "upload")
            ).scalars()
            for document_id in list(uploaded):
                kb.store.delete_document(document_id)
        db.dispose()


def ask(client: TestClient, question: str, headers: dict[str, str]) -> dict:
    resp = client.post("/api/ask", json={"question": question}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def thumbs(client: TestClient, body: dict, helpful: bool, headers: dict[str, str]) -> dict:
    resp = client.post(
        "/api/feedback", json={"query_id": body["query_id"], "helpful": helpful}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def group_of(client: TestClient, query_id: str, headers: dict[str, str] = SUPPORT) -> dict:
    for group in client.get("/api/queue?state=all", headers=headers).json():
        if any(v["query_id"] == query_id for v in group["variants"]):
            return group
    raise AssertionError(f"{query_id} is not in the queue")


def cited_chunk(db: Database, body: dict) -> str:
    """The passage an answer cited first (the API shows documents; the log keeps passages)."""
    with db.session() as s:
        logged = s.get(QueryLog, body["query_id"])
        assert logged is not None and logged.citations, body
        return str(min(logged.citations, key=lambda c: c["n"])["chunk_id"])


def entries(db: Database) -> list[MemoryEntry]:
    with db.session() as s:
        return list(s.execute(select(MemoryEntry).order_by(MemoryEntry.id)).scalars())


def test_a_staff_link_answers_the_same_need_next_time(app):
    client, db = app
    first = ask(client, PARKING, user("emp-a"))
    assert first["status"] == "escalated"
    group = group_of(client, first["query_id"])
    found = client.get("/api/memory/passages", params={"q": "office visitors"}, headers=SUPPORT)
    assert found.status_code == 200 and found.json(), found.text
    target = found.json()[0]
    linked = client.post(
        f"/api/queue/{group['id']}/link",
        json={"document_id": target["document_id"], "chunk_id": target["chunk_id"]},
        headers=SUPPORT,
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["state"] == "answered" and linked.json()["resolution"] == "linked"
    [entry] = entries(db)
    assert (entry.kind, entry.how, entry.staff, entry.chunk_id) == (
        "pair",
        "staff_link",
        True,
        target["chunk_id"],
    )
    assert entry.question == PARKING and entry.asker_id == "emp-a"

    # The same need from other people, asked again and in other words: answered from it.
    for question, who in ((PARKING, "emp-b"), (PARKING_AGAIN, "emp-c")):
        body = ask(client, question, user(who))
        assert body["status"] == "answered", (question, body)
        assert cited_chunk(db, body) == target["chunk_id"]
    with db.session() as s:
        logged = s.get(QueryLog, body["query_id"])
        assert logged is not None and logged.memory
        assert logged.memory[0]["lifted"] and logged.memory[0]["entries"] == [entry.id]

    # Analytics count the answers the memory chose.
    stats = client.get("/api/analytics/summary", headers={"X-User-Roles": "admin"}).json()
    assert stats["from_memory"] == 2 and stats["memory_entries"] == {"pair_active": 1}

    # Staff see the pair (and may remove it); askers never see the confirmed question.
    listed = client.get("/api/memory", headers=SUPPORT).json()
    assert [e["question"] for e in listed] == [PARKING]
    assert client.get("/api/memory", headers=user("emp-b")).status_code == 403
    assert PARKING not in str(body)
    removed = client.delete(f"/api/memory/{entry.id}", headers=SUPPORT)
    assert removed.status_code == 200 and removed.json()["state"] == "removed"
    assert ask(client, PARKING, user("emp-d"))["status"] == "escalated"


def test_a_confirmed_gap_escalates_the_same_need(app):
    client, db = app
    first = ask(client, ANSWERED, user("emp-a"))
    assert first["status"] == "answered"
    thumbs(client, first, False, user("emp-a"))
    group = group_of(client, first["query_id"])
    resp = client.post(f"/api/queue/{group['id']}/not-covered", headers=SUPPORT)
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "dismissed" and resp.json()["resolution"] == "not_covered"
    [gap] = entries(db)
    assert gap.kind == "gap" and gap.how == "not_covered" and gap.chunk_id is None

    again = ask(client, ANSWERED, user("emp-b"))
    assert again["status"] == "escalated", again
    queued = group_of(client, again["query_id"])
    variant = next(v for v in queued["variants"] if v["query_id"] == again["query_id"])
    assert any(m["kind"] == "gap" and m["applied"] for m in variant["memory"]), variant

    client.delete(f"/api/memory/{gap.id}", headers=SUPPORT)
    assert ask(client, ANSWERED, user("emp-c"))["status"] == "answered"


def test_thumbs_confirm_withdraw_and_demote(app):
    client, db = app
    first = ask(client, ANSWERED, user("emp-a"))
    assert first["status"] == "answered"
    thumbs(client, first, True, user("emp-a"))
    thumbs(client, first, True, user("emp-a"))  # a repeated verdict adds nothing
    [pair] = entries(db)
    assert (pair.how, pair.staff, pair.state, pair.citation) == ("helpful", False, "active", None)
    assert pair.chunk_id == cited_chunk(db, first)

    # The asker changes their mind: their pair is withdrawn.
    thumbs(client, first, False, user("emp-a"))
    assert [e.state for e in entries(db)] == ["removed"]

    # Two askers confirm; a third asker's answer, chosen with them, gets a thumbs-down.
    for who in ("emp-b", "emp-c"):
        body = ask(client, ANSWERED, user(who))
        thumbs(client, body, True, user(who))
    active = [e for e in entries(db) if e.state == "active"]
    assert len(active) == 2
    third = ask(client, ANSWERED_AGAIN, user("emp-d"))
    assert third["status"] == "answered"
    with db.session() as s:
        logged = s.get(QueryLog, third["query_id"])
        assert logged is not None and logged.memory, "the confirmed pairs took part"
    thumbs(client, third, False, user("emp-d"))
    states = {e.id: e.state for e in entries(db)}
    assert all(states[e.id] == "demoted" for e in active), states


def test_the_asker_names_the_source_that_answered(app):
    client, db = app
    body = ask(client, ANSWERED, user("emp-a"))
    assert body["status"] == "answered" and len(body["citations"]) >= 2, body
    with db.session() as s:
        logged = s.get(QueryLog, body["query_id"])
        assert logged is not None
        by_n = {c["n"]: c["chunk_id"] for c in logged.citations}

    def rate(payload: dict) -> object:
        return client.post(
            "/api/feedback", json={"query_id": body["query_id"], **payload}, headers=user("emp-a")
        )

    # A source the answer does not cite, or a source with a thumbs-down: refused, nothing kept.
    wrong = rate({"helpful": True, "citation": 99})
    assert wrong.status_code == 422 and "[99]" in wrong.json()["detail"], wrong.text
    down = rate({"helpful": False, "citation": 1})
    assert down.status_code == 422 and "helpful" in down.json()["detail"], down.text
    assert entries(db) == []

    # The second source answered: the pair is that passage, not the first cited.
    assert rate({"helpful": True, "citation": 2}).status_code == 200
    [pair] = entries(db)
    assert (pair.how, pair.state, pair.chunk_id) == ("helpful", "active", by_n[2])

    # A plain thumbs-up again keeps the source named.
    assert rate({"helpful": True}).status_code == 200
    assert [(e.chunk_id, e.state) for e in entries(db)] == [(by_n[2], "active")]

    # Naming another source replaces the asker's pair; naming it again changes nothing.
    assert rate({"helpful": True, "citation": 1}).status_code == 200
    assert rate({"helpful": True, "citation": 1}).status_code == 200
    states = [(e.chunk_id, e.state) for e in entries(db)]
    assert states == [(by_n[2], "removed"), (by_n[1], "active")], states

    # Staff see which source the asker named: the console's audit of the memory.
    listed = client.get("/api/memory?state=all", headers=SUPPORT)
    assert listed.status_code == 200, listed.text
    named = {(e["chunk_id"], e["state"]): e["citation"] for e in listed.json()}
    assert named == {(by_n[2], "removed"): 2, (by_n[1], "active"): 1}, named


def test_a_staff_answer_teaches_and_staff_outweigh_one_thumbs_down(app):
    client, db = app
    first = ask(client, PARKING, user("emp-a"))
    group = group_of(client, first["query_id"])
    published = client.post(
        f"/api/queue/{group['id']}/answer",
        json={"answer": "Visitor parking is in the basement garage (B1); reserve at reception."},
        headers=SUPPORT,
    )
    assert published.status_code == 201, published.text
    [entry] = entries(db)
    assert (entry.how, entry.staff, entry.document_id) == (
        "staff_answer",
        True,
        published.json()["document_id"],
    )
    body = ask(client, PARKING_AGAIN, user("emp-b"))
    assert body["status"] == "answered"
    assert body["citations"][0]["document_id"] == published.json()["document_id"]
    thumbs(client, body, False, user("emp-b"))
    [entry] = entries(db)
    assert entry.state == "active" and entry.negatives == 1  # one asker does not outweigh staff
    body = ask(client, PARKING_AGAIN, user("emp-c"))
    thumbs(client, body, False, user("emp-c"))
    assert entries(db)[0].state == "demoted"

    # Withdrawing the answer takes its pairs out of the memory.
    client.delete(f"/api/queue/{group['id']}/answer", headers=SUPPORT)
    assert {e.state for e in entries(db)} == {"demoted"}


KILN_V1 = (
    "# Kiln K-7 handbook\n\n## Firing schedule\n\nThe Kiln K-7 fires stoneware at cone 6 and"
    " needs nine hours including a two-hour hold.\n\n## Cleaning\n\nVacuum the floor of the"
    " kiln after every tenth firing.\n"
)
KILN_V2 = KILN_V1.replace("every tenth firing", "every fifth firing")
KILN_V3 = KILN_V2.replace("nine hours", "eleven hours")
KILN_Q = "How long does a firing of the Kiln K-7 take?"


def test_pairs_follow_an_unchanged_passage_and_go_stale_when_it_changes(app):
    client, db = app
    doc = client.post(
        "/api/documents", files=[("file", ("kiln.md", KILN_V1.encode()))], headers=OWNER
    ).json()["documents"][0]
    first = ask(client, KILN_Q, user("emp-a"))
    passages = client.get(
        "/api/memory/passages", params={"document_id": doc["id"]}, headers=SUPPORT
    ).json()
    firing = next(p for p in passages if "nine hours" in p["snippet"])
    if first["status"] == "answered":
        thumbs(client, first, False, user("emp-a"))
    group = group_of(client, first["query_id"])
    client.post(
        f"/api/queue/{group['id']}/link",
        json={"document_id": doc["id"], "chunk_id": firing["chunk_id"]},
        headers=SUPPORT,
    ).raise_for_status()

    # Another section changes: the passage is the same, the pair follows its new point.
    client.put(
        f"/api/documents/{doc['id']}", files=[("file", ("kiln.md", KILN_V2.encode()))],
        headers=OWNER,
    ).raise_for_status()  # fmt: skip
    body = ask(client, KILN_Q, user("emp-b"))
    assert body["status"] == "answered" and "nine hours" in body["citations"][0]["snippet"]
    [entry] = entries(db)
    assert entry.state == "active" and entry.chunk_id == cited_chunk(db, body)
    assert entry.chunk_id != firing["chunk_id"]

    # The passage itself changes: the pair no longer vouches for it.
    client.put(
        f"/api/documents/{doc['id']}", files=[("file", ("kiln.md", KILN_V3.encode()))],
        headers=OWNER,
    ).raise_for_status()  # fmt: skip
    ask(client, KILN_Q, user("emp-c"))
    [entry] = entries(db)
    assert entry.state == "stale"


def test_pairs_never_cross_access_groups(app, sample_kb):
    client, db = app
    _, _, report = sample_kb
    runbook = next(f for f in report.files if f.path == RUNBOOK).document_id
    question = "Who do I call when a customer escalation is not resolved in four hours?"
    insider = ask(client, question, user("emp-in", "support-internal"))
    group = group_of(client, insider["query_id"], INTERNAL_STAFF)
    passages = client.get(
        "/api/memory/passages", params={"document_id": runbook}, headers=INTERNAL_STAFF
    ).json()
    assert passages, "a member of support-internal sees the runbook's passages"
    # Staff outside the group can neither find the passage nor link to it.
    assert (
        client.get("/api/memory/passages", params={"document_id": runbook}, headers=SUPPORT).json()
        == []
    )
    link = {"document_id": runbook, "chunk_id": passages[0]["chunk_id"]}
    refused = client.post(f"/api/queue/{group['id']}/link", json=link, headers=SUPPORT)
    assert refused.status_code in (403, 404), refused.text
    assert entries(db) == []
    client.post(
        f"/api/queue/{group['id']}/link", json=link, headers=INTERNAL_STAFF
    ).raise_for_status()

    # The same question from outside the group gets nothing from the runbook, and the
    # confirmed question is not listed to staff outside the group.
    outsider = ask(client, question, user("emp-out"))
    assert all(c["document_id"] != runbook for c in outsider["citations"])
    assert client.get("/api/memory", headers=SUPPORT).json() == []
    assert [e["question"] for e in client.get("/api/memory", headers=INTERNAL_STAFF).json()] == [
        question
    ]
    member = ask(client, question, user("emp-in2", "support-internal"))
    assert member["status"] == "answered"
    assert member["citations"][0]["document_id"] == runbook
