"""The question memory in the ask path (issue 22): what a question's matches do to its passages
and its confidence. :mod:`retrieval.memory` finds the matches; this module applies them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kb.retrieval.gate import Gate
from kb.retrieval.memory import Hit, QuestionMemory, Recall
from kb.retrieval.models import AccessFilter, ScoredChunk
from kb.retrieval.protocols import VectorStore

MEMORY_CANDIDATE = 0.5
"""Probability under which a memory match does not move a passage: a match more likely wrong
than right leaves the search's order alone (it is still logged, with its features)."""

GAP_LIKELY = 0.5
"""A gap match lowers the confidence only from this probability: below it the question is more
likely covered than not, and the confidence model already knows the base rate of gaps."""
MEMORY_FEATURES = ("memory_p", "memory_sim", "memory_agreed", "gap_p", "gap_sim")


def recall_for(
    memory: QuestionMemory | None,
    vector: list[float],
    terms: Sequence[str],
    acl: AccessFilter,
) -> Recall:
    """What the question memory holds for a question (nothing without one)."""
    if memory is None or not len(memory):
        return Recall()
    return memory.match(vector, terms, acl)


def with_memory(
    passages: list[ScoredChunk],
    recall: Recall,
    acl: AccessFilter,
    store: VectorStore,
    max_fused: float,
) -> list[ScoredChunk]:
    """``passages`` with the ones the memory points to: a passage an agreed match more likely
    right than not vouches for moves up to where its fused score (over ``max_fused``) plus that
    probability puts it, read from the store when the search missed it (when ``acl`` may read
    it; a hit whose passage is gone is marked ``stale``), never below where the search put it;
    the others keep the search's order."""
    max_fused = max_fused or 1.0
    by_id = {p.chunk.point_id: p for p in passages}
    bonus: dict[str, float] = {}
    added: list[ScoredChunk] = []
    for hit in recall.hits:
        # One asker's thumbs-up moves nothing until someone agrees: moving a passage first can
        # answer a question that would have been escalated, which only agreement may do.
        if hit.p < MEMORY_CANDIDATE or not hit.agreed:
            continue
        passage = by_id.get(hit.chunk_id) or memory_passage(store, hit, acl)
        if passage is None:
            continue
        point = passage.chunk.point_id
        if point not in by_id:
            by_id[point] = passage
            added.append(passage)
        bonus[point] = max(bonus.get(point, 0.0), hit.p)
    if not bonus:
        return passages
    moved = sorted(
        (
            ScoredChunk(p.chunk, p.score, {**p.signals, "memory": bonus[p.chunk.point_id]})
            for p in [*passages, *added]
            if p.chunk.point_id in bonus
        ),
        key=lambda p: -(p.score / max_fused + p.signals["memory"]),
    )
    merged = [p for p in passages if p.chunk.point_id not in bonus]
    # Up, never down: a passage a ranker put above others with higher fused scores stays
    # above them (the fused score alone would demote the learned first passage it vouches for).
    was = {p.chunk.point_id: i for i, p in enumerate(passages)}
    for p in moved:
        key = p.score / max_fused + p.signals["memory"]
        at = next(
            (
                i
                for i, q in enumerate(merged)
                if key > q.score / max_fused
                or was[q.chunk.point_id] > was.get(p.chunk.point_id, len(passages))
            ),
            len(merged),
        )
        merged.insert(at, p)
    return merged


def memory_passage(store: VectorStore, hit: Hit, acl: AccessFilter) -> ScoredChunk | None:
    """The passage a memory hit names, as the store holds it now: the same point, or (the
    document re-ingested) the point with the same text; ``None`` when it is gone or ``acl``
    may not read it."""
    chunks = store.document_chunks(hit.document_id)
    found = next((c for c in chunks if c.chunk.point_id == hit.chunk_id), None)
    if found is None and hit.text_hash:
        found = next((c for c in chunks if c.chunk.content_hash == hit.text_hash), None)
        if found is not None:
            hit.moved_to = found.chunk.point_id
    if found is None:
        hit.stale = True
        return None
    if not acl.permits(found.chunk.groups):
        return None
    return ScoredChunk(found.chunk, 0.0, {})


def confirmed_first(recall: Recall, passages: Sequence[Any], threshold: float) -> bool:
    """Whether the first passage is one an agreed match vouches for with a probability of at
    least ``threshold``: the answer then quotes it
    (:func:`retrieval.extractive.compose_extractive`)."""
    if not passages or not recall.hits:
        return False
    top = passages[0].chunk.point_id
    return any(
        h.agreed and h.p >= threshold and top in (h.chunk_id, h.moved_to) for h in recall.hits
    )


