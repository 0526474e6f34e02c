"""Sentence splitting, language detection and BM25 terms: the text plumbing under retrieval."""

import numpy as np
import pytest

from kb.retrieval.lang import detect_lang, toward_other_language
from kb.retrieval.models import SparseVector
from kb.retrieval.sparse import BM25Encoder, term_id
from kb.retrieval.text import joined, sentence_spans, split_sentences


def test_sentences_split_on_japanese_and_english_ends_but_not_decimals():
    text = "Open the cover (approx. 5 cm). Pull the 1.5 mm lever! 次に電源を入れます。完了です"
    assert split_sentences(text) == [
        "Open the cover (approx. 5 cm).",
        "Pull the 1.5 mm lever!",
        "次に電源を入れます。",
        "完了です",
    ]


def test_a_sentence_ends_after_a_word_that_ends_like_an_abbreviation_and_not_after_one():
    # "map." is not "p." nor "setup." "no.": a sentence ended there and was quoted with the next.
    assert split_sentences("Pick up the map. Then run setup. Ask for help.") == [
        "Pick up the map.",
        "Then run setup.",
        "Ask for help.",
    ]
    # A sheet row is one sentence: its citation marker is not put inside "(JPY excl. tax)".
    row = "Item: Toner cartridge black; Price (JPY excl. tax): 14800; Notes: call ext. 4021"
    assert split_sentences(row) == [row]
    assert split_sentences("Prices incl. tax. See p. 4 and fig. 12. Done.") == [
        "Prices incl. tax.",
        "See p. 4 and fig. 12.",
        "Done.",
    ]


def test_a_reply_word_is_one_sentence_with_the_statement_after_it():
    # A FAQ answer's "Yes." was quoted alone ("Yes. [1]") under "Who approves my expenses?".
    text = "Yes. Approvers can approve on their phone. No. Only admins can. Is it free? No."
    assert split_sentences(text) == [
        "Yes. Approvers can approve on their phone.",
        "No. Only admins can.",
        "Is it free?",
        "No.",
    ]
    assert split_sentences("はい。スマートフォンで承認できます。いいえ、できません。") == [
        "はい。スマートフォンで承認できます。",
        "いいえ、できません。",
    ]
    # A word that only starts like a reply is a sentence of its own.
    assert split_sentences("Note. Nobody. Yesterday.") == ["Note.", "Nobody.", "Yesterday."]


def test_a_quoted_step_or_bullet_starts_a_line_and_sentences_run_on():
    steps = ["2. ［ウィザード］をタッチします。 [1]", "4. ［閉じる］をタッチします。 [1]"]
    assert joined(steps, "ja") == "\n".join(steps)
    said = ["設定を開きます。 [1]", "・有線 LAN [2]", "保存します。 [1]"]
    assert joined(said, "ja") == "設定を開きます。 [1]\n・有線 LAN [2]保存します。 [1]"
    english = ["Tap Home. [1]", "- Click Add expense. [2]", "It has -5 °C limits. [1]"]
    assert joined(english, "en") == (
        "Tap Home. [1]\n- Click Add expense. [2] It has -5 °C limits. [1]"
    )
    assert joined(["Printing 2.5 pages. [1]", "10.2 Error codes list them. [1]"], "en") == (
        "Printing 2.5 pages. [1] 10.2 Error codes list them. [1]"
    )


def test_sentence_spans_index_the_original_text():
    text = "  First one.  Second one.\n\n三つ目。"
    for start, end in sentence_spans(text):
        assert text[start:end] == text[start:end].strip()
    assert [text[s:e] for s, e in sentence_spans(text)] == ["First one.", "Second one.", "三つ目。"]


def test_language_detection_counts_script_not_words():
    assert detect_lang("How do I replace the toner?") == "en"
    assert detect_lang("MF-3400 の Wi-Fi 設定方法を教えてください") == "ja"
    assert detect_lang("TeamLedger") == "en"


