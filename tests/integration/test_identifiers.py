"""An error code asked about, on the sample knowledge base with the real models (issue 21): its
row is found and quoted, and a code no passage the asker may read writes escalates."""

from __future__ import annotations

import pytest

from kb.retrieval.models import AccessFilter

pytestmark = pytest.mark.integration

EMPLOYEE = AccessFilter()
SUPPORT = AccessFilter(("support-internal",))


def test_an_error_code_finds_its_row_of_the_table(sample_kb):
    kb, _, _ = sample_kb
    # The row sits in a long table chunk; a short FAQ entry about E-401 used to come first.
    result = kb.ask("What does E-021 mean?", acl=EMPLOYEE)
    assert "Code: E-021;" in result.passages[0].chunk.text
    # "mean" asks; the row answers without it (the confidence read it as half the question).
    assert result.status == "answered", result.confidence
    assert result.answer.startswith("Code: E-021; Message: Paper jam in the duplex unit")
    # Asked in Japanese: the English row, not the Japanese guide's table of other codes.
    result = kb.ask("エラー E-021 の意味は？", acl=EMPLOYEE)
    assert result.status == "answered", result.confidence
    assert result.answer.startswith("Code: E-021;") and "E-200" not in result.answer
    result = kb.ask("E-402 はどういう意味ですか", acl=EMPLOYEE)  # 「どういう」 asks, as 「何」
    assert result.status == "answered", result.confidence
    assert result.answer.startswith("Code: E-402;")
    result = kb.ask("What does error E-402 mean?", acl=EMPLOYEE)
    assert "Code: E-402;" in result.passages[0].chunk.text
    assert result.status == "answered", result.confidence
    # Its row, not the rows around it that share "error" (E-200, "Fuser error").
    assert result.answer.startswith("Code: E-402; Message: Wi-Fi access point not found")
    assert "E-200" not in result.answer
    error_codes = "p. 9 · 10. Troubleshooting > 10.2 Error codes"
    assert result.citations[0].location == error_codes


@pytest.mark.parametrize(
    "question",
    [
        "My Aster shows error E-305. What does that code mean?",
        "What is the print speed of the Aster MF-3600?",
        "複合機にエラー E-777 が出ました。どういう意味ですか？",
    ],
)
def test_a_code_the_knowledge_base_does_not_write_escalates(sample_kb, question):
    kb, _, _ = sample_kb
    result = kb.ask(question, acl=EMPLOYEE)
    assert result.status == "escalated"
    assert result.confidence == 0.0 and result.features["unknown_identifier"] == 1.0


def test_a_code_only_a_restricted_document_writes_is_unknown_to_others(sample_kb):
    kb, _, _ = sample_kb
    question = "What does diagnostic D-4471 do?"
    outsider = kb.ask(question, acl=EMPLOYEE)
    assert outsider.status == "escalated" and outsider.confidence == 0.0
    assert "D-4471" not in outsider.answer
    assert all("support-internal" not in p.chunk.groups for p in outsider.passages)
    insider = kb.ask(question, acl=SUPPORT)
    assert insider.status == "answered"
    assert insider.answer.startswith("Code: D-4471; Function: Reset the fuser unit life counter")
    assert insider.citations[0].title == "KOS Support Escalation Runbook"
