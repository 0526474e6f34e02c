"""The web layer's API without a browser (issue 6): pages, evaluation runs, suggestions."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.web_settings import WebSettings
from tests.browser.conftest import _fake_eval_dir
from tests.serving import serving

pytestmark = pytest.mark.integration


@pytest.fixture
def web_client(sample_kb, tmp_path, database_url):
    from db.engine import Database

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


def test_suggestions_are_questions_several_people_asked(web_client):
    question = "How do I replace the toner?"
    for uid in ("u1", "u2"):
        resp = web_client.post("/api/ask", json={"question": question}, headers={"X-User-Id": uid})
        assert resp.json()["status"] == "answered"
    web_client.post("/api/ask", json={"question": "What is W-120?"}, headers={"X-User-Id": "u3"})
    got = web_client.get("/api/suggestions?lang=en").json()
    assert got == [{"question": question, "users": 2}]
    assert web_client.get("/api/suggestions?lang=ja").json() == []
