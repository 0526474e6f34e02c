"""The faithfulness check must pass faithful answers and be able to fail unfaithful ones."""

from __future__ import annotations

import pytest

from kb.retrieval.faithfulness import (
    check_faithfulness,
    contained,
    normalize,
    numbers,
    overlap_precision,
    parse_citations,
    split_answer,
    supports,
    tokens,
)

PAIRING = (
    "When you turn on the TV for the first time, the Samsung Smart Remote pairs to the TV "
    "automatically. If it does not pair, point it at the remote control sensor of the TV."
)
HUB = "To open Smart Hub, press the Home button on the remote. The manual has 8,000 pages."
JA_RESIDENT = "住民票の写しは市役所の窓口で発行します。手数料は1通300円です。"


# --- parsing ----------------------------------------------------------------------------------


def test_parse_citation_forms() -> None:
    assert parse_citations("a [1]") == (1,)
    assert parse_citations("a [1][2]") == (1, 2)
    assert parse_citations("a [1, 2]") == (1, 2)
    assert parse_citations("a [ 3 ,4 ]") == (3, 4)
    assert parse_citations("a [2][1, 2]") == (2, 1)  # each once, first-seen order
    assert parse_citations("a ［２］") == (2,)  # full width, NFKC
    assert parse_citations("a [x] [] [1a]") == ()


def test_split_english_and_japanese_sentences() -> None:
    answer = "The TV turns off. [1] Press OK to pair [2]. Why? [1][2] Done"
    assert split_answer(answer) == [
        ("The TV turns off.", (1,)),  # the marker after the full stop belongs to it
        ("Press OK to pair.", (2,)),
        ("Why?", (1, 2)),
        ("Done", ()),
    ]
    ja = "電源を切ります。[1]リモコンを押します！[2]本当ですか？[1, 2]"
    assert split_answer(ja) == [
        ("電源を切ります。", (1,)),
        ("リモコンを押します!", (2,)),  # NFKC turns ！ into !
        ("本当ですか?", (1, 2)),
    ]


def test_marker_followed_by_words_ends_a_claim() -> None:
    # extractive answers join passage sentences that may lack a full stop ("- 16 -")
    assert split_answer("It is 80 dB.- 16 - [2] Try Now after reading. [3]") == [
        ("It is 80 dB.- 16 -", (2,)),
        ("Try Now after reading.", (3,)),
    ]
    assert split_answer("電源を切ります[1]リモコンを押します[2]") == [
        ("電源を切ります", (1,)),
        ("リモコンを押します", (2,)),
    ]
    # a marker before a comma or full stop does not cut the sentence
    assert split_answer("The TV [1], and the remote [2].") == [("The TV, and the remote.", (1, 2))]
    # each claim is then judged against its own passages
    answer = "The manual has 8,000 pages [2] the remote pairs to the TV automatically [1]"
    assert check_faithfulness(answer, {1: PAIRING, 2: HUB}).score == 1.0


def test_split_drops_segments_without_words() -> None:
    assert split_answer("") == []
    assert split_answer("[1]") == []
    assert split_answer("Yes [1].\n---\n") == [("Yes.", (1,))]


# --- normalising, tokens, numbers -------------------------------------------------------------


def test_normalize() -> None:
    assert normalize("The manual has 12,000 pages [1]. Size: 1.5 mm, ＡＢＣ！") == (
        "the manual has 12000 pages size 1.5 mm abc"
    )


def test_numbers() -> None:
    assert numbers("8,000 pages and 1.5 mm [3]") == {"8000", "1.5"}  # marker digits ignored
    assert numbers("１２,０００ページ") == {"12000"}  # full-width digits
    assert numbers("1,2 and 12,0001") == {"1", "2", "12", "0001"}  # not thousands groups


def test_tokens_english_drop_stop_words_keep_negation() -> None:
    assert tokens("The TV does not turn off.", japanese=False) == ["tv", "not", "turn", "off"]


def test_tokens_japanese_are_character_bigrams() -> None:
    assert tokens("窓口で 発行。", japanese=True) == ["窓口", "口で", "で発", "発行"]
    assert tokens("可", japanese=True) == ["可"]


