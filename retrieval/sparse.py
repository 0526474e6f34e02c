"""BM25 as Qdrant sparse vectors: we store saturated term frequencies, Qdrant applies IDF.

Terms: Japanese through fugashi (UniDic lemmas of content words; particles, auxiliaries and
symbols dropped); English lower-cased, stop words dropped, Porter-stemmed. Latin words inside
Japanese text get the English treatment, so 「MF-3400 の Wi-Fi」 and "MF-3400 Wi-Fi" share terms.
A katakana loanword also stands for the English word UniDic names as its origin (「レシート」 for
``receipt``, 「監査ログ」 for ``log``), at half weight in a passage: a question finds a manual in
the other language by those words, and a passage in its own language, which matches the
katakana word too, still ranks first.
Spelling variants are one term: text is NFKC-normalised first (full- and half-width forms),
UniDic's lemma unifies okurigana (「取扱い」「取り扱い」) and known loanword spellings, and every
katakana term drops a final long-vowel mark and writes ヴ-sounds with バ-row kana (「サーバー」
「サーバ」, 「ヴィデオ」「ビデオ」), also for words UniDic does not know (issue 23).
Term ids are CRC32 hashes (Qdrant sparse indices are u32; collisions are negligible at our sizes).
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
import zlib
from collections.abc import Sequence, Set
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from kb.retrieval.identifiers import identifiers
from kb.retrieval.lang import detect_lang
from kb.retrieval.models import SparseVector

if TYPE_CHECKING:
    from kb.retrieval.lexicon import Lexicon

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ASCII_WORD = re.compile(r"^[A-Za-z0-9]+$")
_KATAKANA = re.compile(r"^[\u30a0-\u30ff]+$")
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
"""The words of a Latin lemma as English writes them apart: "WiFi" is "Wi-Fi"."""
_ASCII_ORIGIN = re.compile(r"^[A-Za-z][A-Za-z ]*$")
_JA_KEEP = {"名詞", "動詞", "形容詞", "形状詞", "副詞", "接頭辞", "接尾辞"}
# Light verbs, formal nouns and the boilerplate of a request (「〜の方法を教えてください」): they
# match every passage and say nothing about which one answers.
_JA_DROP_LEMMAS = {
    "為る",
    "有る",
    "居る",
    "成る",
    "出来る",
    "事",
    "物",
    "此の",
    "其の",
    "様",
    "教える",
    "下さる",
    "頂く",
    "知る",
    "思う",
    "分かる",
    "良い",
    "方法",
    "仕方",
    "何",
    "可能",
}
QUESTION_DROP = frozenset({"方", "遣る", "意味", "mean"})
"""Words a question asks with and a passage does not answer with. Dropped from questions only:
a passage keeps its words, and its length, which BM25 and the confidence read.

- 「直し方」「やり方」 ask how (the verb before 方 says what). A FAQ's passages say 「〜の方は」
  (those who): dropped from passages too, localgovfaq_ja lost two right answers.
- "mean" (the stem of "mean", "means", "meaning") and 「意味」 ask what a code or a term means:
  "What does E-021 mean?" is answered by the row "Code: E-021; Message: Paper jam in the
  duplex unit", which never says "means", and the confidence read the word as half of what
  was asked (escalated at 0.53).
