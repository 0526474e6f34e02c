"""Follow-up questions (issue 23) over the sample knowledge base, through the API: the real
ingest, store, embedding model and database; the LLM endpoint is the loopback fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import Conversation, QueryLog
from kb.retrieval.llm import OpenAIChatLLM
from kb.retrieval.settings import LLMSettings
from kb.services.retention import purge_logs
from tests.fake_llm import FakeLLMServer
from tests.integration.dialogues import DIALOGUES, FAQ, PRICES, TL_USER

pytestmark = pytest.mark.integration

USER = {"X-User-Id": "conv-user"}
OTHER = {"X-User-Id": "conv-other"}


@pytest.fixture(autouse=True)
def _paths(sample_paths: dict[str, str]) -> None:
    PATHS.update(sample_paths)


PATHS: dict[str, str] = {}
"""Document id -> path in docs_corpus, filled from the sample knowledge base."""


def _ask(client, question, conversation_id=None, headers=USER):
    body = {"question": question}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    resp = client.post("/api/ask", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _first_source(answer) -> str | None:
    return PATHS[answer["citations"][0]["document_id"]] if answer["citations"] else None


def test_follow_ups_cite_the_document_the_conversation_is_about(client) -> None:
    assert len(DIALOGUES) >= 24
    hits = {"en": 0, "ja": 0}
    alone_hits = 0
    totals = {"en": 0, "ja": 0}
    misses = []
    for first, follow, expected in DIALOGUES:
        opened = _ask(client, first)
        followed = _ask(client, follow, opened["conversation_id"])
        assert followed["conversation_id"] == opened["conversation_id"]
        lang = followed["lang"]
        totals[lang] += 1
        if _first_source(followed) in expected:
            hits[lang] += 1
        else:
            misses.append((follow, _first_source(followed)))
        # The same follow-up without its conversation: what the issue set out to fix.
        alone_hits += _first_source(_ask(client, follow)) in expected
    assert totals["en"] >= 12 and totals["ja"] >= 12, totals
    rate = sum(hits.values()) / len(DIALOGUES)
    print(
        f"\nfollow-up dialogues: first citation is the expected document in "
        f"{sum(hits.values())}/{len(DIALOGUES)} = {rate:.0%} (en {hits['en']}/{totals['en']}, "
        f"ja {hits['ja']}/{totals['ja']}); the follow-ups asked alone: "
        f"{alone_hits}/{len(DIALOGUES)} = {alone_hits / len(DIALOGUES):.0%}; misses: {misses}"
    )
    assert rate >= 0.8
    assert sum(hits.values()) > alone_hits


@pytest.mark.parametrize(
    ("first", "standalone", "expected"),
    [
        ("How do I reset my TeamLedger password?",
         "What does a cyan toner cartridge for the Aster cost?", (PRICES,)),
        ("複合機のファームウェア更新には何分くらいかかりますか？",
         "電波のない場所でアプリから撮った領収書の写真はどうなりますか？", (TL_USER, FAQ)),
    ],
)  # fmt: skip
def test_a_standalone_question_is_not_dragged_to_the_earlier_topic(
    client, sample_kb, first, standalone, expected
) -> None:
    _, db, _ = sample_kb
    opened = _ask(client, first)
    asked = _ask(client, standalone, opened["conversation_id"])
    assert _first_source(asked) in expected, asked
    with db.session() as s:
        row = s.get(QueryLog, asked["query_id"])
        assert row.rewritten is None and row.rewrite_mode is None
        assert row.conversation_id == opened["conversation_id"]


def test_conversations_belong_to_their_user(client) -> None:
    opened = _ask(client, "How do I reset my TeamLedger password?")
    cid = opened["conversation_id"]
    for headers, conversation in ((OTHER, cid), (USER, "no-such-conversation")):
        resp = client.post(
            "/api/ask",
            json={"question": "How long is that link valid?", "conversation_id": conversation},
            headers=headers,
        )
        assert resp.status_code == 404 and resp.json()["error_code"] == "NOT_FOUND"
        assert cid not in resp.text or conversation == cid
    streamed = client.post(
        "/api/ask/stream",
        json={"question": "How long is that link valid?", "conversation_id": cid},
        headers=OTHER,
    )
    assert streamed.status_code == 404
    # A new id each time none is sent.
    assert _ask(client, "How do I reset my TeamLedger password?")["conversation_id"] != cid


def test_turns_are_masked_and_staff_see_the_rewritten_query_and_earlier_turns(
    client, sample_kb
) -> None:
    _, db, _ = sample_kb
    opened = _ask(client, "How do I connect the Aster MF-3400 to the office Wi-Fi?")
    cid = opened["conversation_id"]
    follow = _ask(client, "Can it email scans to taro.yamada@example.com from a Chromebook?", cid)
    with db.session() as s:
        row = s.get(QueryLog, follow["query_id"])
        assert "taro.yamada" not in row.question and "[EMAIL]" in row.question
        assert row.rewrite_mode == "context" and "Aster" in row.rewritten
        assert "taro.yamada" not in row.rewritten
    esc = client.post("/api/escalate", json={"query_id": follow["query_id"]}, headers=USER)
    assert esc.status_code == 200, esc.text
    group = client.get(
        f"/api/queue/{esc.json()['group_id']}",
        headers={"X-User-Id": "staff", "X-User-Roles": "support"},
    ).json()
    variant = next(v for v in group["variants"] if v["query_id"] == follow["query_id"])
    assert "Aster" in variant["rewritten"] and variant["rewrite_mode"] == "context"
    assert [t["query_id"] for t in variant["earlier_turns"]] == [opened["query_id"]]
    assert "Wi-Fi" in variant["earlier_turns"][0]["question"]
    # The asker's own history shows no rewritten query; the response does not either.
    assert "rewritten" not in follow


def test_a_model_rewrites_follow_ups_and_a_bad_rewrite_falls_back(client, sample_kb) -> None:
    kb, db, _ = sample_kb
    server = FakeLLMServer().start()
    saved = kb.llm
    llm = OpenAIChatLLM(LLMSettings(base_url=server.base_url, timeout_s=5.0, max_retries=0))
    kb.llm = llm
    try:
        opened_reply = "TeamLedger passwords are reset from the sign-in page [1]."
        server.reply(opened_reply)
        opened = _ask(client, "How do I reset my TeamLedger password?")
        server.reply("How long is the TeamLedger password reset email link valid?")
        server.reply(status=500)  # the answer itself: generation fails, extractive is given
        good = _ask(client, "How long is that link good for?", opened["conversation_id"])
        rewrite_request = server.requests[1]
        prompt = " ".join(m["content"] for m in rewrite_request["messages"])
        assert "How do I reset my TeamLedger password?" in prompt
        with db.session() as s:
            row = s.get(QueryLog, good["query_id"])
            assert row.rewrite_mode == "llm"
            assert row.rewritten == "How long is the TeamLedger password reset email link valid?"
        # A reply that answers instead of rewriting (words from nowhere) is refused.
        server.reply("Bananas are yellow and grow on tropical plants in warm climates.")
        server.reply(status=500)
        bad = _ask(client, "And how long is it good for?", opened["conversation_id"])
        with db.session() as s:
            row = s.get(QueryLog, bad["query_id"])
            assert row.rewrite_mode == "context" and "Bananas" not in (row.rewritten or "")
            assert "TeamLedger" in row.rewritten
    finally:
        kb.llm = saved
        server.stop()


def test_conversations_expire_with_their_turns(database_url) -> None:
    db = Database(database_url)
    db.migrate()
    try:
        old = datetime.now(UTC) - timedelta(days=400)
        with db.session() as s:
            s.add(Conversation(id="c-old", user_id="u", created_at=old, updated_at=old))
            s.add(Conversation(id="c-new", user_id="u"))
            s.flush()
            s.add(QueryLog(id="q-old", question="old", status="answered", created_at=old,
                           conversation_id="c-old"))  # fmt: skip
            s.add(QueryLog(id="q-new", question="new", status="answered", conversation_id="c-new"))
        counts = purge_logs(db, days=365)
        assert counts["queries"] == 1 and counts["conversations"] == 1
        with db.session() as s:
            assert list(s.execute(select(Conversation.id)).scalars()) == ["c-new"]
    finally:
        db.dispose()