def apply_recall(
    confidence: float,
    recall: Recall,
    cited: Sequence[Any],
    features: dict[str, float],
    gate: Gate | None = None,
) -> float:
    """The confidence after the memory: an agreed match naming the first cited passage raises
    it by its likelihood ratio against the pair model's base rate (:func:`raised_by_pair`;
    to the match's probability with a new memory's prior or the learned answerability's
    probability); a gap match that is more likely a gap than not (:data:`GAP_LIKELY`), and
    more probable than that pair, lowers it by how much more likely a gap it is than the gap
    model's base rate (:func:`lowered_by_gap`). Adds :data:`MEMORY_FEATURES` to ``features``.

    :param cited: the answer's passages (``ScoredChunk``), first is the answer's main one.
    :param gate: where the memory's learned answerability answers; a first passage it scored
        (signal ``domain_p``) has its probability, after the matches, mapped onto the
        configured threshold's scale (:meth:`retrieval.gate.Gate.confidence`).
    """
    # The ranker learned from the confirmed questions knows how often its first candidate is
    # right here (retrieval.domain): that probability is the confidence, and the matches act
    # on it as on theirs; then it goes onto the configured gate's scale (retrieval.gate).
    learned = cited[0].signals.get("domain_p") if cited else None
    if learned is not None:
        confidence = features["domain_p"] = learned
    top = cited[0].chunk.point_id if cited else None
    hit = next((h for h in recall.hits if top in (h.chunk_id, h.moved_to)), None)
    features.update(
        memory_p=hit.p if hit else 0.0,
        memory_sim=hit.sim if hit else 0.0,
        memory_agreed=float(bool(hit and hit.agreed)),
        gap_p=recall.gap.p if recall.gap else 0.0,
        gap_sim=recall.gap.sim if recall.gap else 0.0,
    )
    if hit is not None and hit.agreed:
        # A new memory's prior is no likelihood (it lifts near-identical questions only), and
        # the learned ranker's probability already read the matches: there the match stands
        # alone, as the probability it is.
        base = None if learned is not None else hit.base
        raised = hit.p if base is None else raised_by_pair(confidence, hit.p, base)
        if raised > confidence:
            confidence, recall.lifted = raised, hit.chunk_id
    gap = recall.gap
    # A gap at or under its model's base rate says nothing (a memory mostly of gaps can have
    # one above GAP_LIKELY): it is not applied, and a lift stands.
    if gap is not None and gap.p >= GAP_LIKELY and gap.p > max(gap.base, hit.p if hit else 0.0):
        confidence = lowered_by_gap(confidence, gap.p, gap.base)
        recall.gap_applied, recall.lifted = True, None
    if learned is not None and gate is not None:
        confidence = gate.confidence(confidence)
    return confidence


def raised_by_pair(confidence: float, p: float, base: float) -> float:
    """``confidence`` after an agreed match of probability ``p`` naming the answer's passage,
    from a pair model whose base rate is ``base``: its odds times the match's likelihood ratio,
    the odds of ``p`` over those of ``base``. Where the search says nothing (confidence 0: it
    found no answer, or the question names a code no passage writes), the base rate stands for
    it and the match's probability is the confidence.

    The match and the search are two kinds of evidence: how close the question is to one that
    people confirmed, and what the knowledge base holds for it. The pair model reads only the
    first; until 2026-12-07 it also read where the search ranked the passage, and a match
    lifted the confidence to its own probability. Staff confirm the questions the search
    failed, so that model learned the search's first passage is seldom right: an agreed match
    naming it read p 0.2-0.5 where it was right 0.6-0.8 of the time, and a confidence of 0.45
    with such a match escalated (docs/question-memory.md, "The match and the search")."""
    if p <= base:
        return confidence
    if p >= 1.0:
        return 1.0
    prior = confidence if confidence > 0.0 else base
    if prior >= 1.0:
        return 1.0
    return _weighed(prior, p / (1.0 - p) * (1.0 - base) / base)


def lowered_by_gap(confidence: float, p: float, base: float) -> float:
    """``confidence`` after a gap match of probability ``p`` from a model whose gap rate is
    ``base``: its odds times the match's likelihood ratio, the odds of ``p`` over those of
    ``base`` (never raised).

    The gap model reads only the match; the confidence already holds what the search found.
    Scaling the confidence by ``1 - p`` counted the match as the whole evidence: over twelve
    emanual_tv history splits, gaps took 31 right answers (most at confidences above 0.8)
    under the threshold, for 17 out-of-scope and 5 wrong answers escalated; with the ratio, 15
    for 13 and 3 (docs/question-memory.md, Figures)."""
    if p >= 1.0:
        return 0.0
    if p <= base or not 0.0 < confidence < 1.0:
        return confidence
    return _weighed(confidence, (1.0 - p) / p * base / (1.0 - base))


def _weighed(confidence: float, ratio: float) -> float:
    """``confidence`` (strictly between 0 and 1) after evidence of likelihood ratio ``ratio``:
    its odds times the ratio, as a probability again."""
    odds = confidence / (1.0 - confidence) * ratio
    return odds / (1.0 + odds)
