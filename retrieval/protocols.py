"""The swappable backends, one small protocol each. Implementations stay short; the spec is here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from kb.retrieval.models import (
    DEFAULT_FUSION,
    AccessFilter,
    DenseQuery,
    EmbeddedChunk,
    Fusion,
    ScoredChunk,
    SparseQuery,
    SparseVector,
)


@runtime_checkable
class Embedder(Protocol):
    """A dense text embedding model.

    Query and document embedding are separate because retrieval-trained models (e5, bge) embed
    them differently. Vectors are L2-normalised so cosine equals the dot product.
    """

    name: str
    """Short stable name; also the name of the Qdrant vector the embedder fills."""
    dim: int

    def warm_up(self) -> None:
        """Load the model. Constructors only store configuration; the first call may be slow."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed passages for indexing.

        :param texts: passages, any language the model supports.
        :returns: one normalised vector of length :attr:`dim` per text, in order.
        """
        ...

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query.

        :returns: one normalised vector of length :attr:`dim`.
        """
        ...


class SparseEncoder(Protocol):
    """Turns text into BM25 term-frequency vectors; the store applies IDF."""

    def encode_document(self, text: str) -> SparseVector:
        """Saturated term frequencies of a passage (BM25's TF part, length-normalised)."""
        ...

    def encode_query(self, text: str) -> SparseVector:
        """Unit weights for each distinct query term."""
        ...

    def terms(self, text: str) -> list[str]:
        """The normalised terms of ``text`` (lemmas for Japanese, stems for English)."""
        ...


class VectorStore(Protocol):
    """A Qdrant collection holding one point per chunk.

    Every point carries a ``groups`` payload (``__public__`` for public documents). Access control
    is part of every query's filter, never applied to results afterwards.
    """

    def ensure_collection(self, dense: dict[str, int]) -> None:
        """Create the collection if missing.

        :param dense: dense vector name to dimension.
        :raises StoreError: if it exists with other vectors (the index must be rebuilt).
        """
        ...

    def drop_collection(self) -> None:
        """Delete the collection and every point in it (``kb ingest --recreate``); works on a
        collection built with other vectors, or a damaged embedded folder."""
        ...

    def upsert(self, chunks: Sequence[EmbeddedChunk]) -> int:
        """Insert or replace points by their deterministic ids. :returns: points written."""
        ...

    def search(
        self,
        *,
        dense: Sequence[DenseQuery],
        sparse: SparseVector | None,
        top_k: int,
        acl: AccessFilter,
        prefetch_k: int = 50,
        document_ids: Sequence[str] | None = None,
        fusion: Fusion = DEFAULT_FUSION,
        translated: SparseQuery | None = None,
    ) -> list[ScoredChunk]:
        """Hybrid search: each prefetch's hits fused by ``fusion`` (score-aware min-max
        fusion, or weighted reciprocal rank fusion as Qdrant computes it); every passage carries
        both fusions' scores (signals ``rrf`` and ``minmax``).

        :param dense: query vectors, one prefetch each.
        :param sparse: BM25 query vector, one more prefetch (skipped when ``None`` or empty).
        :param top_k: passages to return after fusion.
        :param acl: the caller's groups; keyword-only with no default on purpose.
        :param prefetch_k: candidates each prefetch contributes to fusion.
        :param document_ids: restrict to these documents (``None`` means all).
        :param fusion: the method, the weights of the dense and the sparse prefetches (and
            RRF's ``k``).
        :param translated: a BM25 query over the chunks of its language only, one more prefetch
            at its own weight (skipped when ``None`` or empty).
        :returns: passages best first; ``signals`` holds each dense vector's cosine to the query.
        """
        ...

    def access_groups(self) -> set[str]:
        """Every access group some point is restricted to (the public marker aside), row-level
        groups of Q&A sheets included: what a check for restricted content must search."""
        ...

    def present_terms(self, indices: Sequence[int], *, acl: AccessFilter) -> set[int]:
        """Which of these sparse term ids at least one point the caller may read holds.

        One single-term sparse query per id, limit 1, under the caller's access filter: a term
        found only in documents the caller may not read counts as absent, so nothing about a
        restricted document reaches the caller through what is computed from the answer.
        """
        ...

    def delete_document(
        self, document_id: str, *, keep_hash: str | None = None, keep_chunks: int | None = None
    ) -> None:
        """Delete a document's points; with ``keep_hash``, all but that version's, and with
        ``keep_chunks`` too, that version's from chunk index ``keep_chunks`` on (the same
        content indexed again in fewer chunks: the rest are the old cut's)."""
        ...

    def set_groups(self, document_id: str, groups: Sequence[str]) -> None:
        """Change a document's access groups in place, without re-embedding."""
        ...

    def count(self, document_id: str | None = None) -> int:
        """Points in the collection, or of one document."""
        ...

    def language_centroid(self, vector: str, lang: str, *, limit: int) -> tuple[list[float], int]:
        """The mean of the named dense ``vector`` over up to ``limit`` chunks in ``lang`` (every
        access group: a statistic of the corpus, like BM25's IDF), and how many chunks it
        averaged; ``([], 0)`` when there are none."""
        ...

    def document_chunks(self, document_id: str) -> list[ScoredChunk]:
        """All points of one document in chunk order (score 0)."""
        ...

    def optimize(self) -> bool:
        """Build search indexes after a bulk write (blocking; not while serving queries).

        :returns: whether anything was rebuilt (a server optimises by itself: always False).
        """
        ...

    def close(self) -> None:
        """Flush and release the store (the embedded engine holds a directory lock)."""
        ...
