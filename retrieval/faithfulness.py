"""Is every sentence of an answer backed by a passage it cites? A lexical check, no model.

The rule (docs/faithfulness.md gives it in full, with its limits):

1. Split the answer into sentences (English ``. ! ?``, Japanese ``。！？``, line breaks) with
   :func:`retrieval.text.sentence_spans`; a run of citation markers followed by more words also
   ends one. Markers ``[n]``, ``[1][2]``, ``[1, 2]`` belong to the text they follow, so markers
   that open a segment (``"Off. [1] Next."``) go back to the sentence before. Segments with no
   letter or digit make no claim and are skipped.
2. A sentence is **supported** iff at least one passage it cites (a number present in
   ``passages``) supports it. A sentence with no marker, or citing only numbers that do not
   exist, is unsupported.
3. Passage ``p`` supports sentence ``s`` iff every number in ``s`` is a number of ``p`` AND
   either normalised ``s`` is contained in normalised ``p`` or the token-overlap precision of
   ``s``'s content tokens against ``p``'s tokens is at least the threshold (default 0.8).

Normalising is NFKC, lower-casing, removing citation markers and thousands separators, and
keeping only the runs of letters and digits (decimals whole), one space apart. Tokens are words
minus a short English stop list for an English sentence, and character bigrams of the
space-free text for a Japanese one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kb.retrieval.lang import detect_lang
from kb.retrieval.text import sentence_spans

DEFAULT_THRESHOLD = 0.8
"""Share of a sentence's content tokens that must occur in a cited passage."""

Reason = Literal[
    "contained", "overlap", "no_citation", "unknown_citation", "number_mismatch", "low_overlap"
]

_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,、]\s*\d+)*)\s*\]")
_SPACED_MARKER = re.compile(r"\s*" + _MARKER.pattern)
# A run of markers followed by more words (not by closing punctuation) ends a claim:
# "... 80 dB.- 16 - [2] Try Now ..." holds two claims even without a full stop between them.
# A marker is not "more words": "[3][1]." is one run of markers ending the sentence.
_CLAIM_END = re.compile(
    r"((?:\s*" + _MARKER.pattern + r")+)(?=\s*[^\s.。!！?？,、;；:：)）」』\[])"
)
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\s*\d+(?:\s*[,、]\s*\d+)*\s*\])+\s*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])")
# Negations ("not", "no", "never") are deliberately NOT stop words: adding one changes the claim.
_WORD = re.compile(r"\d+(?:\.\d+)+|[^\W_]+")
_STOP = frozenset(
    """a an and are as at be been being by can could did do does for from had has have he her his
    i if in into is it its me my of on or our she should so than that the their them then there
    these they this those to was we were what when where which while who will with would you
    your""".split()
)


@dataclass(frozen=True, slots=True)
class SentenceVerdict:
    """The judgement on one sentence of an answer.

    ``text`` is the sentence without its markers; ``citations`` the passage numbers it cites;
    ``supported_by`` the first cited passage that supports it; ``overlap`` the best token-overlap
    precision against an existing cited passage (0.0 when none exists).
    """

    text: str
    citations: tuple[int, ...]
    supported: bool
    reason: Reason
    supported_by: int | None = None
    overlap: float = 0.0


@dataclass(frozen=True, slots=True)
class FaithfulnessReport:
    """Verdicts for every sentence, and ``score``: the share supported (1.0 with no sentences:
    an answer that makes no claim states nothing unsupported)."""

    sentences: tuple[SentenceVerdict, ...]
    score: float

    @property
    def unsupported(self) -> list[SentenceVerdict]:
        """The sentences that failed, in answer order."""
        return [v for v in self.sentences if not v.supported]

    @property
    def faithful(self) -> bool:
        """True when every sentence is supported."""
        return all(v.supported for v in self.sentences)


