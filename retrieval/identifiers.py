"""Identifiers: the error code, part number or version a question names, found as written.

"What does E-021 mean?" is how people ask a support bot about an error, and the answer is one
row of a long table ("Code: E-021; Message: Paper jam in the duplex unit; ..."). The analyzer
read "E-021" as "021" (a letter alone is no term), BM25 divided that one "021" by the length of
the whole table chunk, and the dense vectors read "E-021" and "E-401" alike: a short FAQ entry
about E-401 came first, the table seventh, and the question was escalated. A question about
"E-305", which no manual lists, was answered from the error table at 0.72: "305" is a number
the specifications print (docs/experiments.md, "Identifiers").

An identifier here is a word written with a hyphen or a dot that has a letter right before a
digit ("E-021", "TL-403", "KP-A4-2500") or digits on both sides ("1.04.02"), at least three
characters (separators aside: "A-4" is too short to tell one passage from another), compared
without case or separators. Its words lose it ("E-021" is the word "021"); one written as one
word ("IPv6", "WPA3", "MF3400") is a word the search matches already. "2-sided" is not one.

- Each identifier is stored as a term of its own beside a passage's words ("#e021",
  :meth:`retrieval.sparse.BM25Encoder.encode_document`), in either language, without changing
  what the words weigh. The analyzer's terms are the words: the search, the confidence and the
  sentences an answer quotes read them, as the confidence model was fitted.
- :func:`retrieval.lexical.by_identifiers` lifts the candidates that write what the question
  looks up: an identifier no candidate's title or headings name (the product's model number,
  "Aster MF-3400 User Guide", is what the question is about, not what it looks up).
- A question naming a code no passage the asker may read writes ("E-305", "MF-3600") is
  escalated (:func:`unknown`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence, Set

_WORD = re.compile(r"[0-9a-z]+(?:[-.][0-9a-z]+)*")
_LETTER_DIGIT = re.compile(r"[a-z][-.]?[0-9]")
_DIGITS = re.compile(r"[0-9][-.][0-9]")
_SEPARATOR = re.compile(r"[-.]")
MIN_LENGTH = 3
"""Characters (separators aside) an identifier has at least."""


CODE = "#"
"""What an identifier's term starts with: no word's term does."""


def _identifier(word: str) -> str | None:
    """``word`` (lower case) as an identifier, or ``None`` if it is not one: letters and digits
    without hyphens or dots ("e021"), or digits joined by dots ("1.04.02")."""
    compact = _SEPARATOR.sub("", word)
    if len(compact) < MIN_LENGTH:
        return None
    if _LETTER_DIGIT.search(word):
        return compact
    if compact.isdigit() and _DIGITS.search(word):
        return _SEPARATOR.sub(".", word)
    return None


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def identifiers(text: str) -> list[str]:
    """The terms of the identifiers ``text`` writes with a hyphen or a dot, in order (each
    occurrence): those its words lose ("E-021" is the words "021"; "IPv6" is a word)."""
    return [
        CODE + found
        for word in _words(text)
        if _SEPARATOR.search(word) and (found := _identifier(word)) is not None
    ]


def named_in(question: str) -> list[str]:
    """The terms of the identifiers ``question`` names, each once, in order."""
    return list(dict.fromkeys(identifiers(question)))


def looked_up(named: Sequence[str], titles: Sequence[Set[str]]) -> list[str]:
    """Those of the identifiers ``named`` that none of ``titles`` (the candidates' title and
    heading terms) holds: what a question looks up, not what it is about."""
    return [c for c in named if not any(c in t for t in titles)]


def unknown(question: str, present: Callable[[set[str]], set[str]]) -> list[str]:
    """The codes ``question`` names that no passage the asker may read writes (``present``:
    those of some terms that a passage holds). A code is an identifier with letters whose
    pieces are not identifiers themselves: "E-305", "MF-3600", "TL-500"; not a version ("1.04"
    is asked of "1.04.02") nor a name built on one ("DIRECT-MF3400", a network the manual
    writes "DIRECT-MF3400-xxxx"). Such a question asks about something the knowledge base does
    not document, whatever else it shares with a passage: the answer escalates
    (``retrieval.service``)."""
    codes = set()
    for word in _words(question):
        found = _identifier(word)
        pieces = _SEPARATOR.split(word)
        built = any(_identifier(p) for p in pieces)
        if found and len(pieces) > 1 and any(c.isalpha() for c in found) and not built:
            codes.add(CODE + found)
    return sorted(codes - present(codes)) if codes else []
