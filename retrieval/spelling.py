"""A question's Japanese words spelled as the knowledge base spells them.

UniDic holds a few compounds whole: 「紙詰まり」 is one term, 「紙づまり」 two (「紙」「詰まり」),
so a question typed one way found nothing of a manual written the other way, quoted nothing and
escalated at confidence 0. A question word that no passage the asker may read holds is replaced
by another analysis of it (MeCab's next-best) that the passages write: its pieces, read as the
word is read (「カミ」「ツマリ」 for 「カミヅマリ」, voicing aside) and held one after the other by
a passage; or a noun as the verb it names (the noun 「読取り」 as the verb 「読み取る」). Two
adjacent nouns that the passages hold only as one word are read as that word. A katakana or
Latin word keeps its spelling (a loanword's pieces, 「テレ」「ワーク」, are other words).

Most other analyses of a word are wrong (「費用」 as 「費」「用」, 「日当」 as 「日」「当たり」,
「くれる」 as 「来る」, 「届ける」 as the noun 「届け」): the reading and the passage that writes
the pieces together keep those out, and a word the knowledge base does not hold in any spelling
stays unknown to the confidence. A question the knowledge base spells as asked (nearly every
one) searches exactly as before; this costs one presence lookup of its words (under a
millisecond on the sample).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from kb.retrieval.models import AccessFilter, SparseVector
from kb.retrieval.protocols import VectorStore
from kb.retrieval.sparse import (
    QUESTION_DROP,
    BM25Encoder,
    Kind,
    Word,
    asking,
    english_only,
    is_katakana,
    term_id,
)

Spelled = list[tuple[str, Kind]] | None
"""A question's terms as :meth:`Speller.spelled` spells them; ``None``: as asked."""

READINGS = 3
"""Other analyses of a question word tried (MeCab's n-best after the first): the pieces of a
compound and a noun's verb come in the first two."""
WRITTEN_PASSAGES = 5
"""Passages read for a word's pieces written one after another: those BM25 ranks first for
the pieces."""
_CACHE = 100_000
"""Words whose other analyses are remembered."""


