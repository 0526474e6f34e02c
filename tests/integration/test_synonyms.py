"""The staff vocabulary (issue 23): sets of equivalent terms through the API and the CLI,
applied to the next question without re-ingesting (real store, model and database)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kb.cli.main import main as kb_cli
from kb.db.models import AuditEntry
from tests.integration.dialogues import TL_ADMIN

pytestmark = pytest.mark.integration

OWNER = {"X-User-Id": "vocab-owner", "X-User-Roles": "content_owner"}
EMPLOYEE = {"X-User-Id": "vocab-employee"}

# (a question naming the thing only by an internal abbreviation, the set, the document)
CASES = [
    ("How do I configure KagiLogin?", ["KagiLogin", "SAML single sign-on"], TL_ADMIN),
    ("ワンログインの設定方法は？", ["ワンログイン", "シングルサインオン"], TL_ADMIN),
]


@pytest.fixture(autouse=True)
def _paths(sample_paths: dict[str, str]) -> None:
    PATHS.update(sample_paths)


PATHS: dict[str, str] = {}
"""Document id -> path in docs_corpus, filled from the sample knowledge base."""


def _cited(client, question: str) -> list[str]:
    resp = client.post("/api/ask", json={"question": question}, headers=EMPLOYEE)
    assert resp.status_code == 200, resp.text
    return [PATHS[c["document_id"]] for c in resp.json()["citations"]]


@pytest.mark.parametrize(("question", "terms", "document"), CASES)
def test_an_abbreviation_finds_its_document_only_while_its_set_exists(
    client, sample_kb, question, terms, document
) -> None:
    _, db, _ = sample_kb
    assert document not in _cited(client, question)[:1]
    created = client.post("/api/synonyms", json={"terms": terms}, headers=OWNER)
    assert created.status_code == 201, created.text
    set_id = created.json()["id"]
    try:
        assert created.json()["terms"] == terms
        assert _cited(client, question)[:1] == [document]
        listed = client.get("/api/synonyms", headers=OWNER).json()
        assert {s["id"] for s in listed} >= {set_id}
    finally:
        deleted = client.delete(f"/api/synonyms/{set_id}", headers=OWNER)
    assert deleted.status_code == 204
    assert document not in _cited(client, question)[:1]
    with db.session() as s:
        actions = s.execute(
            select(AuditEntry.action).where(AuditEntry.target == str(set_id))
        ).scalars()
        assert {"synonyms.added", "synonyms.deleted"} <= set(actions)


def test_bad_sets_get_the_one_error_shape(client) -> None:
    bad = [
        {"terms": []},
        {"terms": ["only-one"]},
        {"terms": ["MFP", "  "]},
        {"terms": ["MFP", "mfp"]},
        {"terms": "MFP"},
    ]
    for body in bad:
        resp = client.post("/api/synonyms", json=body, headers=OWNER)
        assert resp.status_code == 422 and resp.json()["error_code"] == "VALIDATION_ERROR", body
    made = client.post("/api/synonyms", json={"terms": ["KMC", "Kanto Main Center"]},
                       headers=OWNER)  # fmt: skip
    try:
        again = client.post("/api/synonyms", json={"terms": ["kanto main center", "ＫＭＣ"]},
                            headers=OWNER)  # fmt: skip
        assert again.status_code == 409 and again.json()["error_code"] == "CONFLICT"
        assert client.post("/api/synonyms", json={"terms": ["A1", "B1"]},
                           headers=EMPLOYEE).status_code == 403  # fmt: skip
        assert client.get("/api/synonyms", headers=EMPLOYEE).status_code == 403
    finally:
        client.delete(f"/api/synonyms/{made.json()['id']}", headers=OWNER)
    missing = client.delete("/api/synonyms/999999", headers=OWNER)
    assert missing.status_code == 404 and missing.json()["error_code"] == "NOT_FOUND"


def test_cli_imports_and_exports_csv(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "var"))
    csv_file = tmp_path / "vocab.csv"
    csv_file.write_text(
        "\ufeffMFP,複合機,Aster MF-3400\nTL,TeamLedger\n,\nbad\nMFP,Aster MF-3400,複合機\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    imported = runner.invoke(kb_cli, ["synonyms", "import", str(csv_file)])
    assert imported.exit_code == 0, imported.output
    assert "2 set(s) added, 2 skipped" in imported.output
    exported = runner.invoke(kb_cli, ["synonyms", "export"])
    assert exported.exit_code == 0, exported.output
    assert exported.output.splitlines() == ["MFP,複合機,Aster MF-3400", "TL,TeamLedger"]
    again = tmp_path / "again.csv"
    again.write_text(exported.output, encoding="utf-8")
    none = runner.invoke(kb_cli, ["synonyms", "import", str(again)])
    assert none.exit_code != 0 and "no set was added" in none.output
