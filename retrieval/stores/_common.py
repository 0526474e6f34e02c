"""What both store adapters share: names, payload handling and the per-passage signals.

The adapters differ only in how they talk to Qdrant (Edge's in-process bindings, or
qdrant-client); everything that decides *what* is stored or returned lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from kb.retrieval.errors import StoreError
from kb.retrieval.models import (
    PUBLIC_GROUP,
    Chunk,
    DenseQuery,
    Fusion,
    ScoredChunk,
    SparseQuery,
    SparseVector,
)
from kb.retrieval.numeric import cosine

SPARSE_NAME = "bm25"
"""The sparse vector holding BM25 term frequencies; the store applies IDF."""

KEYWORD_INDEXES = ("groups", "document_id", "doc_hash", "lang", "kind")
"""Payload keys filtered on, each with a keyword index."""

UPSERT_BATCH = 256

T = TypeVar("T")


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def group_values(groups: Sequence[str]) -> list[str]:
    """The ``groups`` payload for access groups: de-duplicated, public when empty."""
    return list(dict.fromkeys(groups)) or [PUBLIC_GROUP]


FACET_LIMIT = 100_000
"""Distinct values a facet may return: more access groups than any company has."""


def restricted_groups(values: Iterable[object]) -> set[str]:
    """The facet values of ``groups`` that are access groups (not the public marker)."""
    return {str(v) for v in values} - {PUBLIC_GROUP}


def has_terms(sparse: SparseVector | None) -> bool:
    """True when a sparse vector can take part in a search or be stored."""
    return sparse is not None and len(sparse.indices) > 0


def check_dense(stored: Mapping[str, int] | None, chunks_dense: Mapping[str, list[float]]) -> None:
    """Refuse a point whose dense vectors do not match the collection's names and sizes."""
    if stored is None:
        return
    if set(chunks_dense) != set(stored):
        raise StoreError(
            f"point has dense vectors {sorted(chunks_dense)}, the collection {sorted(stored)}"
        )
    for name, vector in chunks_dense.items():
        if len(vector) != stored[name]:
            raise StoreError(
                f"dense vector {name!r} has {len(vector)} dimensions, the collection {stored[name]}"
            )


def dims_mismatch(where: str, wanted: Mapping[str, int], found: str) -> StoreError:
    """The error for a collection built with other vectors than the configured embedders make."""
    return StoreError(
        f"{where} was built with other vectors ({found}) than the configured embedders produce "
        f"{dict(sorted(wanted.items()))}: rebuild the index (`kb ingest --recreate`) or "
        "configure the embedders it was built with"
    )


def to_scored(
    payload: Mapping[str, Any] | None,
    score: float,
    vectors: Mapping[str, Any] | None,
    dense: Sequence[DenseQuery],
    scores: Mapping[str, float] | None = None,
) -> ScoredChunk:
    """A fused hit as a passage. Signals: ``fused``, the ``score`` that ordered it; each
    fusion's own score from ``scores`` (``rrf``, ``minmax``: :func:`fuse`); ``dense:<name>``,
    each cosine."""
    signals = {"fused": float(score), **(scores or {})}
    for query in dense:
        stored = (vectors or {}).get(query.name)
        if stored is not None:
            signals[f"dense:{query.name}"] = cosine(query.vector, stored)
    return ScoredChunk(
        chunk=Chunk.from_payload(dict(payload or {})), score=float(score), signals=signals
    )


def mean_vector(vectors: Sequence[Any]) -> list[float]:
    """The element-wise mean of ``vectors`` (``[]`` for none)."""
    if not vectors:
        return []
    return [float(x) for x in np.mean(np.asarray(vectors, np.float64), axis=0)]


def in_chunk_order(payloads: Sequence[Mapping[str, Any] | None]) -> list[ScoredChunk]:
    """One document's points as passages (score 0), by chunk index."""
    chunks = [Chunk.from_payload(dict(p or {})) for p in payloads]
    chunks.sort(key=lambda c: (c.index, c.doc_hash))
    return [ScoredChunk(chunk=c, score=0.0) for c in chunks]


def fusion_weights(
    fusion: Fusion,
    dense: Sequence[DenseQuery],
    with_sparse: bool,
    translated: SparseQuery | None = None,
) -> list[float]:
    """Fusion weights in prefetch order: the dense prefetches, the sparse one, then the
    translated one (when it takes part)."""
    weights = [fusion.dense_weight if q.weight is None else q.weight for q in dense]
    weights += [fusion.sparse_weight] if with_sparse else []
    return weights + ([translated.weight] if translated is not None else [])


