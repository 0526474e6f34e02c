"""The first fused candidates reordered by what the question writes (issue 21): its words side
by side (:mod:`retrieval.proximity`) and the identifiers it names (:mod:`retrieval.identifiers`).
Both add a share of the best fused score to a candidate's own, so the search's order still
decides among candidates that hold as much of the question."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from kb.retrieval.answer import local_idf
from kb.retrieval.identifiers import looked_up, named_in
from kb.retrieval.models import Chunk, Lang, ScoredChunk
from kb.retrieval.proximity import PROXIMITY_CANDIDATES, PairsCache, by_proximity
from kb.retrieval.rerank import TermsCache
from kb.retrieval.settings import RetrievalSettings
from kb.retrieval.sparse import BM25Encoder, Kind


@dataclass(frozen=True, slots=True)
class Plan:
    """What reorders one question's candidates: the proximity weight and the identifiers named,
    each weight on the fused score's scale. Proximity reads the first :attr:`candidates`; the
    identifiers reorder the candidates the search would have served without them (a Japanese
    question's 8), so that a question naming only its product is searched as before."""

    near: float
    named: tuple[str, ...]
    weight: float

    @property
    def candidates(self) -> int:
        """How many fused candidates the search fetches for it (0: as it would anyway)."""
        return PROXIMITY_CANDIDATES if self.near > 0 else 0


class LexicalOrder:
    """Reorders a question's first candidates (:meth:`plan`, then :meth:`apply`)."""

    def __init__(self, sparse: BM25Encoder, terms: TermsCache) -> None:
        self._sparse = sparse
        self._terms = terms  # a passage's terms: body, and title with headings
        self._pairs = PairsCache(sparse.sequence)

    def plan(self, question: str, lang: Lang, cfg: RetrievalSettings, top: float) -> Plan | None:
        """The reordering of ``question``'s candidates, or ``None`` when nothing reorders them
        (``top``: the best score a passage can fuse to). Both read BM25's terms."""
        if not cfg.use_bm25:
            return None
        near = cfg.proximity_weights.get(lang, 0.0) * top
        weight = cfg.identifier_weight * top
        named = tuple(named_in(question)) if weight > 0 else ()
        return Plan(near, named, weight) if near > 0 or named else None

    def looked_up(self, plan: Plan | None, passages: Sequence[ScoredChunk]) -> list[str]:
        """The identifiers ``plan``'s question looks up among ``passages``: those it names that
        no passage's title or headings hold (:func:`retrieval.identifiers.looked_up`)."""
        if plan is None or not plan.named:
            return []
        return looked_up(plan.named, [self._terms(p.chunk).title_codes for p in passages])

    def apply(
        self,
        plan: Plan,
        question: str,
        passages: list[ScoredChunk],
        spelled: list[tuple[str, Kind]] | None,
    ) -> list[ScoredChunk]:
        """``passages`` reordered by ``plan``; ``spelled``: the question's terms as searched."""
        if plan.near > 0:  # the question's words in its order
            asked = spelled or self._sparse.question_terms(question)
            order = [t for t, kind in asked if kind != "origin"]
            passages = by_proximity(passages, order, self._pairs, self._terms.words, plan.near)
        if plan.named:  # the error code or part number looked up, as written
            wanted = self.looked_up(plan, passages)
            passages = by_identifiers(passages, wanted, self._codes, plan.weight)
        return passages

    def _codes(self, chunk: Chunk) -> set[str]:
        return set(self._terms(chunk).codes)


def by_identifiers(
    passages: list[ScoredChunk],
    wanted: Sequence[str],
    found: Callable[[Chunk], set[str]],
    weight: float,
) -> list[ScoredChunk]:
    """``passages`` with ``weight`` times the weighted share of the identifiers ``wanted`` each
    holds (``found``: a passage's identifiers, text and headings) added to its score (kept as signal
    ``identifiers``), best first; the order they came in breaks ties. ``weight`` is on the
    fused score's scale (the caller multiplies by the best score a passage can fuse to).
    Unchanged when the question names none, or when no candidate holds one."""
    if not wanted or weight <= 0 or not passages:
        return passages
    holds = [found(p.chunk) for p in passages]
    if not any(h.intersection(wanted) for h in holds):
        return passages
    idf = local_idf(list(wanted), holds)
    total = sum(idf.values())
    scored = []
    for i, (p, h) in enumerate(zip(passages, holds, strict=True)):
        share = sum(w for ident, w in idf.items() if ident in h) / total if total else 0.0
        score, signals = p.score + weight * share, {**p.signals, "identifiers": share}
        scored.append((-score, i, replace(p, score=score, signals=signals)))
    return [p for *_, p in sorted(scored, key=lambda s: (s[0], s[1]))]
