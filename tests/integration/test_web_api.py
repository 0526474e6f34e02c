"""The web layer's API without a browser (issue 6): pages, evaluation runs, suggestions."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from kb.api.app import create_app
from kb.api.web_settings import WebSettings
from tests.browser.conftest import _fake_eval_dir
from tests.serving import serving

pytestmark = pytest.mark.integration


@pytest.fixture
def web_client(sample_kb, tmp_path, database_url):
    from kb.db.engine import Database

    kb, _, _ = sample_kb
    db = Database(database_url)
    db.migrate()

    web = WebSettings(eval_dir=_fake_eval_dir(tmp_path / "eval-runs"))
    settings = kb.settings.model_copy(update={"database_url": database_url})
    try:
        with TestClient(create_app(settings, lifespan=serving(kb, db), web=web)) as client:
            yield client
    finally:
        db.dispose()


def test_pages_and_widget_are_served(web_client):
    for path, marker in (
        ("/console", "Support console"),
        ("/content", "Upload documents"),
        ("/evaluation", "Evaluation runs"),
        ("/vocabulary", "/static/vocabulary.js"),
        ("/static/vocabulary.js", "/api/synonyms"),
        ("/demo", "/static/widget/kb-widget.js"),
        ("/static/widget/kb-widget.js", "customElements.define"),
        ("/static/lib/identity.js", "X-User-Id"),
    ):
        resp = web_client.get(path)
        assert resp.status_code == 200 and marker in resp.text, path


def test_eval_runs_need_the_evaluator_role(web_client):
    denied = web_client.get("/api/eval/runs", headers={"X-User-Roles": "employee"})
    assert denied.status_code == 403 and denied.json()["error_code"] == "FORBIDDEN"
    runs = web_client.get("/api/eval/runs", headers={"X-User-Roles": "evaluator"}).json()
    assert [r["id"] for r in runs] == ["20261102T090000Z", "20261101T090000Z"]
    assert runs[0]["datasets"][0]["metrics"]["recall@10"] == 0.95
    assert (runs[0]["variants"], runs[1]["variants"]) == (["bm25"], [])
    report = web_client.get(runs[0]["report_url"], headers={"X-User-Roles": "admin"})
    assert report.status_code == 200 and "Eval report 20261102T090000Z" in report.text
    for bad in ("..%2F..%2Fetc", "20261102T090000Z-x", "nope"):
        resp = web_client.get(f"/api/eval/runs/{bad}/report", headers={"X-User-Roles": "admin"})
        assert resp.status_code == 404, bad


def _ask(client, question, user, groups=""):
    headers = {"X-User-Id": user, "X-User-Groups": groups}
    resp = client.post("/api/ask", json={"question": question}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _rate(client, asked, user, helpful, groups=""):
    headers = {"X-User-Id": user, "X-User-Groups": groups}
    body = {"query_id": asked["query_id"], "helpful": helpful}
    resp = client.post("/api/feedback", json=body, headers=headers)
    assert resp.status_code == 200, resp.text


def _suggested(client, lang="en", groups=""):
    resp = client.get(
        f"/api/suggestions?lang={lang}", headers={"X-User-Id": "viewer", "X-User-Groups": groups}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_suggestions_are_questions_several_people_asked_and_confirmed(web_client):
    question = "How do I replace the toner?"
    first = _ask(web_client, question, "u1")
    assert first["status"] == "answered"
    _ask(web_client, question, "u2")
    _ask(web_client, "What is W-120?", "u3")
    # Asked twice, but nobody said the answer helped: not a suggestion (issue 25).
    assert _suggested(web_client) == []
    _rate(web_client, first, "u1", True)
    assert _suggested(web_client) == [{"question": question, "users": 2, "kind": "popular"}]
    assert _suggested(web_client, lang="ja") == []


def test_a_thumbs_down_keeps_a_question_out_of_the_suggestions(web_client):
    question = "How do I replace the toner?"
    first = _ask(web_client, question, "u1")
    _ask(web_client, question, "u2")
    _rate(web_client, first, "u1", True)
    assert [s["question"] for s in _suggested(web_client)] == [question]
    # Someone else got the same question answered wrongly: it is contradicted, and the
    # helpful verdicts before it no longer count.
    wrong = _ask(web_client, question, "u3")
    _rate(web_client, wrong, "u3", False)
    assert _suggested(web_client) == []
    # Asking for a person contradicts it the same way.
    other = "How do I clear a paper jam?"
    a, _b = _ask(web_client, other, "u4"), _ask(web_client, other, "u5")
    _rate(web_client, a, "u4", True)
    assert [s["question"] for s in _suggested(web_client)] == [other]
    esc = web_client.post(
        "/api/escalate", json={"query_id": _b["query_id"]}, headers={"X-User-Id": "u5"}
    )
    assert esc.status_code == 200, esc.text
    assert _suggested(web_client) == []
    # Confirmed again by two people after the contradiction: back.
    c, _d = _ask(web_client, other, "u6"), _ask(web_client, other, "u7")
    _rate(web_client, c, "u6", True)
    assert [s["question"] for s in _suggested(web_client)] == [other]


def test_suggestions_stay_within_the_viewers_access_groups(web_client):
    # Answered from the support-internal runbook, for its members, and confirmed by them.
    question = "How do I arrange a loaner printer for a customer?"
    first = _ask(web_client, question, "s1", "support-internal")
    assert first["status"] == "answered", first
    assert any(c["document_id"] for c in first["citations"])
    _ask(web_client, question, "s2", "support-internal")
    _rate(web_client, first, "s1", True, "support-internal")
    members = _suggested(web_client, groups="support-internal")
    assert [s["question"] for s in members] == [question]
    # Employees outside the group never see it.
    assert _suggested(web_client) == []
    assert _suggested(web_client, groups="sales") == []


def test_error_messages_speak_the_requests_language(web_client):
    """One error shape; `message` in the language Accept-Language prefers (issue 25)."""
    employee = {"X-User-Roles": "employee"}
    en = web_client.get("/api/eval/runs", headers={**employee, "Accept-Language": "en-US,en"})
    assert en.status_code == 403
    body = en.json()
    assert body["error_code"] == "FORBIDDEN" and body["message"] == body["detail"]
    ja = web_client.get(
        "/api/eval/runs", headers={**employee, "Accept-Language": "ja-JP,ja;q=0.9,en;q=0.8"}
    ).json()
    assert ja["error_code"] == "FORBIDDEN" and ja["detail"] == body["detail"]
    assert ja["message"].startswith("この操作を行う権限がありません"), ja
    # Validation errors (FastAPI's own), unknown routes and the body limit go through it too.
    bad = web_client.post("/api/ask", json={}, headers={"Accept-Language": "ja"}).json()
    assert bad["error_code"] == "VALIDATION_ERROR" and bad["message"].startswith("入力内容")
    missing = web_client.get("/api/nothing-here", headers={"Accept-Language": "ja"}).json()
    assert missing["error_code"] == "NOT_FOUND" and missing["message"].startswith("見つかりません")
    assert web_client.get("/api/nothing-here").json()["message"] == missing["detail"]


def test_preferred_language_of_accept_language():
    from kb.api.messages import preferred_lang

    assert preferred_lang("ja-JP,ja;q=0.9,en;q=0.8") == "ja"
    assert preferred_lang("en-US,en;q=0.9,ja;q=0.8") == "en"
    assert preferred_lang("fr-FR,ja;q=0.5") == "ja"
    assert preferred_lang("en;q=0.2, ja;q=0.9") == "ja"
    assert preferred_lang("ja;q=0, en;q=0.1") == "en"
    assert preferred_lang("") == preferred_lang(None) == "en"
