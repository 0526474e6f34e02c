"""Identifiers (issue 21): the error code, part number or version a question names is a term
of its own, lifts the candidates that write it, and one no passage writes escalates."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kb.retrieval.identifiers import identifiers, looked_up, named_in, unknown
from kb.retrieval.lexical import by_identifiers
from kb.retrieval.models import Chunk
from kb.retrieval.sparse import ANALYZER_VERSION, BM25Encoder, term_id
from tests.unit.passages import passage

ENCODER = BM25Encoder()


def _codes(chunk: Chunk) -> set[str]:
    return set(identifiers(f"{chunk.text} {chunk.title}"))


def test_codes_part_numbers_and_versions_are_identifiers_and_ordinary_words_are_not() -> None:
    text = "E-021, TL-403, KP-A4-2500, IPv6, MF3400, 1.04.02 and section 10.2 (2024-04-15)"
    assert identifiers(text) == ["#e021", "#tl403", "#kpa42500", "#1.04.02", "#10.2", "#2024.04.15"]
    # Written as one word, an identifier is a word the search matches already.
    assert identifiers("IPv6, WPA3 and MF3400") == []
    # Words, plain numbers, a number and its unit, an ordinal, and two-character codes.
    assert identifiers("Turn on 2-sided printing for 550 sheets of A4, 10MB, 1st, P1, Wi-Fi") == []
    # Full-width Latin and digits are read as ASCII; case and hyphens do not matter.
    assert named_in("エラー Ｅ－０２１ が出ます。e021? E021!") == ["#e021"]


def test_a_passage_stores_an_identifier_as_a_term_beside_its_words() -> None:
    assert ANALYZER_VERSION >= 5  # points encoded before are encoded again at ingestion
    # The analyzer's terms are the words; the identifier is stored beside them.
    question = ENCODER.question_terms("What does E-021 mean?")
    assert question == [("021", "word")]  # "mean" asks; the row answers without it
    # In a Japanese text as in an English one.
    japanese = ENCODER.encode_document("E-452 が出てスキャンを送れません")
    assert term_id("#e452") in japanese.indices
    # The words weigh as they did: the passage is no longer, and the search reads no code.
    plain = ENCODER.encode_document("Code 021: paper jam in the duplex unit.")
    coded = ENCODER.encode_document("Code E-021: paper jam in the duplex unit.")
    words = dict(zip(plain.indices, plain.values, strict=True))
    stored = dict(zip(coded.indices, coded.values, strict=True))
    assert set(stored) - set(words) == {term_id("#e021")}
    assert all(stored[i] == pytest.approx(w, rel=1e-4) for i, w in words.items())  # tie-break
    assert ENCODER.encode_query("What does E-021 mean?") == ENCODER.encode_query(
        "What does 021 mean?"
    )
    # Proximity reads the words in order: an identifier stands beside them, not after them.
    assert ENCODER.sequence("Code: E-021; Message: Paper jam") == [
        "code", "021", "messag", "paper", "jam",
    ]  # fmt: skip


def test_the_passage_that_writes_the_identifier_comes_first() -> None:
    # A short entry about E-401 fused first; the error table holding E-021 came later.
    faq = passage(0, "E-401 means the Wi-Fi passphrase is wrong. Check the passphrase.", 0.9)
    table = passage(1, "Code: E-010; Message: Paper jam in Tray 1. Code: E-021; Message: ...", 0.5)
    other = passage(2, "Code: E-200; Message: Fuser error.", 0.6)
    ranked = by_identifiers([faq, table, other], ["#e021"], _codes, weight=1.0)
    assert [p.chunk.document_id for p in ranked] == ["d1", "d0", "d2"]
    assert ranked[0].signals["identifiers"] == 1.0 and ranked[1].signals["identifiers"] == 0.0
    assert ranked[0].score == 1.5
    # Nothing holds it, or the weight is 0: the fused order stands, untouched.
    assert by_identifiers([faq, table], ["#e777"], _codes, weight=1.0) == [faq, table]
    assert by_identifiers([faq, table], ["#e021"], _codes, weight=0.0) == [faq, table]


def test_the_model_number_the_titles_name_is_not_looked_up() -> None:
    # "Aster MF-3400 User Guide": the question is about the product, and looks up E-402.
    titles = [{"aster", "#mf3400", "user", "guid"}, {"troubleshoot"}, {"#mf3400", "network"}]
    assert looked_up(["#mf3400", "#e402"], titles) == ["#e402"]
    assert looked_up(["#mf3400"], titles) == []


def test_a_code_no_passage_writes_is_unknown_and_a_version_prefix_is_not() -> None:
    kb = {"#e021", "#mf3400", "#1.04.02", "mf3400"}

    def present(terms: set[str]) -> set[str]:
        return terms & kb

    assert unknown("My Aster shows error E-305. What does that code mean?", present) == ["#e305"]
    assert unknown("What is the print speed of the Aster MF-3600?", present) == ["#mf3600"]
    assert unknown("What does E-021 mean on the MF-3400?", present) == []
    # A version is asked of its prefix ("1.04" of 1.04.02): it never escalates by itself.
    assert unknown("What changed in firmware 1.04?", present) == []
    assert unknown("How do I print on both sides?", present) == []
    # A name built on a known one: the manual writes the network "DIRECT-MF3400-xxxx".
    assert unknown("There's a network called DIRECT-MF3400. What is it?", present) == []


def test_the_looked_up_row_is_quoted_without_its_neighbours() -> None:
    from kb.retrieval.extractive import compose_extractive

    table = passage(
        0,
        "Code: E-020; Meaning: Paper jam inside the machine.\n"
        "Code: E-021; Meaning: Paper jam in the duplex unit.",
        0.9,
    )
    statuses = passage(1, "Status: Draft; Meaning: Saved but not submitted.", 0.5)
    other_table = passage(2, "Code: E-200; Meaning: Fuser error.", 0.4)  # the other guide's
    terms = ENCODER.terms("What does E-021 mean?")
    kwargs = {
        "encoder": ENCODER,
        "max_citations": 3,
        "max_sentences": 4,
        "lang": "en",
        "codes": named_in("What does E-021 mean?"),
    }
    shown, cited = compose_extractive(
        terms, [table, statuses, other_table], restated=lambda u, said, skip: (0, 0), **kwargs
    )
    # Its row, not the row beside it that shares "mean"; another passage as it would be, but
    # not another table's row of another code.
    assert shown.startswith("Code: E-021;") and "E-020" not in shown and "Draft" in shown
    assert "E-200" not in shown
    assert [p.chunk.document_id for p in cited] == ["d0", "d1"]
    # The answer the confidence judges is the one it was fitted on.
    judged, _ = compose_extractive(terms, [table, statuses, other_table], **kwargs)
    assert "E-020" in judged and "E-200" in judged
    # The product's model number, named in the titles, is what the question is about: no row
    # is singled out for it.
    about = replace(table, chunk=replace(table.chunk, title="Aster MF-3400 User Guide"))
    terms = ENCODER.terms("Which paper jams does the MF-3400 mean?")
    kwargs["codes"] = named_in("Which paper jams does the MF-3400 mean?")
    shown, _ = compose_extractive(terms, [about], restated=lambda u, said, skip: (0, 0), **kwargs)
    assert "E-020" in shown and "E-021" in shown


def test_a_looked_up_code_is_searched_as_a_word_of_the_question() -> None:
    query = ENCODER.encode_query("What does E-021 mean?")
    searched = ENCODER.encode_query("What does E-021 mean?", codes=["#e021"])
    assert dict(zip(searched.indices, searched.values, strict=True)) == {
        **dict(zip(query.indices, query.values, strict=True)),
        term_id("#e021"): 1.0,
    }
    assert searched.indices == sorted(searched.indices)