def parse_citations(text: str) -> tuple[int, ...]:
    """Citation numbers in ``text``, each once, in order: ``"a [2][1, 2]"`` -> ``(2, 1)``."""
    seen: dict[int, None] = {}
    for match in _MARKER.finditer(unicodedata.normalize("NFKC", text)):
        for part in re.split(r"\s*[,、]\s*", match.group(1)):
            seen.setdefault(int(part), None)
    return tuple(seen)


def strip_citations(text: str) -> str:
    """``text`` without its citation markers (and the space before them), spaces tidied."""
    return " ".join(_SPACED_MARKER.sub("", unicodedata.normalize("NFKC", text)).split())


@dataclass(frozen=True, slots=True)
class Segment:
    """One sentence of an answer as :func:`answer_segments` finds it: ``text`` without markers,
    the numbers it cites, and ``start``/``end`` offsets into the NFKC form of the answer (the
    sentence with its own markers; markers that opened the next segment are not inside)."""

    text: str
    citations: tuple[int, ...]
    start: int
    end: int


def answer_segments(answer: str) -> list[Segment]:
    """Sentences of ``answer`` with the numbers they cite and where they sit in
    ``unicodedata.normalize("NFKC", answer)``. A marker run followed by more words ends a
    sentence; markers opening a segment go back to the sentence before it. Segments without a
    letter or digit are dropped."""
    plain = unicodedata.normalize("NFKC", answer)
    # Break after a claim-ending marker run, remembering where the breaks went so offsets can
    # be mapped back to ``plain``.
    parts: list[str] = []
    inserted: list[int] = []
    pos = 0
    for m in _CLAIM_END.finditer(plain):
        parts.append(plain[pos : m.end()])
        inserted.append(m.end() + len(inserted))
        parts.append("\n")
        pos = m.end()
    parts.append(plain[pos:])
    text = "".join(parts)

    def back(i: int) -> int:
        return i - sum(1 for x in inserted if x < i)

    out: list[Segment] = []
    for start, end in sentence_spans(text):
        segment = text[start:end]
        lead = _LEADING_MARKERS.match(segment)
        if lead and out:
            prev = out[-1]
            out[-1] = Segment(
                prev.text,
                _merge(prev.citations, parse_citations(lead.group(0))),
                prev.start,
                prev.end,
            )
            start += lead.end()
            segment = segment[lead.end() :]
        if not normalize(segment):
            continue
        out.append(
            Segment(strip_citations(segment), parse_citations(segment), back(start), back(end))
        )
    return out


def split_answer(answer: str) -> list[tuple[str, tuple[int, ...]]]:
    """Sentences of ``answer`` with the numbers they cite (:func:`answer_segments` without
    offsets)."""
    return [(s.text, s.citations) for s in answer_segments(answer)]


def normalize(text: str) -> str:
    """NFKC, lower case, citation markers removed, thousands separators dropped (``8,000`` ->
    ``8000``), then the words (runs of letters and digits; a decimal ``1.5`` stays whole)
    joined by single spaces: every other character is a separator."""
    lowered = _MARKER.sub(" ", unicodedata.normalize("NFKC", text).lower())
    lowered = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), lowered)
    return " ".join(_WORD.findall(lowered))


def numbers(text: str) -> set[str]:
    """The numbers written in ``text`` (NFKC digits), thousands separators removed:
    ``"8,000 pages, 1.5 mm"`` -> {"8000", "1.5"}. Other commas separate numbers."""
    plain = _MARKER.sub(" ", unicodedata.normalize("NFKC", text))
    found: set[str] = set()
    for raw in _NUMBER.findall(plain):
        if _THOUSANDS.fullmatch(raw):
            found.add(raw.replace(",", ""))
        else:
            found.update(p for p in raw.split(",") if p)
    return found


def is_japanese(text: str) -> bool:
    """Whether ``text`` is judged as Japanese (tokens are then character bigrams)."""
    return detect_lang(text) == "ja"


