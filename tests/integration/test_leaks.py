"""Leak suite (issue 8): for every restricted document in the fixtures, questions quoting it
word for word, asked by users without its group, get none of its passages, citations or
sources, and nothing derived from it shows up in the queue, analytics or suggestions."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from tests.fixtures.facts import FACTS
from tests.integration._auth import app_client, bearer, make_user, product_settings
from tests.integration._kb import FIXTURES, open_kb, settings_for
from tests.integration.conftest import CORPUS

pytestmark = pytest.mark.integration

# The fixture corpus with half of it restricted, to several groups (set by metadata files).
RESTRICTED = {
    "field_manual.pdf": "engineering",
    "admin_guide.docx": "support-internal",
    "maintenance_ja.docx": "support-internal",
    "price_list.xlsx": "sales",
    "faq_ja.csv": "hr",
    "release_notes.txt": "engineering",
}


@pytest.fixture(scope="module")
def leak_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("leaks")
    corpus = root / "corpus"
    shutil.copytree(FIXTURES, corpus / "fixtures")
    shutil.copytree(CORPUS, corpus / "sample")
    for name, group in RESTRICTED.items():
        meta = corpus / "fixtures" / f"{name}.meta.json"
        meta.write_text(json.dumps({"groups": [group]}), encoding="utf-8")
    settings = settings_for(root / "var")
    with open_kb(settings) as (kb, db):
        from kb.ingest.pipeline import Ingestor

        report = Ingestor(kb, db).sync_folder(corpus)
        assert not [f for f in report.files if f.outcome == "failed"], report.to_dict()
        url = settings.db_url()
        users = {
            "outsider": make_user(url, root, "outsider", "employee"),
            "outsider2": make_user(url, root, "outsider2", "employee"),
            "staff": make_user(url, root, "staff", "support"),
        }
        app_settings = product_settings(kb.settings, url, data_dir=root / "var")
        with app_client(kb, db, app_settings) as client:
            yield client, kb, report, users


def _restricted_docs(kb, report):
    """(file, its restricted passages, whether all of it is restricted) per document with
    restricted passages; Q&A sheets restrict single rows through a ``groups`` column."""
    docs = []
    for f in report.files:
        chunks = kb.store.document_chunks(f.document_id)
        restricted = [c for c in chunks if c.chunk.groups]
        if restricted:
            docs.append((f, restricted, len(restricted) == len(chunks)))
    return docs


def test_every_restricted_document_stays_invisible_to_users_without_its_group(leak_env):
    client, kb, report, users = leak_env
    docs = _restricted_docs(kb, report)
    names = {f.path.split("/")[-1] for f, _, _ in docs}
    assert set(RESTRICTED) | {"support-escalation-runbook.md"} <= names
    outsiders = [bearer(users["outsider"]), bearer(users["outsider2"])]
    asked: list[str] = []
    for f, chunks, whole in docs:
        name = f.path.split("/")[-1]
        quotes = [c.chunk.text[:300] for c in chunks[:4]]
        if name in FACTS and whole:
            quotes.append(FACTS[name])
        passages = [c.chunk.text for c in chunks]
        for quote in quotes:
            for who in outsiders:
                resp = client.post("/api/ask", json={"question": quote}, headers=who)
                assert resp.status_code == 200, resp.text
                body = resp.json()
                asked.append(quote)
                if whole:
                    assert f.document_id not in resp.text, (name, quote)
                # None of its passages comes back, beyond what the asker typed.
                answer = body["answer"].replace(quote, "")
                for p in passages:
                    for piece in _pieces(p):
                        assert piece not in answer, (name, piece)
                        for c in body["citations"]:
                            assert piece not in c["snippet"], (name, piece)
        for who in outsiders if whole else []:
            source = client.get(f"/api/documents/{f.document_id}/source", headers=who)
            assert source.status_code == 404
            entry = client.get(f"/api/documents/{f.document_id}", headers=who)
            assert entry.status_code == 404
            listed = client.get("/api/documents", headers=who).json()
            assert f.document_id not in {d["id"] for d in listed}
            versions = client.get(f"/api/documents/{f.document_id}/versions", headers=who)
            assert versions.status_code == 404

    # Nothing derived from the restricted documents reaches the queue, analytics or the
    # suggestions: no ids, titles or passages (the askers' own words aside).
    staff = bearer(users["staff"])
    queue = _without_questions(
        client.get("/api/queue", params={"state": "all", "limit": 500}, headers=staff).json()
    )
    summary = _without_questions(client.get("/api/analytics/summary", headers=staff).json())
    rows = csv.DictReader(io.StringIO(client.get("/api/analytics/export.csv", headers=staff).text))
    export = json.dumps(
        [{k: v for k, v in r.items() if k != "question"} for r in rows], ensure_ascii=False
    )
    suggestions = client.get("/api/suggestions", params={"limit": 20}, headers=outsiders[0]).text
    for label, blob in (
        ("queue", queue),
        ("summary", summary),
        ("export", export),
        ("suggestions", suggestions),
    ):
        # The askers' own words (masked) are in the queue and the log by design; what must not
        # be there is anything the bot took from the document.
        blob = _flat(json.dumps(json.loads(blob), ensure_ascii=False))
        for f, chunks, whole in docs:
            if whole:
                assert f.document_id not in blob, (label, f.path)
                title = chunks[0].chunk.title
                if len(title) > 8:
                    assert title not in blob, (label, title)
            for c in chunks:
                for piece in _pieces(c.chunk.text):
                    assert piece not in blob, (label, f.path, piece)
    # A suggestion is never one of the quotes: they were asked by people with no access, but a
    # suggestion is shown to everyone.
    suggested = {s["question"] for s in json.loads(suggestions)}
    assert not suggested & {" ".join(q.split()) for q in asked}


QUESTION_FIELDS = {"question", "representative", "text", "note", "comment"}


def _without_questions(value) -> str:
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in QUESTION_FIELDS}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return json.dumps(strip(value), ensure_ascii=False)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _pieces(text: str, size: int = 40) -> list[str]:
    """Distinctive stretches of a passage (every third window of ``size`` characters)."""
    flat = " ".join(text.split())
    if len(flat) <= size:
        return [flat] if len(flat) >= 20 else []
    return [flat[i : i + size] for i in range(0, len(flat) - size, size * 3)]


SECRET_PIN = {
    "en": (
        "# Service PIN\n\n## Deriving the PIN\n\n"
        "The service PIN is the last four digits of the serial number reversed, then "
        "multiplied by seven. Quarkstone engineers rotate it every quarter.\n"
    ),
    # In Japanese: the English question's terms reach it only through loanword origins
    # (サービス is "service").
    "ja": (
        "# サービス PIN\n\n## PIN の求め方\n\n"
        "サービス PIN は、製造番号の下 4 桁を逆に並べて 7 を掛けた数です。"
        "Quarkstone の技術者が四半期ごとに変更します。\n"
    ),
}


@pytest.mark.parametrize("secret_lang", ["en", "ja"])
def test_a_restricted_document_does_not_move_an_outsiders_confidence(tmp_path, secret_lang):
    """The confidence reads which question terms the knowledge base knows, in either language:
    asked by someone without the group, a term (or a loanword's origin) only the restricted
    document holds counts as unknown, exactly as if the document were not there (its presence
    would otherwise show in the score)."""
    from kb.ingest.pipeline import Ingestor
    from kb.retrieval.models import AccessFilter

    public = (
        "# Aster MF-3400 maintenance\n\n## Service menu\n\n"
        "The service menu of the Aster MF-3400 is opened by a technician from the control "
        "panel. Users cannot open it.\n"
    )
    secret = SECRET_PIN[secret_lang]
    question = "How is the Quarkstone service PIN derived from the serial number?"
    outsider, insider = AccessFilter(), AccessFilter(groups=("support-internal",))
    features = {}
    for name, files in (
        ("both", {"public.md": public, "secret.md": secret}),
        ("public", {"public.md": public}),
    ):
        docs = tmp_path / name / "docs"
        docs.mkdir(parents=True)
        for file, text in files.items():
            (docs / file).write_text(text, encoding="utf-8")
        (docs / "secret.md.meta.json").write_text('{"groups": ["support-internal"]}')
        with open_kb(settings_for(tmp_path / name / "var")) as (kb, db):
            Ingestor(kb, db).sync_folder(docs)
            result = kb.ask(question, acl=outsider)
            features[name] = (result.status, result.confidence, result.features)
            if name == "both":
                inside = kb.ask(question, acl=insider)
                assert inside.features["oov"] < result.features["oov"]
    assert features["both"] == features["public"]
    assert features["both"][2]["oov"] > 0  # "quarkstone" is unknown to the outsider
