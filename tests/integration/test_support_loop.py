"""The support loop through the API, on SQLite and on PostgreSQL: escalate, group, answer,
answered next time, analytics; personal data never stored or exported; roles; retention.

The app shares the session's sample knowledge base (real models, real embedded Qdrant) and gets
a fresh database per test. Staff answers published into the shared store are removed after
each test, so the other tests see the sample corpus only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import String, Text, select, update

from kb.api.app import create_app
from kb.cli.main import main
from kb.db.engine import Database
from kb.db.models import Base, DocumentRecord, Feedback, PolicyHit, QueryLog
from kb.retrieval.settings import GuidelineSettings, Settings
from kb.services.retention import purge_logs
from tests.serving import serving

pytestmark = pytest.mark.integration

EMPLOYEE = {"X-User-Roles": "employee"}
SUPPORT = {"X-User-Id": "sato", "X-User-Roles": "support", "X-User-Department": "support"}
ADMIN = {"X-User-Id": "root", "X-User-Roles": "admin"}

GUIDELINES = GuidelineSettings(
    customer_names=["Hanako Suzuki", "鈴木花子"],
    employee_names=["Kenji Watanabe", "渡辺健二"],
    blocked_terms=["Project Hotaru", "ホタル計画"],
)

# The need: nothing in the sample corpus answers it.
ASK_A = "Is there visitor parking at the Yokohama office?"
ASK_B = "Where can guests park their car when they visit the Yokohama office?"
ASK_C = "横浜オフィスに来客用の駐車場はありますか？"
ASK_D = "Do visitors get a parking space when they come to our Yokohama office?"
OTHER_NEED = "Can I bring my dog to the office on Fridays?"
STAFF_ANSWER = (
    "Visitor parking at the Yokohama office is in the basement garage (B1), entrance on the"
    " east side of the building. Reserve a space at reception one business day ahead; the"
    " first three hours are free."
)

# Personal data seeded into questions, comments and notes; none of it may reach the database
# or an export.
PII = {
    "EMAIL": ["hanako.suzuki@example.co.jp", "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ"],
    "PHONE": ["090-1234-5678", "+81 45 555 0199", "03(5555)0123", "０８０１２３４５６７８"],
    "POSTCODE": ["〒220-0012", "231-0023"],
    "MYNUMBER": ["1234 5678 9018", "987654321098"],
    "CARD": ["4111 1111 1111 1111", "5500-0000-0000-0004"],
    "NAME": ["Hanako Suzuki", "鈴木花子", "Kenji Watanabe", "渡辺健二"],
}
PII_QUESTIONS = [
    "Customer Hanako Suzuki (hanako.suzuki@example.co.jp, 090-1234-5678) cannot scan to email"
    " on the Aster MF-3400. What should I check?",
    "鈴木花子様（〒220-0012、電話 03(5555)0123）のトナー交換方法を教えてください",
    "Kenji Watanabe asked: my card 4111 1111 1111 1111 was charged twice for toner, who refunds?",
    "渡辺健二のマイナンバー 1234 5678 9018 を経費精算に登録できますか？"
    " 連絡先 ０８０１２３４５６７８",
    "Please call +81 45 555 0199 about invoice 231-0023, card 5500-0000-0000-0004,"
    " id 987654321098, mail ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ",
]


def user(uid: str, department: str = "sales", groups: str = "") -> dict[str, str]:
    return {"X-User-Id": uid, "X-User-Department": department, "X-User-Groups": groups}


@pytest.fixture
def loop(sample_kb, database_url) -> Iterator[tuple[TestClient, Database, Settings]]:
    kb, _, _ = sample_kb
    db = Database(database_url)
    db.migrate()
    settings = kb.settings.model_copy(
        update={"database_url": database_url, "guidelines": GUIDELINES}
    )

    try:
        with TestClient(create_app(settings, lifespan=serving(kb, db))) as client:
            yield client, db, settings
    finally:
        with db.session() as s:
            staff = s.execute(
                select(DocumentRecord.id).where(DocumentRecord.source == "staff-answers")
            ).scalars()
            for document_id in list(staff):
                kb.store.delete_document(document_id)
        kb.forget_language_direction()  # cached with the staff answers in the store
        db.dispose()


def ask(client: TestClient, question: str, headers: dict[str, str]) -> dict[str, object]:
    resp = client.post("/api/ask", json={"question": question}, headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def test_the_whole_support_loop(loop):
    client, _db, _ = loop
    # 1. Nobody can answer this yet: the bot escalates, for three users in two languages.
    a = ask(client, ASK_A, user("emp-a", "sales"))
    b = ask(client, ASK_B, user("emp-b", "finance"))
    c = ask(client, ASK_C, user("emp-c", "sales"))
    other = ask(client, OTHER_NEED, user("emp-e", "hr"))
    for body in (a, b, c, other):
        assert body["status"] == "escalated", body
    print(f"\nescalated: en {a['confidence']}, en {b['confidence']}, ja {c['confidence']}")
    # emp-a also asks for a person; the note is masked on the way in.
    esc = client.post(
        "/api/escalate",
        json={"query_id": a["query_id"], "note": "Urgent, call me on 090-1234-5678"},
        headers=user("emp-a", "sales"),
    )
    assert esc.status_code == 200 and esc.json()["queued"] is True

    # 2. The queue is for support and admin only.
    denied = client.get("/api/queue", headers=user("emp-a"))
    assert denied.status_code == 403 and denied.json()["error_code"] == "FORBIDDEN"
    queue = client.get("/api/queue", headers=SUPPORT).json()
    assert len(queue) == 2, [g["representative"] for g in queue]
    group = queue[0]
    assert group["count"] == 3 and group["users"] == 3
    assert group["representative"] == ASK_A and group["languages"] == ["en", "ja"]
    assert {v["query_id"] for v in group["variants"]} == {
        a["query_id"],
        b["query_id"],
        c["query_id"],
    }
    assert group["reasons"] == {"escalated": 3, "user_escalation": 1}
    assert esc.json()["group_id"] == group["id"]
    note = next(v["note"] for v in group["variants"] if v["query_id"] == a["query_id"])
    assert note == "Urgent, call me on [PHONE]"
    print("group similarities:", [v["similarity"] for v in group["variants"]])
    assert queue[1]["count"] == 1 and queue[1]["representative"] == OTHER_NEED

    patched = client.patch(f"/api/queue/{group['id']}", json={"assignee": "sato"}, headers=SUPPORT)
    assert patched.status_code == 200 and patched.json()["assignee"] == "sato"
    assert patched.json()["state"] == "open"
    bad = client.patch(f"/api/queue/{group['id']}", json={"state": "closed"}, headers=SUPPORT)
    assert bad.status_code == 422 and bad.json()["error_code"] == "VALIDATION_ERROR"

    # 3. Support publishes an answer: a Q&A document, indexed at once, with a source view.
    published = client.post(
        f"/api/queue/{group['id']}/answer", json={"answer": STAFF_ANSWER}, headers=SUPPORT
    )
    assert published.status_code == 201, published.text
    entry = published.json()
    document_id = entry["document_id"]
    # The entry's question: the representative, plus the first variant in the other language.
    assert (
        entry["question"] == f"{ASK_A} / {ASK_C}"
        and entry["version"] == 1
        and entry["groups"] == []
    )
    again = client.post(f"/api/queue/{group['id']}/answer", json={"answer": "x"}, headers=SUPPORT)
    assert again.status_code == 409 and again.json()["error_code"] == "CONFLICT"
    assert client.get("/api/queue", headers=SUPPORT).json()[0]["id"] != group["id"]
    answered = client.get("/api/queue?state=answered", headers=SUPPORT).json()
    assert [g["id"] for g in answered] == [group["id"]]
    assert answered[0]["answer_document_id"] == document_id
    view = client.get(f"/api/documents/{document_id}/source", headers=user("emp-b"))
    assert view.status_code == 200 and "text/html" in view.headers["content-type"]
    assert "basement garage (B1)" in view.text and ASK_A in view.text
    assert "download=1" not in view.text
    docs = {d["id"]: d for d in client.get("/api/documents", headers=user("emp-b")).json()}
    assert docs[document_id]["version"] == 1

    # 4. The paraphrase, asked again, is answered from the staff answer and cites it; so are the
    # Japanese variant and a paraphrase nobody asked before.
    confidences = {}
    for name, question, who in (
        ("B", ASK_B, user("emp-b", "finance")),
        ("C", ASK_C, user("emp-c", "sales")),
        ("D", ASK_D, user("emp-d", "finance")),
    ):
        body = ask(client, question, who)
        confidences[name] = body["confidence"]
        assert body["status"] == "answered", (name, body)
        assert body["citations"][0]["document_id"] == document_id, (name, body["citations"])
        assert "basement garage" in body["answer"] and "[1]" in body["answer"]
        if name == "B":
            answered_b = body
    print("staff-answer confidences:", confidences)
    fb = client.post(
        "/api/feedback",
        json={"query_id": answered_b["query_id"], "helpful": True},
        headers=user("emp-b", "finance"),
    )
    assert fb.status_code == 200 and fb.json() == {
        "query_id": answered_b["query_id"],
        "helpful": True,
        "queued": False,
        "group_id": None,
    }
    # Feedback on somebody else's question is refused like a missing one.
    foreign = client.post(
        "/api/feedback", json={"query_id": a["query_id"], "helpful": False}, headers=user("emp-b")
    )
    assert foreign.status_code == 404 and foreign.json()["error_code"] == "NOT_FOUND"

    # 5. Analytics show all of it.
    denied = client.get("/api/analytics/summary", headers=user("emp-a"))
    assert denied.status_code == 403 and denied.json()["error_code"] == "FORBIDDEN"
    summary = client.get("/api/analytics/summary", headers=ADMIN).json()
    assert summary["questions"] == 7
    assert summary["answered"] == 3 and summary["deflected"] == 3
    assert summary["deflection_rate"] == round(3 / 7, 4)
    assert summary["escalations"] == 4 and summary["user_escalations"] == 1
    assert summary["helpful_share"] == 1.0 and summary["feedback"] == 1
    assert summary["per_day"][0]["questions"] == 7
    langs = {r["lang"]: r["questions"] for r in summary["per_language"]}
    assert langs == {"en": 5, "ja": 2}
    depts = {r["department"]: r["questions"] for r in summary["per_department"]}
    assert depts == {"sales": 3, "finance": 3, "hr": 1}
    top_group = summary["top_unanswered_groups"][0]
    assert top_group["group_id"] == group["id"] and top_group["count"] == 3
    assert top_group["state"] == "answered"
    assert summary["most_cited_documents"][0] == {
        "document_id": document_id,
        "title": f"{ASK_A} / {ASK_C}",
        "citations": 3,
    }
    assert {d["document_id"] for d in summary["never_cited_documents"]} == set()
    assert summary["most_active_users"][0]["questions"] == 2
    export = client.get("/api/analytics/export.csv", headers=SUPPORT)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 7 and {r["question"] for r in rows} >= {ASK_A, ASK_B, ASK_C, ASK_D}

    # 6. Editing writes version 2; the next answer quotes it. Deleting withdraws it.
    edited = client.put(
        f"/api/queue/{group['id']}/answer",
        json={"answer": STAFF_ANSWER.replace("three hours", "two hours")},
        headers=SUPPORT,
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    body = ask(client, ASK_B, user("emp-b", "finance"))
    assert body["status"] == "answered" and "two hours" in body["answer"]
    assert body["citations"][0]["version"] == 2
    gone = client.delete(f"/api/queue/{group['id']}/answer", headers=SUPPORT)
    assert gone.status_code == 204
    assert client.get(f"/api/documents/{document_id}/source").status_code == 404
    assert ask(client, ASK_B, user("emp-b", "finance"))["status"] == "escalated"
    reopened = client.get(f"/api/queue/{group['id']}", headers=SUPPORT).json()
    assert reopened["state"] == "open" and reopened["answer_document_id"] is None


def test_a_thumbs_down_queues_the_question_and_history_is_private(loop):
    client, _, _ = loop
    body = ask(client, "How do I replace the toner cartridge?", user("emp-a"))
    assert body["status"] == "answered"
    down = client.post(
        "/api/feedback",
        json={"query_id": body["query_id"], "helpful": False, "comment": "Not my model"},
        headers=user("emp-a"),
    )
    assert down.status_code == 200 and down.json()["queued"] is True
    queue = client.get("/api/queue", headers=ADMIN).json()
    assert queue[0]["reasons"] == {"thumbs_down": 1} and queue[0]["count"] == 1
    ask(client, "What is on the cafeteria menu on Friday?", user("emp-b"))
    mine = client.get("/api/history", headers=user("emp-a")).json()
    assert [h["query_id"] for h in mine] == [body["query_id"]]
    assert mine[0]["helpful"] is False and mine[0]["cited_documents"]
    theirs = client.get("/api/history", headers=user("emp-b")).json()
    assert len(theirs) == 1 and theirs[0]["status"] == "escalated"
    summary = client.get("/api/analytics/summary", headers=SUPPORT).json()
    assert summary["deflected"] == 0 and summary["thumbs_down"] == 1
    assert summary["helpful_share"] == 0.0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/queue"),
        ("get", "/api/queue/1"),
        ("patch", "/api/queue/1"),
        ("post", "/api/queue/1/answer"),
        ("put", "/api/queue/1/answer"),
        ("delete", "/api/queue/1/answer"),
        ("get", "/api/analytics/summary"),
        ("get", "/api/analytics/export.csv"),
    ],
)
def test_staff_endpoints_refuse_employees(client, method, path):
    for headers in ({}, {"X-User-Roles": "employee"}, {"X-User-Roles": "content_owner"}):
        resp = client.request(method, path, headers=headers, json={"answer": "x"})
        assert resp.status_code == 403, (path, headers)
        assert resp.json()["error_code"] == "FORBIDDEN"


def _all_text(db: Database) -> str:
    """Every text and JSON value in every table of the database, as one string."""
    parts: list[str] = []
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_personal_data_never_reaches_the_database_or_exports(loop):
    client, db, _ = loop
    ids = []
    for i, question in enumerate(PII_QUESTIONS):
        body = ask(client, question, user(f"emp-{i}"))
        ids.append(body["query_id"])
    fb = client.post(
        "/api/feedback",
        json={
            "query_id": ids[0],
            "helpful": False,
            "comment": "Wrong. Reply to hanako.suzuki@example.co.jp or 090-1234-5678",
        },
        headers=user("emp-0"),
    )
    assert fb.status_code == 200
    esc = client.post(
        "/api/escalate",
        json={"query_id": ids[1], "note": "鈴木花子様 〒220-0012 へ折り返し"},
        headers=user("emp-1"),
    )
    assert esc.status_code == 200

    stored = _all_text(db)
    export = client.get("/api/analytics/export.csv", headers=ADMIN).text
    queue = client.get("/api/queue", headers=ADMIN).text
    history = client.get("/api/history", headers=user("emp-0")).text
    for kind, values in PII.items():
        for value in values:
            for where, text in (("database", stored), ("export", export), ("queue", queue)):
                assert value not in text, f"{kind} {value!r} leaked into the {where}"
            assert value not in history
        assert f"[{kind}]" in stored and f"[{kind}]" in export
    with db.session() as s:
        logged = dict(s.execute(select(QueryLog.id, QueryLog.question)).tuples().all())
        redactions = dict(s.execute(select(QueryLog.id, QueryLog.redactions)).tuples().all())
        comment = s.execute(select(Feedback.comment)).scalar_one()
    assert logged[ids[0]].startswith("Customer [NAME] ([EMAIL], [PHONE]) cannot scan")
    assert logged[ids[1]] == "[NAME]様（[POSTCODE]、電話 [PHONE]）のトナー交換方法を教えてください"
    assert redactions[ids[4]] == ["CARD", "EMAIL", "MYNUMBER", "PHONE", "POSTCODE"]
    assert comment == "Wrong. Reply to [EMAIL] or [PHONE]"
    # Text that only looks like numbers stays: model codes, dates, prices, error codes.
    plain = "On 2025-03-14 the MF-3400 (firmware 3.2.1) showed E-21 after 8,000 pages; JPY 12,800"
    with db.session() as s:
        before = s.execute(select(QueryLog.id)).scalars().all()
    ask(client, plain, user("emp-9"))
    with db.session() as s:
        row = s.execute(select(QueryLog).where(QueryLog.id.not_in(before))).scalar_one()
    assert row.question == plain and row.redactions == []


def test_blocked_terms_refuse_the_request_and_record_a_policy_hit(loop):
    client, db, _ = loop
    resp = client.post(
        "/api/ask",
        json={"question": "When does project hotaru ship? Ask Hanako Suzuki"},
        headers=user("emp-x", "sales"),
    )
    assert resp.status_code == 422
    assert resp.json()["error_code"] == "POLICY_BLOCKED" and "support" in resp.json()["detail"]
    ja = client.post("/api/ask", json={"question": "ホタル計画の発売日は？"}, headers=user("emp-y"))
    assert ja.status_code == 422 and ja.json()["error_code"] == "POLICY_BLOCKED"
    with db.session() as s:
        hits = s.execute(select(PolicyHit).order_by(PolicyHit.id)).scalars().all()
        assert s.execute(select(QueryLog)).first() is None  # nothing was asked or logged
    assert [(h.user_id, h.department, h.endpoint, h.terms) for h in hits] == [
        ("emp-x", "sales", "ask", [0]),
        ("emp-y", "sales", "ask", [1]),
    ]
    assert hits[0].text == "When does [BLOCKED] ship? Ask [NAME]"
    stored = _all_text(db).lower()
    assert "hotaru" not in stored and "ホタル" not in stored and "suzuki" not in stored
    # Comments are held to the same rule.
    body = ask(client, "How do I replace the toner cartridge?", user("emp-x"))
    fb = client.post(
        "/api/feedback",
        json={"query_id": body["query_id"], "helpful": True, "comment": "Project Hotaru too?"},
        headers=user("emp-x"),
    )
    assert fb.status_code == 422 and fb.json()["error_code"] == "POLICY_BLOCKED"
    summary = client.get("/api/analytics/summary", headers=ADMIN).json()
    assert summary["policy_hits"] == 3


def test_retention_purges_old_questions_with_their_feedback(loop, database_url, tmp_path):
    client, db, _ = loop
    old = ask(client, "What is on the cafeteria menu on Friday?", user("emp-a"))
    old_fb = ask(client, "How do I replace the toner cartridge?", user("emp-a"))
    client.post(
        "/api/feedback",
        json={"query_id": old_fb["query_id"], "helpful": False},
        headers=user("emp-a"),
    )
    recent = ask(client, "How do I replace the toner cartridge?", user("emp-b"))
    client.post(
        "/api/feedback",
        json={"query_id": recent["query_id"], "helpful": True},
        headers=user("emp-b"),
    )
    long_ago = datetime.now(UTC) - timedelta(days=400)
    with db.session() as s:
        s.execute(
            update(QueryLog)
            .where(QueryLog.id.in_([old["query_id"], old_fb["query_id"]]))
            .values(created_at=long_ago)
        )
    assert purge_logs(db, days=365, dry_run=True) == {
        "feedback": 1,
        "queue_items": 2,
        "queries": 2,
        "policy_hits": 0,
        "notifications": 0,
    }
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["purge-logs", "--json"],
        env={"KB_DATABASE_URL": database_url, "KB_DATA_DIR": str(tmp_path / "var")},
    )
    assert result.exit_code == 0, result.output
    assert '"queries": 2' in result.output and '"feedback": 1' in result.output
    with db.session() as s:
        assert s.execute(select(QueryLog.id)).scalars().all() == [recent["query_id"]]
        assert [f.query_id for f in s.execute(select(Feedback)).scalars()] == [recent["query_id"]]
    assert client.get("/api/queue?state=all", headers=SUPPORT).json() == []


def test_text_columns_are_covered_by_the_leak_check():
    # _all_text reads every table; make sure the support tables are among them.
    names = {t.name for t in Base.metadata.sorted_tables}
    assert {"query_log", "feedback", "queue_groups", "queue_items", "policy_hits"} <= names
    texty = [
        c.name
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if isinstance(c.type, (String, Text))
    ]
    assert "question" in texty and "comment" in texty and "note" in texty