def tokens(text: str, *, japanese: bool) -> list[str]:
    """Content tokens of ``text``: words minus stop words, or character bigrams (Japanese)."""
    norm = normalize(text)
    if japanese:
        compact = norm.replace(" ", "")
        if len(compact) == 1:
            return [compact]
        return [compact[i : i + 2] for i in range(len(compact) - 1)]
    return [w for w in norm.split() if w not in _STOP]


def overlap_precision(sentence: str, passage: str, *, japanese: bool | None = None) -> float:
    """Share of the sentence's distinct content tokens found among the passage's tokens
    (0.0 when the sentence has none)."""
    ja = is_japanese(sentence) if japanese is None else japanese
    mine = set(tokens(sentence, japanese=ja))
    if not mine:
        return 0.0
    theirs = set(tokens(passage, japanese=ja)) if ja else set(normalize(passage).split())
    return len(mine & theirs) / len(mine)


def contained(sentence: str, passage: str, *, japanese: bool | None = None) -> bool:
    """Normalised ``sentence`` occurs in normalised ``passage`` (whole words for English,
    ignoring spaces for Japanese). An empty sentence is contained nowhere."""
    ja = is_japanese(sentence) if japanese is None else japanese
    s, p = normalize(sentence), normalize(passage)
    if not s:
        return False
    if ja:
        return s.replace(" ", "") in p.replace(" ", "")
    return f" {s} " in f" {p} "


def supports(
    sentence: str, passage: str, *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[bool, Reason, float]:
    """Does ``passage`` support ``sentence``? :returns: (verdict, reason, overlap precision)."""
    ja = is_japanese(sentence)
    precision = overlap_precision(sentence, passage, japanese=ja)
    if not numbers(sentence) <= numbers(passage):
        return False, "number_mismatch", precision
    if contained(sentence, passage, japanese=ja):
        return True, "contained", precision
    if precision >= threshold:
        return True, "overlap", precision
    return False, "low_overlap", precision


def check_faithfulness(
    answer: str, passages: Mapping[int, str], *, threshold: float = DEFAULT_THRESHOLD
) -> FaithfulnessReport:
    """Judge each sentence of ``answer`` against the passages it cites.

    :param answer: answer text with ``[n]`` citation markers.
    :param passages: passage number -> passage text (the numbers the markers refer to).
    :param threshold: minimum token-overlap precision when the sentence is not contained.
    :returns: per-sentence verdicts and the share of sentences supported.
    """
    verdicts: list[SentenceVerdict] = []
    for text, cites in split_answer(answer):
        verdicts.append(_judge(text, cites, passages, threshold))
    if not verdicts:
        return FaithfulnessReport(sentences=(), score=1.0)
    score = sum(v.supported for v in verdicts) / len(verdicts)
    return FaithfulnessReport(sentences=tuple(verdicts), score=score)


def judge_sentence(
    text: str,
    cites: tuple[int, ...],
    passages: Mapping[int, str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> SentenceVerdict:
    """The verdict on one sentence (``text`` without markers, ``cites`` its numbers), by the
    rule :func:`check_faithfulness` applies to every sentence of an answer."""
    return _judge(text, cites, passages, threshold)


def _judge(
    text: str, cites: tuple[int, ...], passages: Mapping[int, str], threshold: float
) -> SentenceVerdict:
    if not cites:
        return SentenceVerdict(text, cites, False, "no_citation")
    existing = [n for n in cites if n in passages]
    if not existing:
        return SentenceVerdict(text, cites, False, "unknown_citation")
    best = 0.0
    failure: Reason = "low_overlap"
    for n in existing:
        ok, reason, precision = supports(text, passages[n], threshold=threshold)
        best = max(best, precision)
        if ok:
            return SentenceVerdict(text, cites, True, reason, supported_by=n, overlap=best)
        if reason == "number_mismatch":
            failure = reason
    return SentenceVerdict(text, cites, False, failure, overlap=best)


def _merge(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dict.fromkeys((*a, *b)))
