"""The analyzer's spelling normalization and the synonym table (issue 23)."""

from __future__ import annotations

import pytest

from kb.retrieval.conversation import Turn, check_rewrite, contextual_query, follow_up_reason
from kb.retrieval.sparse import ANALYZER_VERSION, BM25Encoder, normalize_kana
from kb.retrieval.synonyms import SynonymTable, clean_terms, set_key


@pytest.fixture(scope="module")
def enc() -> BM25Encoder:
    return BM25Encoder()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ｺﾋﾟｰ機の設定", "コピー機の設定"),  # half-width kana
        ("ＭＦ－３４００のトナー", "MF-3400のトナー"),  # full-width Latin and digits
        ("サーバーの設定", "サーバの設定"),  # long-vowel mark
        ("コンピューターを再起動", "コンピュータを再起動"),
        ("ヴィデオ会議", "ビデオ会議"),  # ヴ variants
        ("ワイファイの設定", "Wi-Fi の設定"),  # a katakana word UniDic spells in Latin
        ("取扱い説明書", "取り扱い説明書"),  # okurigana
        ("取扱説明書", "取り扱い説明書"),
    ],
)
def test_spelling_variants_are_one_term(enc: BM25Encoder, a: str, b: str) -> None:
    assert enc.terms(a) == enc.terms(b)
    assert enc.encode_query(a) == enc.encode_query(b)


def test_analyzer_version_moved() -> None:
    assert ANALYZER_VERSION == 6
    assert normalize_kana("プリンター") == "プリンタ" and normalize_kana("ー") == "ー"
    assert normalize_kana("MF") == "MF"


def test_synonym_table_expands_matches_only(enc: BM25Encoder) -> None:
    table = SynonymTable.build([["PPQ-C", "cyan toner cartridge"], ["ぴよ帳", "TeamLedger"]], enc)
    assert table.expand("How much is one PPQ-C?", enc) == (
        "How much is one PPQ-C? (cyan toner cartridge)"
    )
    assert table.expand("ぴよ帳の料金は？", enc) == "ぴよ帳の料金は？ (TeamLedger)"
    assert table.expand("How much is the cyan toner cartridge?", enc).endswith("(PPQ-C)")
    assert table.expand("What is the price of paper?", enc) == "What is the price of paper?"
    assert table.canonical("TeamLedger の料金", enc) == "TeamLedger の料金 (ぴよ帳)"
    assert table.aliases("How much is one ppq-c?", enc) == set(enc.terms("PPQ-C"))


def test_set_validation() -> None:
    assert clean_terms([" MFP ", "複合機"]) == ["MFP", "複合機"]
    assert set_key(["MFP", "ＭＦＰ2"]) == set_key(["mfp2", "mfp"])
    for bad in ([], ["one"], ["a", ""], ["MFP", "mfp"], ["x" * 101, "y"]):
        with pytest.raises(ValueError):
            clean_terms(bad)


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("How do I reset it?", "pronoun"),
        ("And the drum unit?", "ellipsis"),
        ("What about colour?", "ellipsis"),
        ("その交換方法は？", "pronoun"),
        ("英語版は？", "ellipsis"),
        ("How do I replace the toner on the Aster MF-3400?", None),
        ("TeamLedger の月額料金はいくらですか？", None),
    ],
)
def test_follow_up_reasons(enc: BM25Encoder, question: str, reason: str | None) -> None:
    assert follow_up_reason(question, enc) == reason


def test_contextual_query_carries_subject_and_title(enc: BM25Encoder) -> None:
    turns = [Turn("How do I replace the toner?", "How do I replace the toner?", ("Aster Guide",))]
    res = contextual_query("How much does it cost?", turns, enc)
    assert res.mode == "context" and res.query.startswith("How much does it cost?")
    assert "toner" in res.carried and "Aster Guide" in res.carried
    own = contextual_query("How do I connect TeamLedger to SAML?", turns, enc)
    assert own.mode == "standalone" and own.query == "How do I connect TeamLedger to SAML?"
    ja = contextual_query(
        "その価格は？", [Turn("ドラムユニットの寿命は？", "ドラムユニットの寿命は？", ())], enc
    )
    assert ja.mode == "context" and "ドラム" in ja.query


def test_check_rewrite(enc: BM25Encoder) -> None:
    turns = [Turn("How do I reset my TeamLedger password?", "same", ())]
    q = "How long is that link good for?"
    ok, why = check_rewrite("How long is the TeamLedger reset link good for?", q, turns, enc)
    assert ok and why == "ok"
    assert check_rewrite("", q, turns, enc) == (None, "empty")
    assert check_rewrite("Bananas grow in warm tropical places.", q, turns, enc)[0] is None
    assert check_rewrite("x " * 500, q, turns, enc) == (None, "too_long")