- 「どういう」「どういった」 (what kind of), read as 「何」 (:func:`asking`). Not 「どう」 alone:
  dropped, localgovfaq_ja answered 0.459 -> 0.474 right, but a FAQ entry whose own question
  says 「どうなりますか」 is then no longer found for a question that says it
  (「電波のない場所でアプリから撮った領収書の写真はどうなりますか？」 lost the entry that answers;
  docs/experiments.md, "question words")."""
_WHAT_KIND = re.compile(r"どう[い言](?:う|った)")


def asking(question: str) -> str:
    """``question`` with 「どういう」「どういった」 (what kind of) read as 「何」, which asks and is
    dropped, as English drops "what": UniDic reads them as 「どう」 and 「言う」, two words no
    passage answers with (「E-402 はどういう意味ですか」 escalated at 0.29 with its row first).
    Not 「どう」 alone: a FAQ entry whose own question says 「どうなりますか」 is found by it
    (docs/experiments.md, "question words")."""
    return _WHAT_KIND.sub("何", question)


# Words too general to translate: a formal noun, a light verb or a counter has a dozen English
# glosses ("time", "go", "get", "take") that match every English passage.
_UNTRANSLATED = frozenset(
    """時 入る 出る 来る 行く 使う 仕舞う 呉れる 遣る 掛かる 見る 付く 付ける 言う 置く 上げる 貰う
    合う 無い 目 中 上 下 前 後 間 方 所 場合 際 度 回 枚 個 件 的 等 達 自分 以上 以下 今 全て 一
    二 三 どう どの 此れ 其れ 彼 此処 其処 何処 何時 幾ら 幾つ""".split()
)
_TRANSLATED = frozenset({"名詞", "動詞", "形容詞", "形状詞"})
"""Parts of speech whose words are translated: not a prefix or suffix (〜用, 〜場: "use",
"place" match every English passage), not an adverb."""
_EN_STOP = frozenset(
    """a an and are as at be been being but by can could did do does doing for from had has have
    having how i if in into is it its itself me my of on or our should so than that the their them
    then there these they this those to too was we were what when where which while who whom why
    will with would you your yours please tell know way""".split()
)


def english_only(text: str) -> bool:
    """Whether ``text`` is English with no Japanese character (read the English way)."""
    return detect_lang(text) == "en" and not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text)


class Word(NamedTuple):
    """A word of a Japanese text as UniDic reads it."""

    surface: str
    lemma: str | None
    pos: str
    sub: str
    """The second level of its part of speech (固有名詞, 非自立可能, ...)."""
    kana: str | None
    space: str
    """The white space before it."""


def _read(node: Any) -> Word:
    f = node.feature
    return Word(node.surface, f.lemma, f.pos1, f.pos2, f.kana, node.white_space)


def term_id(term: str) -> int:
    """The sparse vector index of a term."""
    return zlib.crc32(term.encode("utf-8"))


ANALYZER_VERSION = 6
"""Bump when :meth:`BM25Encoder.terms` gives a text other terms: points encoded by an older
analyzer no longer match the questions' terms, so ingestion re-encodes them (2: katakana
loanwords also as the English words they come from; 3: NFKC, katakana long-vowel and ヴ
variants, issue 23; 4: a katakana word UniDic spells in Latin letters as those English words,
「ワイファイ」 as "Wi-Fi"; 5: a passage's identifiers stored beside its terms, "E-021" as
"#e021", :mod:`retrieval.identifiers`; 6: a numbered step's marker at a line's start is no
term)."""

_VU = {"ヴァ": "バ", "ヴィ": "ビ", "ヴェ": "ベ", "ヴォ": "ボ", "ヴ": "ブ"}
_VU_RE = re.compile("|".join(sorted(_VU, key=len, reverse=True)))


def is_katakana(text: str) -> bool:
    """Whether ``text`` is katakana only (a loanword, 「テレワーク」)."""
    return bool(_KATAKANA.match(text))


def normalize_kana(term: str) -> str:
    """One spelling of a katakana term: ヴ-sounds as バ-row kana, no final long-vowel mark
    (「コンピューター」 and 「コンピュータ」 are one term). Other terms are returned as they are."""
    if not _KATAKANA.match(term):
        return term
    term = _VU_RE.sub(lambda m: _VU[m.group(0)], term)
    return term[:-1] if len(term) > 2 and term.endswith("ー") else term


_LIST_MARKER = re.compile(r"(?m)^[ \t]*\d{1,2}[.)](?!\d)")
"""A numbered step's marker at the start of a line ("1. Open ...", "2) ...", NFKC's "3."): its
place in a list, not a word of the passage. As a term, every step 3 of every procedure matched
a question's "3" (「3 日以上」)."""


def normalize_text(text: str) -> str:
    """``text`` in NFKC form: full-width Latin and digits as ASCII, half-width kana as
    full-width (what the analyzer reads)."""
    return unicodedata.normalize("NFKC", text)