def test_overlap_precision_english() -> None:
    # content tokens press menu button (the: stop word); passage has press, button -> 2/3
    assert overlap_precision("Press the Menu button", HUB) == pytest.approx(2 / 3)


def test_contained_needs_whole_words() -> None:
    assert contained("press the home button", HUB)
    assert not contained("press the home butt", HUB)
    assert not contained("", HUB)


# --- supported sentences ----------------------------------------------------------------------


def test_extractive_sentence_citing_its_passage_is_supported() -> None:
    answer = (
        "When you turn on the TV for the first time, the Samsung Smart Remote pairs to the TV "
        "automatically. [1]"
    )
    report = check_faithfulness(answer, {1: PAIRING})
    assert report.score == 1.0 and report.faithful
    (verdict,) = report.sentences
    assert verdict.supported and verdict.reason == "contained" and verdict.supported_by == 1


def test_paraphrase_with_high_overlap_is_supported() -> None:
    # press home button open smart hub: all 6 content tokens in HUB -> precision 1.0
    report = check_faithfulness("Press the Home button to open Smart Hub [1].", {1: HUB})
    (verdict,) = report.sentences
    assert verdict.supported and verdict.reason == "overlap"
    assert verdict.overlap == 1.0


def test_sentence_supported_by_second_cited_passage() -> None:
    report = check_faithfulness(
        "Press the Home button to open Smart Hub [1][2].", {1: PAIRING, 2: HUB}
    )
    assert report.sentences[0].supported and report.sentences[0].supported_by == 2
    report = check_faithfulness(
        "Press the Home button to open Smart Hub [1, 2].", {1: PAIRING, 2: HUB}
    )
    assert report.sentences[0].supported_by == 2


def test_thousands_separator_does_not_matter() -> None:
    assert check_faithfulness("The manual has 8000 pages [1].", {1: HUB}).score == 1.0


# --- unsupported sentences ----------------------------------------------------------------------


def test_sentence_citing_the_wrong_passage_is_unsupported() -> None:
    # the HUB sentence cites [1] = PAIRING: content tokens open smart hub press home button
    # remote; PAIRING has smart and remote -> 2/7 < 0.8
    report = check_faithfulness(
        "To open Smart Hub, press the Home button on the remote. [1]", {1: PAIRING, 2: HUB}
    )
    (verdict,) = report.sentences
    assert not verdict.supported
    assert verdict.reason == "low_overlap"
    assert verdict.overlap == pytest.approx(
        2 / 7
    )  # open smart hub press home button remote: smart, remote
    assert report.score == 0.0


def test_sentence_without_citation_is_unsupported() -> None:
    report = check_faithfulness("To open Smart Hub, press the Home button on the remote.", {1: HUB})
    assert report.sentences[0].reason == "no_citation" and report.score == 0.0


def test_citation_number_that_does_not_exist_is_unsupported() -> None:
    report = check_faithfulness(
        "To open Smart Hub, press the Home button on the remote. [3]", {1: HUB}
    )
    assert report.sentences[0].reason == "unknown_citation"
    # one real and one missing number: the real one still counts
    report = check_faithfulness(
        "To open Smart Hub, press the Home button on the remote. [3][1]", {1: HUB}
    )
    assert report.sentences[0].supported


def test_changed_number_is_unsupported() -> None:
    report = check_faithfulness("The manual has 12,000 pages [1].", {1: HUB})
    (verdict,) = report.sentences
    assert not verdict.supported and verdict.reason == "number_mismatch"
    # every other word matches: the number alone fails it
    ok, reason, _ = supports("The manual has 12,000 pages.", "The manual has 8,000 pages.")
    assert (ok, reason) == (False, "number_mismatch")
    # a number must match whole: 12 is not 120, 1.5 is not 15
    assert not supports("The fee is 12", "The fee is 120 yen")[0]
    assert not supports("It is 1.5 mm thick", "It is 15 mm thick")[0]