def test_bm25_terms_lemmatise_japanese_and_stem_english():
    enc = BM25Encoder()
    ja = enc.terms("申請に必要な持ち物は何ですか")
    assert "申請" in ja and "持ち物" in ja
    assert "は" not in ja and "です" not in ja  # particles and auxiliaries are dropped
    en = enc.terms("Replacing the toner cartridges")
    assert en == ["replac", "toner", "cartridg"]
    # Latin words inside Japanese text share terms with the English spelling.
    assert {"mf", "3400"} <= set(enc.terms("MF-3400 の設定")) & set(enc.terms("MF-3400 settings"))


def test_a_numbered_step_s_marker_is_no_term_and_other_numbers_are():
    enc = BM25Encoder()
    steps = "1. Click Submit.\n2) Confirm the route.\n３．前カバーを開けます。"
    assert not {"1", "2", "3"} & set(enc.terms(steps))
    assert {"click", "submit", "confirm", "rout", "前", "開ける"} <= set(enc.terms(steps))
    assert "3" in enc.terms("承認者が 3 日以上承認してくれない場合")
    assert {"1", "04", "02"} <= set(enc.terms("1.04.02 adds IPv6"))  # a version is no marker


def test_a_texts_terms_are_kept_for_the_next_read_and_the_oldest_give_way(monkeypatch):
    from kb.retrieval import sparse

    monkeypatch.setattr(sparse, "RECENT_TEXTS", 2)
    enc = BM25Encoder()
    first = enc.terms("Replacing the toner cartridges")
    first.append("changed by a caller")  # a caller's list is its own
    assert enc.terms("Replacing the toner cartridges") == ["replac", "toner", "cartridg"]
    assert enc._recent.cache_info().misses == 1  # read once
    enc.terms("トナーの交換")
    enc.terms("用紙の補給")  # a third text: the least recently read gives way
    enc.terms("Replacing the toner cartridges")
    info = enc._recent.cache_info()
    assert info.misses == 4 and info.currsize == 2


def test_a_loanword_also_stands_for_the_english_word_it_comes_from():
    enc = BM25Encoder()
    # UniDic's lemma names a loanword's origin (レシート-receipt): the katakana word is a term,
    # and so is its origin, which the English text shares.
    assert enc.terms("レシート") == ["レシート", "receipt"]
    assert enc.terms("receipt") == ["receipt"]
    assert "log" in enc.terms("監査ログは 5 年間保存されます")
    assert {"servic", "mode"} <= set(enc.terms("サービスモードに入る"))
    # Kanji words stay Japanese only, whatever their lemma carries (円-助数詞).
    assert enc.terms("料金は 600 円です") == ["料金", "600", "円"]


def test_a_loanword_weighs_one_term_in_its_own_language_and_less_in_the_other():
    enc = BM25Encoder()
    query = _weights(enc.encode_query("レシート"))
    katakana, origin = term_id("レシート"), term_id("receipt")
    assert query == {katakana: pytest.approx(0.75), origin: pytest.approx(0.5)}
    ja = _weights(enc.encode_document("レシートを撮影します"))
    en = _weights(enc.encode_document("Take a photo of the receipt"))
    # A Japanese passage holds both at full and half weight; an English one the origin only.
    assert ja[origin] < ja[katakana] and katakana not in en
    assert sum(query[t] * ja.get(t, 0) for t in query) > sum(query[t] * en.get(t, 0) for t in query)


def test_bm25_document_weights_saturate_and_query_weights_are_unit():
    enc = BM25Encoder()
    doc = enc.encode_document("toner toner toner paper")
    weights = dict(zip(doc.indices, doc.values, strict=True))
    q_toner = enc.encode_query("toner").indices[0]
    q_paper = enc.encode_query("paper").indices[0]
    assert weights[q_toner] > weights[q_paper]
    assert weights[q_toner] < 3 * weights[q_paper]  # term frequency saturates
    assert set(enc.encode_query("toner paper toner").values) == {1.0}