class Speller:
    """Spells questions as the passages of one store spell them (:meth:`spelled`)."""

    def __init__(self, encoder: BM25Encoder, store: VectorStore) -> None:
        self.encoder = encoder
        self.store = store
        self._readings: dict[tuple[str, str], list[tuple[str, ...]]] = {}

    def spelled(self, question: str, acl: AccessFilter) -> Spelled:
        """The terms of ``question`` spelled as the passages ``acl`` may read spell them, or
        ``None`` where they spell them as asked."""

        def present(terms: set[str]) -> set[str]:
            return self.present(terms, acl=acl)

        def written(pieces: tuple[str, ...]) -> bool:
            # The passages holding most of the pieces: does one hold them one after another?
            ids = sorted({term_id(t) for t in pieces})
            found = self.store.search(
                dense=[],
                sparse=SparseVector(indices=ids, values=[1.0] * len(ids)),
                top_k=WRITTEN_PASSAGES,
                acl=acl,
            )
            return any(in_a_row(self.encoder.terms(p.chunk.embed_text), pieces) for p in found)

        return self.respelled(question, present, written)

    def present(self, terms: set[str], *, acl: AccessFilter) -> set[str]:
        """Those of ``terms`` that some passage ``acl`` may read holds."""
        ids = {term_id(t): t for t in terms}
        return {ids[i] for i in self.store.present_terms(list(ids), acl=acl)}

    def terms(self, question: str, acl: AccessFilter) -> list[str]:
        """:meth:`BM25Encoder.question_terms` of ``question`` as :meth:`spelled` spells them:
        what the answer quotes and the confidence reads."""
        spelled = self.spelled(question, acl) or self.encoder.question_terms(question)
        return [t for t, _ in spelled]

    def respelled(
        self,
        text: str,
        present: Callable[[set[str]], set[str]],
        written: Callable[[tuple[str, ...]], bool],
    ) -> Spelled:
        """:meth:`spelled` for a knowledge base given by ``present`` (the terms that some
        passage holds, of those asked) and ``written`` (whether a passage holds these terms
        one after another)."""
        if english_only(text):
            return None
        words = self.encoder.words(asking(text))
        terms = [
            [
                (t, k)
                for t, k in self.encoder.word_terms(w.surface, w.lemma, w.pos)
                if t not in QUESTION_DROP
            ]
            for w in words
        ]
        mine = [_own_term(t, w) for t, w in zip(terms, words, strict=True)]
        # Two adjacent nouns the knowledge base may hold as one word.
        joined = {
            i: f"{mine[i]}{mine[i + 1]}"
            for i in range(len(words) - 1)
            if mine[i] is not None
            and mine[i + 1] is not None
            and words[i].pos == words[i + 1].pos == "名詞"
            and not words[i + 1].space
        }
        asked = {t for t in mine if t is not None}
        if not asked:
            return None
        held = present(asked | set(joined.values()))
        # Another analysis of each word the knowledge base does not hold as the question has it.
        other = {
            i: self.readings(words[i], word)
            for i, word in enumerate(mine)
            if word is not None and word not in held
        }
        readings = {t for alts in other.values() for alt in alts for t in alt}
        if readings - held:
            held |= present(readings - held)
        out: list[tuple[str, Kind]] = []
        changed = False
        i = 0
        while i < len(words):
            if i in joined and joined[i] in held and not {mine[i], mine[i + 1]} <= held:
                out.append((joined[i], "word"))
                changed, i = True, i + 2
                continue
            alts = [a for a in other.get(i, []) if set(a) <= held]
            alt = next((a for a in alts if len(a) == 1 or written(a)), None)
            if alt is not None:
                out.extend((t, "word") for t in alt)
                changed, i = True, i + 1
                continue
            out.extend(terms[i])
            i += 1
        return out if changed else None

    def readings(self, word: Word, term: str) -> list[tuple[str, ...]]:
        """The terms of the other analyses of ``word`` that may spell it (best first): pieces
        read as it is read, voicing aside (「紙詰まり」 -> (「紙」, 「詰まり」)), or the verb a
        noun names (「読取り」 -> (「読み取る」,))."""
        key = (word.surface, word.pos)
        found = self._readings.get(key)
        if found is not None:
            return found
        found = []
        for parse in self.encoder.other_analyses(word.surface, READINGS):
            pieces = [self.encoder.word_terms(w.surface, w.lemma, w.pos) for w in parse]
            if any(len(p) != 1 or p[0][1] != "word" for p in pieces):
                continue  # a particle, a symbol or a loanword: not a spelling of the word
            alt = tuple(p[0][0] for p in pieces)
            if alt == (term,) or alt in found or not QUESTION_DROP.isdisjoint(alt):
                continue
            if len(parse) == 1:
                # 「読取り」 asked, 「読み取る」 written; not the verb as a noun: 「届け」 (a
                # notice) is not what 「届ける」 (deliver) asks.
                spells = word.pos == "名詞" and parse[0].pos == "動詞"
            else:
                spells = _unvoiced("".join(w.kana or "" for w in parse)) == _unvoiced(word.kana)
            if spells:
                found.append(alt)
        if len(self._readings) >= _CACHE:
            self._readings.clear()
        self._readings[key] = found
        return found


def _own_term(terms: list[tuple[str, Kind]], word: Word) -> str | None:
    """The one term of a Japanese word that another spelling may stand for; ``None`` for a
    particle, a loanword (katakana) or a Latin word."""
    if len(terms) != 1 or terms[0][1] != "word":
        return None
    if word.surface.isascii() or is_katakana(word.surface):
        return None
    return terms[0][0]


def _unvoiced(kana: str | None) -> str:
    """``kana`` without voicing marks: a compound's second word is voiced (「カミヅマリ」 is
    「カミ」 and 「ツマリ」)."""
    return "".join(c for c in unicodedata.normalize("NFD", kana or "") if c not in "\u3099\u309a")


def in_a_row(terms: list[str], pieces: tuple[str, ...]) -> bool:
    """Whether ``terms`` holds ``pieces`` one after another."""
    n = len(pieces)
    return any(tuple(terms[i : i + n]) == pieces for i in range(len(terms) - n + 1))
