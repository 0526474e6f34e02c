"""Term proximity: a passage that writes the question's words side by side, as the question does.

BM25 counts a passage's terms wherever they stand, and the dense vectors read a passage as a
whole, so "How do I turn on 2-sided printing?" found "To turn the machine on, press the power
switch on the left side" (turn, side, print) before "Automatic 2-sided printing is on by
default in the driver". A question's adjacent words (its terms in order, stop words left out:
"2" "side", "side" "print") are a phrase the answering passage tends to write together.

:func:`proximity` is the share of those pairs that a passage holds next to each other, in the
question's order, each pair weighted by how rare its terms are among the candidates;
:func:`by_proximity` adds it, times a weight, to the fused score and reorders the candidates
(``retrieval.proximity_weights``, per question language). No corpus statistics: any store.
English questions only by default: UniDic cuts a Japanese compound into short units, so most
of a Japanese question's pairs are the pieces of one word, which BM25 already matches
(docs/experiments.md, "Term proximity").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from kb.retrieval.answer import local_idf
from kb.retrieval.models import Chunk, ScoredChunk

Pair = tuple[str, str]

PROXIMITY_CANDIDATES = 50
"""Fused candidates proximity reorders. 30 ranked emanual_tv's English questions about as well
(MRR@10 0.750) and searched in 24 ms against 38 (8 served: 11 ms), but with the confidence
refitted on it answered 0.717 / 0.149 and the sample 59 of 66 against 0.729 / 0.155 and 61
(pairs read in the text only; docs/experiments.md, "Term proximity")."""


def pairs(terms: Sequence[str]) -> list[Pair]:
    """The question's adjacent pairs of distinct terms, in order, each once."""
    out: list[Pair] = []
    for a, b in zip(terms, terms[1:], strict=False):
        if a != b and (a, b) not in out:
            out.append((a, b))
    return out


def adjacent(sequence: Sequence[str]) -> set[Pair]:
    """Every pair of terms that ``sequence`` holds one right after the other."""
    return set(zip(sequence, sequence[1:], strict=False))


def proximity(question: dict[Pair, float], held: set[Pair]) -> float:
    """Weighted share of the ``question``'s pairs a passage holds side by side (``held``); 0
    for a question without pairs."""
    total = sum(question.values())
    return sum(w for pair, w in question.items() if pair in held) / total if total else 0.0


def pair_weights(wanted: Sequence[Pair], found: list[set[str]]) -> dict[Pair, float]:
    """Each pair weighs as its two terms: their :func:`retrieval.answer.local_idf` over the
    candidates' terms (``found``), summed. A pair of words every candidate holds (the product's
    name, "Aster MF-3400") says little about which one answers; a pair with a word none holds
    says most, and a passage that lacks it lacks much of the question."""
    idf = local_idf([t for pair in wanted for t in pair], found)
    return {(a, b): idf[a] + idf[b] for a, b in wanted}


def fields(chunk: Chunk) -> tuple[str, str, str]:
    """Where a passage's pairs are read: its text, its document's title and its section's
    headings, each apart ("Replacing the toner cartridge" heads steps that do not say it again)."""
    return chunk.text, chunk.title, chunk.location.label()


class PairsCache:
    """Each passage's :func:`adjacent` pairs in its :func:`fields`, read once per chunk version
    (cleared when full)."""

    def __init__(self, sequence: Callable[[str], list[str]], size: int = 20_000) -> None:
        self._sequence = sequence
        self._size = size
        self._cached: dict[tuple[str, str], set[Pair]] = {}

    def __call__(self, chunk: Chunk) -> set[Pair]:
        key = (chunk.point_id, chunk.doc_hash)
        cached = self._cached.get(key)
        if cached is None:
            cached = set().union(*(adjacent(self._sequence(f)) for f in fields(chunk)))
            if len(self._cached) >= self._size:
                self._cached.clear()
            self._cached[key] = cached
        return cached


def by_proximity(
    passages: list[ScoredChunk],
    question_terms: Sequence[str],
    held: Callable[[Chunk], set[Pair]],
    found: Callable[[Chunk], set[str]],
    weight: float,
) -> list[ScoredChunk]:
    """``passages`` with ``weight`` times their :func:`proximity` added to their score (kept as
    the ``proximity`` signal), best first; the fused order breaks ties. ``held``: a passage's
    :func:`adjacent` pairs; ``found``: its terms (body and title). ``weight`` is on the fused
    score's scale: the caller multiplies by the best score a passage can fuse to."""
    wanted = pairs(question_terms)
    if not wanted or weight <= 0:
        return passages
    weights = pair_weights(wanted, [found(p.chunk) for p in passages])
    scored = []
    for i, p in enumerate(passages):
        share = proximity(weights, held(p.chunk))
        score, signals = p.score + weight * share, {**p.signals, "proximity": share}
        scored.append((-score, i, replace(p, score=score, signals=signals)))
    return [p for *_, p in sorted(scored, key=lambda s: (s[0], s[1]))]
