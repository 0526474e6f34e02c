"""Out-of-scope questions and in-scope paraphrases (``eval/cases/scope.jsonl``, issue 21).

The out-of-scope lines are questions the sample knowledge base does not answer: near-misses in
its own vocabulary (``near_miss``), ordinary workplace questions (``workplace``) and unrelated
ones (``unrelated``); they should be escalated. The paraphrases are questions the public
documents do answer, worded unlike the documents and unlike ``sample.jsonl``; they should be
answered citing one of their ``expected_sources``. Every question is asked as a user asks it:
no groups, language detected from the text.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from kb.ingest.sources import walk_source
from kb.retrieval.models import AccessFilter
from tests.integration.conftest import CASES, CORPUS, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCOPE = ROOT / "eval" / "cases" / "scope.jsonl"
OUT_OF_SCOPE_KINDS = ("near_miss", "workplace", "unrelated")
FIELDS = {"id", "text", "lang", "answerable", "expected_sources", "groups", "kind"}
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

# The product's targets (issue 21).
ESCALATED_TARGET = 0.90
ANSWERED_TARGET = 0.85
WRONG_LIMIT = 0.05


def load_scope_cases() -> list[dict[str, object]]:
    return [
        json.loads(line) for line in SCOPE.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _ja_share(cases: list[dict[str, object]]) -> float:
    return _share(sum(c["lang"] == "ja" for c in cases), len(cases))


def test_the_scope_cases_file_is_well_formed():
    cases = load_scope_cases()
    ids = [c.get("id") for c in cases]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert all(isinstance(i, str) and re.fullmatch(r"o-\d{3}", i) for i in ids), ids
    texts = [c.get("text") for c in cases]
    assert len(texts) == len(set(texts)), [t for t, n in Counter(texts).items() if n > 1]
    sample_lines = CASES.read_text(encoding="utf-8").splitlines()
    sample_texts = {json.loads(line)["text"] for line in sample_lines if line.strip()}
    assert not sample_texts & set(texts)

    public = {f.relpath for f in walk_source(CORPUS) if not f.groups}
    everything = {f.relpath for f in walk_source(CORPUS)}
    for case in cases:
        assert set(case) == FIELDS, case
        assert isinstance(case["text"], str) and case["text"].strip(), case
        assert case["lang"] in ("en", "ja"), case
        # The declared language is the language the question is written in.
        assert bool(JAPANESE.search(case["text"])) == (case["lang"] == "ja"), case
        assert case["groups"] == [], case
        assert isinstance(case["answerable"], bool), case
        sources = case["expected_sources"]
        assert isinstance(sources, list), case
        if case["answerable"]:
            assert case["kind"] == "paraphrase", case
            assert sources and len(sources) == len(set(sources)), case
            for source in sources:
                assert source in everything, f"{case['id']}: no document {source}"
                assert source in public, f"{case['id']}: {source} is restricted"
        else:
            assert case["kind"] in OUT_OF_SCOPE_KINDS, case
            assert sources == [], case

    out_of_scope = [c for c in cases if not c["answerable"]]
    paraphrases = [c for c in cases if c["answerable"]]
    assert len(out_of_scope) >= 100 and len(paraphrases) >= 60
    # Half Japanese, half English (within 10 points), overall and within every kind.
    assert 0.40 <= _ja_share(out_of_scope) <= 0.60
    assert 0.40 <= _ja_share(paraphrases) <= 0.60
    for kind in OUT_OF_SCOPE_KINDS:
        of_kind = [c for c in out_of_scope if c["kind"] == kind]
        # Roughly a third of the out-of-scope questions each.
        assert 0.25 <= _share(len(of_kind), len(out_of_scope)) <= 0.42, kind
        assert 0.40 <= _ja_share(of_kind) <= 0.60, kind


# Only the targets are expected to fail (AssertionError): a crash still fails the suite.
@pytest.mark.xfail(
    reason="issue 21 targets; the current figures are printed", strict=False, raises=AssertionError
)
def test_out_of_scope_questions_escalate_and_paraphrases_are_answered(sample_kb):
    kb, _, _ = sample_kb
    cases = load_scope_cases()
    results = {}
    for case in cases:
        result = kb.ask(case["text"], acl=AccessFilter(), lang=None)
        results[case["id"]] = (result.status, [c.source_path for c in result.citations])

    out_of_scope = [c for c in cases if not c["answerable"]]
    paraphrases = [c for c in cases if c["answerable"]]

    not_escalated = [c for c in out_of_scope if results[c["id"]][0] != "escalated"]
    escalated_rate = 1 - _share(len(not_escalated), len(out_of_scope))
    print(
        f"\nout of scope escalated: {escalated_rate:.1%} "
        f"({len(out_of_scope) - len(not_escalated)}/{len(out_of_scope)})"
    )
    for kind in OUT_OF_SCOPE_KINDS:
        for lang in (None, "en", "ja"):
            group = [
                c for c in out_of_scope if c["kind"] == kind and (lang is None or c["lang"] == lang)
            ]
            missed = [c for c in not_escalated if c in group]
            label = kind if lang is None else f"  {kind} {lang}"
            print(
                f"  {label}: {1 - _share(len(missed), len(group)):.1%} "
                f"({len(group) - len(missed)}/{len(group)})"
                + (f"; not escalated: {' '.join(c['id'] for c in missed)}" if lang is None else "")
            )
    for case in not_escalated:
        status, cited = results[case["id"]]
        print(f"    {case['id']} [{case['kind']}] {status} {sorted(set(cited))}: {case['text']}")

    right, wrong, escalated = [], [], []
    for case in paraphrases:
        status, cited = results[case["id"]]
        if status != "answered":
            escalated.append(case)
        elif set(cited) & set(case["expected_sources"]):
            right.append(case)
        else:
            wrong.append(case)
    answered_rate = _share(len(right), len(paraphrases))
    wrong_rate = _share(len(wrong), len(paraphrases))
    print(
        f"paraphrases answered from an expected document: {answered_rate:.1%} "
        f"({len(right)}/{len(paraphrases)}); "
        f"from another document only: {wrong_rate:.1%} ({len(wrong)}/{len(paraphrases)}); "
        f"not answered: {len(escalated)}/{len(paraphrases)}"
    )
    for lang in ("en", "ja"):
        of_lang = [c for c in paraphrases if c["lang"] == lang]
        print(
            f"  {lang}: right {sum(c in right for c in of_lang)}/{len(of_lang)}, "
            f"wrong {sum(c in wrong for c in of_lang)}, "
            f"not answered {sum(c in escalated for c in of_lang)}"
        )
    for label, failed in (("wrong document", wrong), ("not answered", escalated)):
        print(f"  {label}: {' '.join(c['id'] for c in failed) or '-'}")
        for case in failed:
            status, cited = results[case["id"]]
            print(
                f"    {case['id']} {status} cited {sorted(set(cited))}, "
                f"expected {case['expected_sources']}: {case['text']}"
            )

    assert escalated_rate >= ESCALATED_TARGET, [c["id"] for c in not_escalated]
    assert answered_rate >= ANSWERED_TARGET, [c["id"] for c in wrong + escalated]
    assert wrong_rate <= WRONG_LIMIT, [c["id"] for c in wrong]