def fuse(
    fusion: Fusion,
    weights: Sequence[float],
    hits: Sequence[Sequence[Any]],
    limit: int,
    dense: Sequence[DenseQuery],
) -> list[tuple[Any, dict[str, float]]]:
    """Both fusions of the prefetches' hits (points with an ``id`` and a ``score``, each list
    best first), computed from one set of hits:

    - ``rrf``: weighted reciprocal rank fusion, as Qdrant computes it (``Fusion.gain``);
    - ``minmax``: each prefetch's scores min-max normalised over its own hits (best 1, last 0;
      all 1 when they are equal), weighted and summed. A passage a prefetch did not return gains
      nothing from it, as it would at that prefetch's last place.

    The first prefetches are the ``dense`` ones. In the min-max score, those in the question's
    language (no ``lang`` of their own) weigh ``fusion.section_dense_scale`` times their weight
    for a passage that is not a Q&A entry (its ``kind`` payload); the other-language prefetch
    is the only one that finds a manual in the other language and keeps its weight.

    :returns: the best ``limit`` as ``(id, {"rrf": score, "minmax": score})``, ordered by
        ``fusion.method``'s score, then by id (a deterministic order for equal scores). The
        other score is kept: the confidence reads both, whichever ordered the passages."""
    scores: dict[Any, dict[str, float]] = {}
    scale = fusion.section_dense_scale
    for i, (weight, ranked) in enumerate(zip(weights, hits, strict=True)):
        if weight <= 0 or not ranked:
            continue
        # Best first, equal scores by id: the engine orders equal scores (two sections of the
        # same text) by its index's layout, which differs from one build to the next.
        read = sorted(((steady(h.score), h) for h in ranked), key=lambda v: (-v[0], str(v[1].id)))
        low, high = read[-1][0], read[0][0]
        span = high - low
        scaled = i < len(dense) and dense[i].lang is None and scale != 1.0
        for rank, (value, hit) in enumerate(read):
            w = weight * scale if scaled and _kind(hit) != "qa" else weight
            entry = scores.setdefault(hit.id, {"rrf": 0.0, "minmax": 0.0})
            entry["rrf"] += fusion.gain(rank, weight)
            entry["minmax"] += w * ((value - low) / span if span > 0 else 1.0)
    method = fusion.method
    best = sorted(scores.items(), key=lambda item: (-round(item[1][method], 9), str(item[0])))
    return best[:limit]


def steady(score: float) -> float:
    """A prefetch's score to six significant digits. The engine adds a sparse score's terms in
    the order of its index's layout, so two builds of the same index can give the same
    passage's BM25 scores one float32 step apart (14.630333 and 14.630332): the min-max score,
    and the confidence that reads it, would then differ in the eighth digit, and a replay
    that learns from its own answers (``kb eval --history``) grows that into other answers.
    Six digits are far finer than any difference that should order two passages; :func:`fuse`
    orders each prefetch's hits by them, equal ones by id."""
    return float(f"{score:.6g}")


def _kind(hit: Any) -> str | None:
    payload = getattr(hit, "payload", None)
    return payload.get("kind") if isinstance(payload, Mapping) else None


def fused_search(
    fusion: Fusion,
    weights: Sequence[float],
    hits: Sequence[Sequence[Any]],
    dense: Sequence[DenseQuery],
    top_k: int,
) -> list[ScoredChunk]:
    """The best ``top_k`` passages by :func:`fuse` of the prefetches' ``hits`` (points with
    their payloads and vectors, as one batch returned them: no second read that a re-ingestion
    could race). Each carries both fusions' scores as signals."""
    best = fuse(fusion, weights, hits, top_k + TIE_MARGIN, dense)
    by_id = {h.id: h for batch in hits for h in batch}
    passages = []
    for point, scores in best:
        hit = by_id[point]
        vectors = hit.vector if isinstance(hit.vector, dict) else None
        passages.append(to_scored(hit.payload, scores[fusion.method], vectors, dense, scores))
    return settle(passages, top_k)


def vector_names(dense: Sequence[DenseQuery]) -> list[str]:
    """The distinct dense vectors to return with each hit (for the per-model cosines)."""
    return list(dict.fromkeys(q.name for q in dense))


TIE_MARGIN = 10
"""Extra fused hits fetched so that ties at the cut are broken by :func:`settle`, not by chance."""


def settle(hits: list[ScoredChunk], top_k: int) -> list[ScoredChunk]:
    """Deterministic order: fused score, then the best dense cosine, then the point id."""

    def key(hit: ScoredChunk) -> tuple[float, float, str]:
        dense = [v for k, v in hit.signals.items() if k.startswith("dense:")]
        return (-round(hit.score, 9), -max(dense, default=0.0), hit.chunk.point_id)

    return sorted(hits, key=key)[:top_k]