ORIGIN_WEIGHT = 0.5
"""A loanword's English origin counts this much of a term occurrence in a passage, and weighs
this much in a question (the katakana word ``1 - ORIGIN_WEIGHT**2``)."""

Kind = Literal["word", "loan", "origin"]

_QUERY_WEIGHT: dict[Kind, float] = {
    "word": 1.0,
    "loan": 1.0 - ORIGIN_WEIGHT**2,
    "origin": ORIGIN_WEIGHT,
}
"""A loanword and its origin share one term's worth of a question's weight, so that a passage
in the question's language (holding both) scores as before and one in the other language
(holding the origin only) less."""

TIE_BREAK = 1e-5
"""Largest relative change :meth:`BM25Encoder.encode_document` makes to a passage's term
weights so that no two passages score exactly alike (a float32 keeps about seven digits)."""

_STEM_CACHE = 200_000
"""Distinct English words whose stems are remembered (a few MB)."""
RECENT_TEXTS = 256
"""Texts whose terms an encoder keeps (least recently used out): one question reads its
passages' terms several times (the answer, the answer shown, the confidence's features), and
the next question often meets the same passages."""


class BM25Encoder:
    """The project's :class:`~retrieval.protocols.SparseEncoder`."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avgdl: float = 120.0) -> None:
        self.k1, self.b, self.avgdl = k1, b, avgdl
        self._tagger: Any = None
        self._stemmer: Any = None
        self._lock = threading.Lock()
        # Porter stemming was 40% of the ask path (every retrieved passage is tokenised for the
        # confidence features): each word is stemmed once (issue 9). Same output.
        self._stems: dict[str, str | None] = {}
        self._heads: dict[str, list[str]] = {}
        self._recent = functools.lru_cache(maxsize=RECENT_TEXTS)(self._analyse)

    def warm_up(self) -> None:
        """Load the morphological analyser and stemmer (fugashi is not thread-safe: one lock)."""
        if self._tagger is None:
            import fugashi
            from nltk.stem.porter import PorterStemmer

            self._tagger = fugashi.Tagger()
            self._stemmer = PorterStemmer()

    def _english(self, word: str) -> str | None:
        w = word.lower()
        try:
            return self._stems[w]
        except KeyError:
            pass
        stem = None
        if w not in _EN_STOP and (len(w) > 1 or w.isdigit()):
            stem = str(self._stemmer.stem(w))
        if len(self._stems) >= _STEM_CACHE:
            self._stems.clear()
        self._stems[w] = stem
        return stem

    def _tag(self, text: str) -> list[Word]:
        """The words of a normalised ``text`` (fugashi is not thread-safe: one lock)."""
        with self._lock:
            return [_read(w) for w in self._tagger(text)]

    def terms(self, text: str) -> list[str]:
        return [t for t, _ in self._terms(text)]

    def sequence(self, text: str) -> list[str]:
        """The terms of ``text`` in the order it writes them, a loanword's English origin left
        out (it stands beside the word, not after it): what term proximity reads."""
        return [t for t, k in self._terms(text) if k != "origin"]

    def question_terms(self, text: str) -> list[tuple[str, Kind]]:
        """The terms a question searches and is answered by: :meth:`terms` (with their kinds)
        less the words it asks with (「直し方」's 方, 「やり方」, 「どういう」: :func:`asking`)."""
        return [(t, k) for t, k in self._terms(asking(text)) if t not in QUESTION_DROP]

    def _terms(self, text: str) -> list[tuple[str, Kind]]:
        """Each term occurrence and what it is: a ``word``, a katakana ``loan`` word, or the
        English ``origin`` of the loanword before it (the last :data:`RECENT_TEXTS` texts'
        kept: a FAQ question tokenised the same passages five times, 9 of its 100 ms)."""
        return list(self._recent(text))  # the caller's own list

    def _analyse(self, text: str) -> tuple[tuple[str, Kind], ...]:
        self.warm_up()
        text = _LIST_MARKER.sub(" ", normalize_text(text))
        if english_only(text):
            return tuple((t, "word") for w in _WORD.findall(text) if (t := self._english(w)))
        return tuple(
            term for w in self._tag(text) for term in self.word_terms(w.surface, w.lemma, w.pos)
        )

    def word_terms(self, surface: str, lemma: str | None, pos: str) -> list[tuple[str, Kind]]:
        """The terms of one word of a Japanese text (a Latin word inside it the English way)."""
        if _ASCII_WORD.match(surface):
            term = self._english(surface)
            return [(term, "word")] if term else []
        base = lemma or surface
        if pos not in _JA_KEEP or base in _JA_DROP_LEMMAS:
            return []
        head, _, origin = base.partition("-")
        latin = normalize_text(head)
        if latin.isascii():  # UniDic spells some katakana words in Latin: 「ワイファイ」 ＷｉＦｉ
            return [(t, "word") for w in _CAMEL.findall(latin) if (t := self._english(w))]
        if _KATAKANA.match(head) and _ASCII_ORIGIN.match(origin):
            return [
                (normalize_kana(head), "loan"),
                *((t, "origin") for w in _WORD.findall(origin) if (t := self._english(w))),
            ]
        return [(normalize_kana(head), "word")]

    def words(self, text: str) -> list[Word]:
        """The words of a Japanese ``text`` as UniDic reads them (:mod:`retrieval.spelling`)."""
        self.warm_up()
        return self._tag(normalize_text(text))

    def other_analyses(self, surface: str, n: int) -> list[list[Word]]:
        """The ``n`` next-best analyses of one word's ``surface`` (MeCab's n-best after the
        first): 「紙詰まり」 -> [[紙, 詰まり], ...]."""
        self.warm_up()
        with self._lock:
            parses = self._tagger.nbestToNodeList(surface, n + 1)[1:]
            return [[_read(w) for w in parse] for parse in parses]

    def content_words(self, text: str) -> list[str]:
        """The words of ``text`` that carry its subject, as written (no stems, no lemmas), in
        order, without repeats: Japanese nouns and English words that are not stop words.
        What a follow-up question borrows from an earlier one (:mod:`retrieval.conversation`).
        """
        self.warm_up()
        text = normalize_text(text)
        out: list[str] = []
        if english_only(text):
            words = list(re.findall(r"[A-Za-z0-9][A-Za-z0-9\-]*", text))
            out = [w for w in words if w.lower() not in _EN_STOP and self._english(w)]
        else:
            for surface, lemma, pos, *_ in self._tag(text):
                if _ASCII_WORD.match(surface):
                    if self._english(surface):
                        out.append(surface)
                elif (
                    pos in ("名詞", "接頭辞", "接尾辞")
                    and (lemma or surface) not in _JA_DROP_LEMMAS
                ):
                    out.append(surface)
        unique: dict[str, str] = {}
        for w in out:
            unique.setdefault(w.lower(), w)
        return list(unique.values())

    def encode_document(self, text: str) -> SparseVector:
        counts: dict[str, float] = {}
        for term, kind in self._terms(text):
            counts[term] = counts.get(term, 0.0) + (ORIGIN_WEIGHT if kind == "origin" else 1.0)
        dl = sum(counts.values())
        # An identifier's term is stored beside the words (the knowledge base knows "#e021",
        # :mod:`retrieval.identifiers`) without lengthening the passage: the words weigh as
        # they did.
        for code in identifiers(text):
            counts[code] = counts.get(code, 0.0) + 1.0
        norm = self.k1 * (1 - self.b + self.b * dl / self.avgdl)
        # Equal scores are common (a one-term question, chunks of equal length) and the engine
        # orders them as it likes, differently in two ingestions of the same files: the text's
        # own hash breaks them, in the fifth significant digit.
        tie_break = 1.0 + TIE_BREAK * zlib.crc32(text.encode("utf-8")) / 2**32
        weights: dict[int, float] = {}
        for term, tf in counts.items():
            idx = term_id(term)
            weights[idx] = weights.get(idx, 0.0) + tf * (self.k1 + 1) / (tf + norm) * tie_break
        return SparseVector(indices=list(weights), values=list(weights.values()))

    def translations(self, text: str, lexicon: Lexicon) -> dict[str, list[str]]:
        """Each of the question's terms (as :meth:`terms` gives them) that the lexicon
        translates, with its translations as terms of the other language. Words both languages
        write alike (Latin words, a loanword's origin) are left out: the question's own BM25
        query, which searches every chunk, matches them, and a translation of them would rank a
        passage in the other language for naming the product alone."""
        self.warm_up()
        text = normalize_text(text)
        out: dict[str, list[str]] = {}
        if english_only(text):
            words = _WORD.findall(text)
            for i, word in enumerate(words):
                # A capitalised word inside the sentence names something ("Aster", "Yokohama"):
                # a dictionary would translate the name's common meaning.
                if (i > 0 and word[:1].isupper()) or not (stem := self._english(word)):
                    continue
                if stem in out:
                    continue
                # A one-character piece of a longer headword (四 of 四輪) matches anything; a
                # katakana headword is the English word itself, which the question's own query
                # finds as the loanword's origin.
                found = [
                    t
                    for head in lexicon.japanese(word)
                    for t in self._head_terms(head)
                    if (len(t) > 1 or t == head)
                    and not (_ASCII_WORD.match(t) or _KATAKANA.match(t))
                ]
                found = list(dict.fromkeys(found))
                if found:
                    out[stem] = found
            return out
        for surface, lemma, pos, sub, *_ in self._tag(text):
            base = (lemma or surface).partition("-")[0]
            if (
                pos not in _TRANSLATED
                or sub in ("固有名詞", "非自立可能")  # a name; a verb used as a suffix
                or _ASCII_WORD.match(surface)
                or _KATAKANA.match(base)
                or base in _JA_DROP_LEMMAS
                or base in _UNTRANSLATED
                or base in out
            ):
                continue
            glosses = lexicon.english(base) or lexicon.english(surface)
            if found := list(dict.fromkeys(t for g in glosses if (t := self._english(g)))):
                out[base] = found
        return out

    def restated(
        self, text: str, said: Sequence[str], lexicon: Lexicon, skip: Set[str] = frozenset()
    ) -> tuple[int, int]:
        """How much of ``text`` the texts ``said``, in the other language, already say: how many
        of ``text``'s terms they hold, and of how many. A term is held as it is (a number, a
        name, a loanword's English origin), as one of its translations, or as a translation of
        one of theirs: the word list is looked up from each side, since one side alone misses
        pairs (Japanese 設置 gives "installation"; English "installation" gives no 設置). A
        katakana loanword counts by its origin; terms in ``skip`` (the question's, which every
        passage quoted shares) are not counted."""
        own = {t for t, kind in self._terms(text) if kind != "loan"} - skip
        if not own:
            return 0, 0
        theirs = {t for other in said for t in self.terms(other)}
        theirs.update(
            t
            for other in said
            for found in self.translations(other, lexicon).values()
            for t in found
        )
        found = self.translations(text, lexicon)
        held = [t for t in own if t in theirs or not theirs.isdisjoint(found.get(t, ()))]
        return len(held), len(own)

    def _head_terms(self, head: str) -> list[str]:
        """A Japanese headword's terms as a passage would hold them (UniDic lemmas)."""
        found = self._heads.get(head)
        if found is None:
            found = [t for t, kind in self._terms(head) if kind != "origin"]
            if len(self._heads) >= _STEM_CACHE:
                self._heads.clear()
            self._heads[head] = found
        return found

    def encode_query(
        self,
        text: str,
        terms: Sequence[tuple[str, Kind]] | None = None,
        codes: Sequence[str] = (),
    ) -> SparseVector:
        """``terms``: the question's terms as :mod:`retrieval.spelling` spells them; ``None``:
        as :meth:`question_terms` gives them. ``codes``: the identifiers it looks up
        (:mod:`retrieval.identifiers`), each weighing as a word."""
        query: dict[int, float] = {}
        for term, kind in self.question_terms(text) if terms is None else terms:
            idx = term_id(term)
            query[idx] = max(query.get(idx, 0.0), _QUERY_WEIGHT[kind])
        for code in codes:  # an identifier the question looks up, searched as one of its words
            query[term_id(code)] = 1.0
        ids = sorted(query)
        return SparseVector(indices=ids, values=[query[i] for i in ids])
