"""One version per document in every result, whatever the store holds at that instant.

Ingestion replaces a document by writing the new version's points first and deleting the old
version's afterwards (one delete-by-filter). Between the two, and after a process killed in
between, a document has points of two versions in the store. Searchers must see exactly one.

The rule: per document, keep only the passages of the **lowest** version present. The old
version is complete until the moment it is deleted, while the new one may still be half
written (upserts go in batches; a run may be killed mid-way): showing the lowest version means
readers see the old version until the delete, then the new one, never both and never neither.
A half-written version is never shown, and the next run completes or removes it (issue 5).
"""

from __future__ import annotations

from collections.abc import Sequence

from kb.retrieval.models import ScoredChunk

OVERFETCH = 2
"""Search for ``top_k * OVERFETCH`` passages so that dropping another version's passages still
leaves ``top_k``: the two versions of a document mostly hold the same text and rank together."""


def current_versions(passages: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """Drop the passages of any document version newer than the oldest one present.

    :param passages: search hits in rank order (or one document's chunks in chunk order).
    :returns: the same passages in the same order, less those of superseded-to-be versions.
    """
    lowest: dict[str, int] = {}
    for p in passages:
        v = p.chunk.version
        if lowest.get(p.chunk.document_id, v) >= v:
            lowest[p.chunk.document_id] = v
    return [p for p in passages if p.chunk.version == lowest[p.chunk.document_id]]


def overfetch(top_k: int) -> int:
    """Passages to ask the store for so that ``top_k`` survive :func:`current_versions`."""
    return top_k * OVERFETCH
