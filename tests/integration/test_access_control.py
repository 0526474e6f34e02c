"""A user without a document's group never sees its passages, citations or source."""

from __future__ import annotations

import pytest

from kb.retrieval.models import AccessFilter

pytestmark = pytest.mark.integration

RESTRICTED = "internal/support-escalation-runbook.md"


def _restricted_doc(sample_kb):
    kb, db, report = sample_kb
    doc = next(f for f in report.files if f.path == RESTRICTED)
    chunks = kb.store.document_chunks(doc.document_id)
    assert chunks, "the sample corpus must hold a restricted runbook"
    assert all(c.chunk.groups == ("support-internal",) for c in chunks)
    return doc.document_id, chunks


def test_questions_quoting_a_restricted_document_word_for_word_get_nothing_from_it(sample_kb):
    kb, _, _ = sample_kb
    document_id, chunks = _restricted_doc(sample_kb)
    for passage in chunks:
        quote = passage.chunk.text[:300]
        for acl in (AccessFilter(), AccessFilter(("sales",))):
            result = kb.ask(quote, acl=acl)
            assert all(p.chunk.document_id != document_id for p in result.passages)
            assert all(c.document_id != document_id for c in result.citations)
            assert "support-internal" not in result.answer
        allowed = kb.ask(quote, acl=AccessFilter(("support-internal",)))
        assert any(p.chunk.document_id == document_id for p in allowed.passages)


def test_the_api_hides_restricted_answers_and_sources(client, sample_kb):
    document_id, chunks = _restricted_doc(sample_kb)
    quote = chunks[0].chunk.text[:300]
    outsider = client.post("/api/ask", json={"question": quote}, headers={"X-User-Id": "emp1"})
    assert outsider.status_code == 200
    assert document_id not in outsider.text
    insider_headers = {"X-User-Id": "sup1", "X-User-Groups": "support-internal"}
    insider = client.post("/api/ask", json={"question": quote}, headers=insider_headers)
    assert document_id in insider.text

    url = f"/api/documents/{document_id}/source"
    denied = client.get(url, headers={"X-User-Id": "emp1"})
    assert denied.status_code == 404 and denied.json()["error_code"] == "NOT_FOUND"
    assert client.get(url, headers=insider_headers).status_code == 200
    listed = client.get("/api/documents", headers={"X-User-Id": "emp1"}).json()
    assert document_id not in {d["id"] for d in listed}
