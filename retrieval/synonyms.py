"""The staff vocabulary (issue 23): sets of equivalent terms applied to questions at query time.

Employees say "MFP" or 「複合機」 where the manual prints "Aster MF-3400"; staff keep sets of
equivalent terms. A question holding one term of a set is searched with the others too:
:meth:`SynonymTable.expand` appends them to the question, so the BM25 terms (each written term
analysed by the analyzer of its own script: fugashi for Japanese, stemming for English), the
dense vectors and the confidence features all see them. Nothing is re-indexed: a change
applies to the next question.

Matching is on the analyzer's terms, so spelling variants match (full/half width, long-vowel
marks, okurigana, plural forms): a set's term matches when its terms occur in the question's
terms in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kb.retrieval.protocols import SparseEncoder
from kb.retrieval.sparse import normalize_text

MAX_TERMS = 20
"""Terms one set may hold."""
MAX_TERM_CHARS = 100


def set_key(terms: Iterable[str]) -> str:
    """What makes two sets the same set: their normalized terms, sorted."""
    return "\x1f".join(sorted({normalize_term(t).casefold() for t in terms}))


def normalize_term(term: str) -> str:
    """A term as stored: NFKC, inner whitespace collapsed, trimmed."""
    return re.sub(r"\s+", " ", normalize_text(term)).strip()


def clean_terms(terms: Sequence[str]) -> list[str]:
    """The terms of a new set, normalized, in the given order.

    :raises ValueError: fewer than two distinct terms, an empty or overlong term, too many.
    """
    out: list[str] = []
    seen: set[str] = set()
    for raw in terms:
        term = normalize_term(raw)
        if not term:
            raise ValueError("a term is empty")
        if len(term) > MAX_TERM_CHARS:
            raise ValueError(f"a term is longer than {MAX_TERM_CHARS} characters")
        if term.casefold() in seen:
            raise ValueError(f"the term {term!r} is given twice")
        seen.add(term.casefold())
        out.append(term)
    if len(out) < 2:
        raise ValueError("a synonym set needs at least two different terms")
    if len(out) > MAX_TERMS:
        raise ValueError(f"a synonym set holds at most {MAX_TERMS} terms")
    return out


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as a contiguous run."""
    n = len(needle)
    return n > 0 and any(
        list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1)
    )


@dataclass(frozen=True, slots=True)
class SynonymTable:
    """The sets in force, with each term's analysed form (build with :meth:`build`)."""

    sets: tuple[tuple[str, ...], ...] = ()
    analysed: tuple[tuple[tuple[str, ...], ...], ...] = field(default=())

    @classmethod
    def build(cls, sets: Iterable[Sequence[str]], encoder: SparseEncoder) -> SynonymTable:
        """Analyse every term of ``sets`` once."""
        kept = tuple(tuple(s) for s in sets if len(s) >= 2)
        analysed = tuple(tuple(tuple(encoder.terms(t)) for t in s) for s in kept)
        return cls(kept, analysed)

    def matches(self, terms: Sequence[str]) -> list[tuple[int, int]]:
        """``(set index, term index)`` of each set term found in the question's ``terms``."""
        found = []
        for i, forms in enumerate(self.analysed):
            for j, form in enumerate(forms):
                if _contains(terms, form):
                    found.append((i, j))
                    break
        return found

    def equivalents(self, text: str, encoder: SparseEncoder) -> list[str]:
        """The terms equivalent to those ``text`` holds, that it does not hold itself."""
        if not self.sets:
            return []
        terms = encoder.terms(text)
        out: list[str] = []
        for i, _j in self.matches(terms):
            for term, form in zip(self.sets[i], self.analysed[i], strict=True):
                if not _contains(terms, form) and term not in out:
                    out.append(term)
        return out

    def aliases(self, text: str, encoder: SparseEncoder) -> set[str]:
        """The terms of ``text`` that belong to a set it matches."""
        if not self.sets:
            return set()
        return {t for i, j in self.matches(encoder.terms(text)) for t in self.analysed[i][j]}

    def expand(self, text: str, encoder: SparseEncoder) -> str:
        """``text`` followed by the equivalents of its terms in parentheses (itself when it
        holds none)."""
        extra = self.equivalents(text, encoder)
        return f"{text} ({', '.join(extra)})" if extra else text

    def canonical(self, text: str, encoder: SparseEncoder) -> str:
        """``text`` with the first term of each set it matches appended: questions naming one
        thing by different terms group together in the support queue."""
        if not self.sets:
            return text
        firsts = [self.sets[i][0] for i, _j in self.matches(encoder.terms(text))]
        return f"{text} ({', '.join(firsts)})" if firsts else text


EMPTY = SynonymTable()
