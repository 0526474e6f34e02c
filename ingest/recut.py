"""Confirmed answers follow their passage when a document is cut again (issue 22).

``kb ingest --reindex`` after a change of chunking indexes the same text in other chunks. A
confirmed pair (question memory) names its passage by chunk id and content hash; the new cut
gives those ids to other pieces (ids are the document, its content hash and the chunk's
position), and no new chunk has the old content hash, so the pair would quote the wrong piece
of its document, or go stale, and what people confirmed would be lost with an upgrade. Here
each pair moves to the new chunk that holds most of its old passage's text (offsets into the
same document text). A document whose content changed is not a re-cut: its pairs follow an
unchanged passage or go stale as before (:mod:`services.memory`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import MemoryEntry, utcnow
from kb.retrieval.models import Chunk


def successor(was: Chunk, new: Sequence[Chunk]) -> Chunk | None:
    """The chunk of ``new`` (the same document text, cut again) holding most of ``was``'s span;
    ``None`` when none overlaps it."""
    overlap, best = max(
        ((min(c.end, was.end) - max(c.start, was.start), c) for c in new),
        key=lambda pair: pair[0],
        default=(0, None),
    )
    return best if overlap > 0 else None


def follow_recut(db: Database, old: Sequence[Chunk], new: Sequence[Chunk]) -> int:
    """Move the pairs on ``old`` chunks (a document's points before it was indexed again with
    the same content) to their successors in ``new``. :returns: how many moved."""
    by_id = {c.point_id: c for c in old}
    if not by_id or not new:
        return 0
    moved = 0
    with db.session() as s:
        rows = s.scalars(
            select(MemoryEntry).where(
                MemoryEntry.document_id == new[0].document_id, MemoryEntry.kind == "pair"
            )
        ).all()
        for entry in rows:
            was = by_id.get(entry.chunk_id or "")
            if was is None or was.content_hash != entry.text_hash:
                continue  # not the passage it was confirmed on: leave it to services.memory
            now = successor(was, new)
            if now is None or (now.point_id, now.content_hash) == (entry.chunk_id, entry.text_hash):
                continue
            entry.chunk_id, entry.text_hash, entry.version = (
                now.point_id,
                now.content_hash,
                now.version,
            )
            entry.updated_at = utcnow()  # the served memory is rebuilt from the entries
            moved += 1
    return moved
