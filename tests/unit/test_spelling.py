"""A question's words spelled as the knowledge base spells them (retrieval/spelling.py); the
store's side is tested on the sample in tests/integration/test_sample_kb.py."""

from kb.retrieval.sparse import BM25Encoder, term_id
from kb.retrieval.spelling import Speller


class _Passages:
    """What :meth:`Speller.respelled` asks of a knowledge base holding ``texts``: the
    terms some passage holds, and whether one holds some terms one after another."""

    def __init__(self, enc, *texts):
        self.terms = [enc.terms(t) for t in texts]
        self.asked = []

    def present(self, terms):
        self.asked.append(set(terms))
        return {t for t in terms if any(t in held for held in self.terms)}

    def written(self, pieces):
        n = len(pieces)
        return any(
            tuple(held[i : i + n]) == pieces for held in self.terms for i in range(len(held))
        )


def _respelled(enc, question, *texts):
    kb = _Passages(enc, *texts)
    spelled = Speller(enc, None).respelled(question, kb.present, kb.written)
    return None if spelled is None else [t for t, _ in spelled]


GUIDE = "9.1 紙づまりを取り除く。前カバーを開けて、紙を直すように引き抜きます。"


def test_a_compound_the_passages_write_in_pieces_is_searched_by_its_pieces():
    enc = BM25Encoder()
    # UniDic holds 「紙詰まり」 whole and 「紙づまり」 as two words: the manual's spelling.
    assert enc.terms("紙詰まりの直し方") == ["紙詰まり", "直す", "方"]
    assert enc.terms("紙づまりを取り除く")[:2] == ["紙", "詰まり"]
    kb = _Passages(enc, GUIDE, "使い方の説明")
    spelled = Speller(enc, None).respelled("紙詰まりの直し方", kb.present, kb.written)
    assert spelled == [("紙", "word"), ("詰まり", "word"), ("直す", "word")]
    query = enc.encode_query("紙詰まりの直し方", spelled)
    assert set(query.indices) == {term_id(t) for t in ("紙", "詰まり", "直す")}


def test_pieces_the_passages_hold_as_one_word_are_searched_as_that_word():
    enc = BM25Encoder()
    manual = "紙詰まりが起きたら前カバーを開けて直す。使い方。"
    assert _respelled(enc, "紙づまりの直し方", manual) == ["紙詰まり", "直す"]
    # A noun the passages only hold as the verb: 「読取り」 (noun) asked, 「読み取る」 written.
    assert _respelled(enc, "読取りができない", "原稿を読み取ります。") == ["読み取る"]


def test_a_question_spelled_as_the_knowledge_base_spells_it_searches_as_before():
    enc = BM25Encoder()
    kb = _Passages(enc, "紙詰まりの直し方")
    assert Speller(enc, None).respelled("紙詰まりの直し方", kb.present, kb.written) is None
    assert len(kb.asked) == 1  # no other analysis is looked up
    # Both spellings held: the question's stays.
    assert _respelled(enc, "紙づまりの直し方", GUIDE, "紙詰まりのとき") is None
    # English is never respelled, and asks the store nothing.
    kb = _Passages(enc, "Clear the paper jam.")
    assert (
        Speller(enc, None).respelled("How do I clear a paper jam?", kb.present, kb.written) is None
    )
    assert kb.asked == []


def test_other_analyses_that_are_other_words_are_not_taken_for_a_spelling():
    enc = BM25Encoder()
    # The pieces held, but by no passage one after the other: 「紙詰まり」 stays unknown.
    assert _respelled(enc, "紙詰まりの直し方", "紙の種類。", "詰まりの原因を直す方") is None
    # MeCab's next analyses of these are other words: 「日当」 as 「日」「当たり」 (read
    # ヒアタリ, not ニットウ), 「費用」 as 「費」「用」, 「くれる」 as 「来る」 (two verbs), the
    # verb 「届ける」 (deliver) as the noun 「届け」 (a notice), a loanword's or a Latin word's
    # pieces.
    passages = ("1 日当たりの上限", "交通費。用紙の費", "来る日", "届けを出す", "テレビのワーク")
    for question in ("日当はいくら？", "費用はいくら？", "届けてくれますか", "テレワークの申請"):
        assert _respelled(enc, question, *passages) is None, question
    assert _respelled(enc, "Chromebook の設定", *passages, "Chrome book") is None
