"""Crash recovery: finish the job of ingestion runs whose process was killed mid-way.

A run whose process is gone (same host, pid not alive) but whose status still says
``running`` or ``queued`` is marked ``interrupted``. Each document of its source is then
checked against the store: points of a version the catalog does not hold (a version half
written when the process died) are deleted; a document whose catalog version has no points
left (killed after the old version was deleted, before the catalog was updated) is marked
``stale`` so that the next run re-indexes it. Deletions go through :mod:`ingest.indexing`.
"""

from __future__ import annotations

from sqlalchemy import select

from kb.db.models import DocumentRecord, IngestRun, utcnow
from kb.ingest.catalog import document_states
from kb.ingest.indexing import Indexer
from kb.ingest.runs import owner_alive


def recover(indexer: Indexer, source: str | None = None) -> list[str]:
    """Finish the job of runs killed mid-way (of ``source``, or of every source).

    :returns: the ids of the documents that needed repair.
    """
    db = indexer.db
    with db.session() as s:
        q = select(IngestRun).where(IngestRun.status.in_(("running", "queued")))
        if source is not None:
            q = q.where(IngestRun.source == source)
        dead = [r for r in s.execute(q).scalars().all() if not owner_alive(r.report)]
        for run in dead:
            run.status = "interrupted"
            run.finished_at = utcnow()
        sources = sorted({r.source for r in dead})
    repaired: list[str] = []
    for src in sources:
        for doc_id, doc_hash, status in document_states(db, src):
            if repair(indexer, doc_id, doc_hash, status):
                repaired.append(doc_id)
    return repaired


def repair(indexer: Indexer, doc_id: str, doc_hash: str, status: str) -> bool:
    """Bring one document's points in line with its catalog entry after a killed run."""
    with indexer.lock:
        chunks = indexer.kb.store.document_chunks(doc_id)
        hashes = {c.chunk.doc_hash for c in chunks}
        if status == "pending" or not doc_hash:
            # Never completed: whatever was written is a half-written first version.
            if chunks:
                indexer.delete_points(doc_id)
            return bool(chunks)
        if hashes == {doc_hash}:
            return False
        if doc_hash in hashes:
            indexer.delete_points(doc_id, keep_hash=doc_hash)
            return True
        with indexer.db.session() as s:
            rec = s.get(DocumentRecord, doc_id)
            if rec is None:
                return False
            rec.status = "stale"
            rec.last_error = "an ingestion run was interrupted: re-indexed by the next run"
            # The next version must rank above whatever the store holds, so that searchers
            # keep seeing what is there until the re-indexed version replaces it.
            rec.version = max([rec.version, *(c.chunk.version for c in chunks)])
        return True
