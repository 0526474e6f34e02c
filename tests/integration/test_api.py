"""The HTTP API: shapes, errors, health, sources."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_ask_returns_a_cited_answer(client):
    resp = client.post("/api/ask", json={"question": "How do I replace the toner cartridge?"})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) >= {"query_id", "status", "answer", "citations", "confidence"}
    assert body["status"] == "answered"
    citation = body["citations"][0]
    assert set(citation) >= {"n", "document_id", "title", "location", "url", "snippet", "score"}
    assert citation["url"].startswith(f"/api/documents/{citation['document_id']}/source")
    source = client.get(citation["url"].split("#")[0])
    assert source.status_code == 200


def test_ask_escalates_what_the_documents_do_not_answer(client):
    body = client.post(
        "/api/ask", json={"question": "What is on the cafeteria menu on Friday?"}
    ).json()
    assert body["status"] == "escalated"
    assert body["citations"] == []
    assert "support" in body["answer"]
    ja = client.post("/api/ask", json={"question": "社員食堂の金曜日のメニューは何ですか？"}).json()
    assert ja["status"] == "escalated" and "サポート" in ja["answer"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "empty"),
        ({"question": "x" * 2001}, "question"),
        ({}, "question"),
        ({"question": "ok", "lang": "fr"}, "lang"),
        ({"question": "ok", "extra": 1}, "extra"),
    ],
)
def test_bad_requests_get_422_with_one_error_shape(client, payload, needle):
    resp = client.post("/api/ask", json=payload)
    assert resp.status_code == 422
    body = resp.json()
    assert body["error_code"] == "VALIDATION_ERROR" and needle in body["detail"]


def test_malformed_json_is_a_clear_422(client):
    resp = client.post(
        "/api/ask", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 422
    assert resp.json()["error_code"] == "VALIDATION_ERROR"


def test_unknown_document_and_route_use_the_error_shape(client):
    resp = client.get("/api/documents/d_missing/source")
    assert resp.status_code == 404 and resp.json()["error_code"] == "NOT_FOUND"
    assert client.get("/api/nope").json()["error_code"] == "NOT_FOUND"


def test_health_readiness_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["detail"]["points"] > 0
    assert client.get("/openapi.json").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "ask-form" in page.text
    assert client.get("/static/ask.js").status_code == 200


def test_source_view_has_an_anchor_for_each_cited_location(client):
    body = client.post(
        "/api/ask", json={"question": "TeamLedger の承認フローの設定方法は？"}
    ).json()
    assert body["status"] == "answered"
    for c in body["citations"]:
        path, _, fragment = c["url"].partition("#")
        page = client.get(path)
        assert page.status_code == 200
        if fragment and not fragment.startswith("page="):
            assert f'id="{fragment}"' in page.text