def test_two_passages_never_score_exactly_alike_and_one_passage_always_the_same():
    # Equal BM25 scores were ordered by the engine, differently in two ingestions.
    enc = BM25Encoder()
    a = enc.encode_document("TeamLedger keeps the audit log.")
    b = enc.encode_document("TeamLedger keeps the export log.")
    key = enc.encode_query("TeamLedger").indices[0]
    wa, wb = (dict(zip(v.indices, v.values, strict=True))[key] for v in (a, b))
    assert wa != wb
    assert abs(wa - wb) / wa < 1e-5
    assert enc.encode_document("TeamLedger keeps the audit log.") == a


def _weights(v: SparseVector) -> dict[int, float]:
    return dict(zip(v.indices, v.values, strict=True))


def test_a_question_vector_moves_toward_the_other_language():
    # Language "ja" and "en" passages differ by ``direction``: a Japanese question moves
    # against it, an English one along it, both by ``shift`` of it, and stay unit length.
    direction = [0.0, 0.4, 0.0]
    ja = toward_other_language([1.0, 0.0, 0.0], "ja", direction, 0.5)
    en = toward_other_language([1.0, 0.0, 0.0], "en", direction, 0.5)
    assert np.linalg.norm(ja) == pytest.approx(1.0) == np.linalg.norm(en)
    assert ja[1] < 0 < en[1]
    assert ja == pytest.approx(list(np.array([1.0, -0.2, 0.0]) / np.hypot(1.0, 0.2)))
    assert toward_other_language([0.6, 0.8, 0.0], "en", direction, 0.0) == pytest.approx(
        [0.6, 0.8, 0.0]
    )


def test_a_katakana_word_unidic_spells_in_latin_letters_is_the_english_word():
    enc = BM25Encoder()
    # UniDic's lemma of 「ワイファイ」 is "ＷｉＦｉ": the term matched no passage writing "Wi-Fi".
    assert enc.terms("ワイファイの設定方法") == enc.terms("Wi-Fi の設定") == ["wi", "fi", "設定"]
    assert enc.terms("ユーエスビー") == ["ユー", "sb"]


def test_a_question_s_way_of_doing_is_not_searched_and_a_passage_keeps_its_words():
    enc = BM25Encoder()
    # 「やり方」「〜し方」 ask how, as 「方法」 does, and say nothing of which passage answers.
    asked = [t for t, _ in enc.question_terms("両面印刷のやり方")]
    assert asked == [t for t, _ in enc.question_terms("両面印刷の方法")] == ["両面", "印刷"]
    assert [t for t, _ in enc.question_terms("トナーの交換の仕方")] == ["トナ", "toner", "交換"]
    # 「どういう」「どういった」 ask "what kind of", as 「何」 does; 「どう」 alone is searched.
    assert [t for t, _ in enc.question_terms("E-402 はどういう意味ですか")] == ["402"]
    assert [t for t, _ in enc.question_terms("どういった場合に使えますか")] == ["場合", "使う"]
    assert [t for t, _ in enc.question_terms("写真はどうなりますか")] == ["写真", "どう"]
    # 「意味」 asks what a code means; the passages keep the word.
    assert [t for t, _ in enc.question_terms("エラー E-021 の意味は？")] == ["エラ", "error", "021"]
    assert enc.terms("エラー E-021 の意味は？") == ["エラ", "error", "021", "意味"]
    # "What does X mean?" asks what X means: the code's row never says "means".
    assert [t for t, _ in enc.question_terms("What does the message TL-403 mean?")] == [
        "messag",
        "tl",
        "403",
    ]
    assert [t for t, _ in enc.question_terms("The meaning of the E-200 code")] == ["200", "code"]
    assert "mean" in enc.terms("Meaning: your role does not allow this action.")
    query = enc.encode_query("紙の直し方")
    assert set(query.indices) == {term_id("紙"), term_id("直す")}
    # A passage is indexed as written: a FAQ's 「〜の方は」 (those who) keeps its length.
    assert enc.terms("転入された方は") == ["転入", "方"]