def test_changed_word_in_short_sentence_is_unsupported() -> None:
    # press menu button: 2 of 3 content tokens in HUB = 0.667 < 0.8
    report = check_faithfulness("Press the Menu button [1].", {1: HUB})
    assert report.sentences[0].reason == "low_overlap"


def test_added_negation_lowers_overlap() -> None:
    # tv not turn off automatically: tv, off, automatically in the passage -> 3/5 = 0.6
    passage = "The TV turns off automatically after 4 hours."
    assert overlap_precision("The TV does not turn off automatically", passage) == pytest.approx(
        0.6
    )
    assert not check_faithfulness(
        "The TV does not turn off automatically [1].", {1: passage}
    ).faithful


def test_threshold_is_a_parameter() -> None:
    # press home button open smart hub tv: 6/7 = 0.857 in HUB
    answer = "Press the Home button on the TV to open Smart Hub [1]."
    assert check_faithfulness(answer, {1: HUB}).score == 1.0
    assert check_faithfulness(answer, {1: HUB}, threshold=0.9).score == 0.0


def test_claim_joining_two_passages_needs_one_that_holds_it() -> None:
    # "pairs automatically" is in PAIRING, "8,000 pages" in HUB: no single passage has both
    answer = "The remote pairs automatically and the manual has 8,000 pages [1][2]."
    assert check_faithfulness(answer, {1: PAIRING, 2: HUB}).score == 0.0


def test_score_is_share_of_supported_sentences() -> None:
    answer = (
        "To open Smart Hub, press the Home button on the remote. [2] "  # supported
        "The manual has 12,000 pages. [2] "  # number changed
        "If it does not pair, point it at the remote control sensor of the TV. [1] "  # supported
        "The TV also makes coffee. [1]"  # unsupported
    )
    report = check_faithfulness(answer, {1: PAIRING, 2: HUB})
    assert [v.supported for v in report.sentences] == [True, False, True, False]
    assert report.score == pytest.approx(2 / 4)
    assert [v.reason for v in report.unsupported] == ["number_mismatch", "low_overlap"]


def test_answer_without_sentences_scores_one() -> None:
    report = check_faithfulness("", {1: HUB})
    assert report.sentences == () and report.score == 1.0 and report.faithful


# --- Japanese ---------------------------------------------------------------------------------


def test_japanese_contained_sentence_is_supported() -> None:
    report = check_faithfulness("住民票の写しは市役所の窓口で発行します。[1]", {1: JA_RESIDENT})
    assert report.sentences[0].reason == "contained"


def test_japanese_bigram_overlap() -> None:
    # 住民票の写しは窓口で発行します: 14 bigrams, only は窓 missing from the passage -> 13/14
    answer = "住民票の写しは窓口で発行します。[1]"
    assert overlap_precision("住民票の写しは窓口で発行します。", JA_RESIDENT) == pytest.approx(
        13 / 14
    )
    assert check_faithfulness(answer, {1: JA_RESIDENT}).sentences[0].reason == "overlap"


def test_japanese_changed_place_is_unsupported() -> None:
    # 住民票の写しは郵便局で発行します: 15 bigrams; は郵 郵便 便局 局で missing -> 11/15 = 0.733
    sentence = "住民票の写しは郵便局で発行します。"
    assert overlap_precision(sentence, JA_RESIDENT) == pytest.approx(11 / 15)
    assert check_faithfulness(sentence + "[1]", {1: JA_RESIDENT}).score == 0.0


def test_japanese_number_check_with_full_width_digits() -> None:
    # 手数料は300円です: 9 bigrams, 8 in 手数料は1通300円です (は3 missing) -> 0.889
    assert check_faithfulness("手数料は３００円です。[1]", {1: JA_RESIDENT}).score == 1.0
    report = check_faithfulness("手数料は４００円です。[1]", {1: JA_RESIDENT})
    assert report.sentences[0].reason == "number_mismatch"


def test_japanese_wrong_passage() -> None:
    answer = "住民票の写しは市役所の窓口で発行します。[2]"
    report = check_faithfulness(answer, {1: JA_RESIDENT, 2: "図書館は月曜日が休館日です。"})
    assert not report.faithful
