"""The Japanese-English word list (retrieval/lexicon.py), a question's words translated by it
(BM25Encoder.translations) and the BM25 query over the other language they make."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest

from kb.retrieval.errors import KBError
from kb.retrieval.lexicon import (
    LEXICON_PATH,
    Lexicon,
    build,
    load_lexicon,
    main,
    translated_query,
    write,
)
from kb.retrieval.sparse import BM25Encoder, term_id


@pytest.fixture(scope="module")
def enc() -> BM25Encoder:
    return BM25Encoder()


def query_terms(vector_indices: list[int], candidates: list[str]) -> set[str]:
    ids = set(vector_indices)
    return {t for t in candidates if term_id(t) in ids}


def test_the_shipped_lexicon_translates_common_words_both_ways() -> None:
    lexicon = load_lexicon()
    assert {"receive", "reception"} & set(lexicon.english("受信"))
    assert "automatic" in lexicon.english("自動")
    assert "招待" in lexicon.japanese("invitation")
    assert lexicon.japanese("envelopes") == lexicon.japanese("envelope")  # a plural finds it
    assert lexicon.english("存在しない語") == ()
    assert load_lexicon() is lexicon  # read once


def test_a_japanese_question_becomes_english_terms(enc: BM25Encoder) -> None:
    question = "ファクスは呼び出し音が何回鳴ったら自動で受信しますか？"
    translations = enc.translations(question, load_lexicon())
    assert {"receiv", "recept"} & set(translations["受信"])  # keyed by the question's terms
    assert set(translations) <= set(enc.terms(question))
    query = translated_query(translations, "ja", 0.4)
    assert query is not None and query.lang == "en" and query.weight == 0.4
    vector = query.vector
    found = query_terms(vector.indices, ["ring", "automat", "receiv", "fax", "time", "come"])
    # 鳴る -> ring, 自動 -> automatic, 受信 -> receive; 回 (a counter: "time") is not
    # translated, and ファクス's origin "fax" is left to the question's own BM25 query.
    assert found == {"ring", "automat", "receiv"}
    weights = dict(zip(vector.indices, vector.values, strict=True))
    assert 0 < weights[term_id("ring")] < 1  # a word's translations share its weight


def test_an_english_question_becomes_japanese_terms(enc: BM25Encoder) -> None:
    question = "How long is the link in a TeamLedger invitation valid?"
    query = translated_query(enc.translations(question, load_lexicon()), "en", 0.4)
    assert query is not None and query.lang == "ja"
    vector = query.vector
    found = query_terms(vector.indices, ["招待", "有効", "teamledg", "link", "リンク"])
    # The product's name, written alike in both languages, is left to the own query.
    assert {"招待", "有効"} <= found and "teamledg" not in found and "link" not in found


def test_nothing_to_translate_gives_an_empty_query(enc: BM25Encoder) -> None:
    lexicon = Lexicon(ja_en={}, en_ja={})
    assert enc.translations("TeamLedger の SAML 設定", lexicon) == {}
    assert translated_query(enc.translations("How do I reset SAML?", lexicon), "en", 0.4) is None
    translations = enc.translations("SAML の設定", load_lexicon())
    assert translations and translated_query(translations, "ja", 0.0) is None  # turned off


def _jmdict(path: Path) -> Path:
    """A two-entry database in jamdict's layout: 受信 (common), 稀語 (not)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE Kanji (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT);
        CREATE TABLE Kana (ID INTEGER PRIMARY KEY, idseq INTEGER, text TEXT, nokanji BOOLEAN);
        CREATE TABLE KJP (kid INTEGER, text TEXT);
        CREATE TABLE KNP (kid INTEGER, text TEXT);
        CREATE TABLE Sense (ID INTEGER PRIMARY KEY, idseq INTEGER);
        CREATE TABLE SenseGloss (sid INTEGER, lang TEXT, gend TEXT, text TEXT);
        INSERT INTO Kanji VALUES (1, 100, '受信'), (2, 200, '稀語');
        INSERT INTO Kana VALUES (1, 100, 'じゅしん', 0), (2, 200, 'きご', 0);
        INSERT INTO KJP VALUES (1, 'news1');
        INSERT INTO Sense VALUES (10, 100), (11, 100), (12, 100), (20, 200);
        INSERT INTO SenseGloss VALUES
            (10, 'eng', NULL, 'reception (e.g. radio)'), (10, 'eng', NULL, 'receiving'),
            (11, 'eng', NULL, 'to receive'),
            (12, 'eng', NULL, 'a third sense that is left out'),
            (20, 'eng', NULL, 'rare word');
        """
    )
    db.commit()
    db.close()
    return path


def test_build_keeps_common_entries_and_writes_the_same_bytes(tmp_path: Path) -> None:
    content = build(_jmdict(tmp_path / "jamdict.db"))
    assert content["ja_en"] == {"受信": ["reception", "receiving", "receive"]}
    assert content["en_ja"] == {"reception": ["受信"], "receiving": ["受信"]}
    one, two = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    write(content, one)
    write(content, two)
    assert one.read_bytes() == two.read_bytes()
    with gzip.open(one, "rt", encoding="utf-8") as f:
        assert json.load(f)["ja_en"] == content["ja_en"]
    main([str(tmp_path / "jamdict.db"), str(tmp_path / "c.json.gz")])
    assert load_lexicon(tmp_path / "c.json.gz").english("受信") == (
        "reception",
        "receiving",
        "receive",
    )


def test_a_file_that_is_not_a_lexicon_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json.gz"
    write({"something": "else"}, bad)
    with pytest.raises(KBError, match="not a lexicon file") as raised:
        load_lexicon(bad)
    assert raised.value.code == "CONFIGURATION_ERROR"
    with pytest.raises(KBError, match="CROSS_LANG_TERMS_WEIGHT=0"):
        load_lexicon(tmp_path / "missing.json.gz")


def test_the_lexicon_ships_with_its_licence() -> None:
    licence = (LEXICON_PATH.parent / "LEXICON-LICENSE.txt").read_text(encoding="utf-8")
    assert "JMdict" in licence and "CC BY-SA" in licence


def test_a_sentence_restated_in_the_other_language_is_found_from_either_side(
    enc: BM25Encoder,
) -> None:
    lexicon = load_lexicon()
    english = "The warranty starts on the date of installation."
    japanese = "設置日から保証が始まります。"
    # "installation" gives no Japanese word; 設置 gives "installation": looked up from the
    # Japanese side as well, the English sentence's words are found there.
    assert enc.restated(english, [japanese], lexicon) == (2, 4)  # start, instal; not warranti, date
    assert enc.restated(japanese, [english], lexicon) == (2, 4)
    assert enc.restated(japanese, ["Toner is sold in packs of two."], lexicon) == (0, 4)
    # The question's terms, which every passage quoted shares, are not counted.
    assert enc.restated(english, [japanese], lexicon, skip={"warranti"}) == (2, 3)
    assert enc.restated("", [japanese], lexicon) == (0, 0)
