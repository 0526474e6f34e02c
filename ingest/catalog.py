"""The document catalog: what the ``documents`` table says each indexed document is.

Reads and the writes that touch no point of the store. Writes that go with points (a new
version, a deletion, a group change) are made by :mod:`ingest.indexing`, under its lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import func, select

from kb.db.engine import Database
from kb.db.models import DocumentRecord
from kb.ingest.sources import SourceFile
from kb.retrieval.sparse import ANALYZER_VERSION


def file_hash(data: bytes) -> str:
    """Content hash of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


def other_sources(db: Database, source: str) -> dict[str, int]:
    """Sources other than ``source`` with documents in the catalog, and how many each."""
    with db.session() as s:
        rows = s.execute(
            select(DocumentRecord.source, func.count())
            .where(DocumentRecord.source != source, DocumentRecord.status != "failed")
            .group_by(DocumentRecord.source)
        ).all()
    return {str(src): int(n) for src, n in rows}


def documents_of(db: Database, source: str) -> list[tuple[str, str]]:
    """``(document_id, source_path)`` of every catalogued document of ``source``."""
    with db.session() as s:
        rows = s.execute(
            select(DocumentRecord.id, DocumentRecord.source_path).where(
                DocumentRecord.source == source
            )
        ).all()
    return [(r[0], r[1]) for r in rows]


def document_states(db: Database, source: str) -> list[tuple[str, str, str]]:
    """``(document_id, hash, status)`` of every catalogued document of ``source``."""
    with db.session() as s:
        recs = s.execute(select(DocumentRecord).where(DocumentRecord.source == source))
        return [(r.id, r.hash, r.status) for r in recs.scalars().all()]


def changed_files(
    db: Database, files: Sequence[SourceFile], source: str, max_bytes: int
) -> list[SourceFile]:
    """The files whose content differs from the catalog (what a run will parse)."""
    if len(files) < 2:
        return []  # nothing to overlap with
    with db.session() as s:
        rows = s.execute(
            select(DocumentRecord.id, DocumentRecord.hash, DocumentRecord.status).where(
                DocumentRecord.source == source
            )
        ).all()
    known = {r[0]: (r[1], r[2]) for r in rows}
    out: list[SourceFile] = []
    for sf in files:
        try:
            if sf.path.stat().st_size > max_bytes:
                continue
            digest = file_hash(sf.path.read_bytes())
        except OSError:
            continue
        if known.get(sf.document_id) != (digest, "indexed"):
            out.append(sf)
    return out


def mark_for_reindex(db: Database, source: str) -> int:
    """Mark every indexed document of ``source`` stale, so that the next sync of it parses
    and indexes each one again. Their points stay searchable until each is replaced, and a
    run killed half-way leaves the rest marked for the next one. :returns: how many."""
    with db.session() as s:
        recs = (
            s.execute(
                select(DocumentRecord).where(
                    DocumentRecord.source == source, DocumentRecord.status == "indexed"
                )
            )
            .scalars()
            .all()
        )
        for rec in recs:
            rec.status = "stale"
            rec.last_error = "re-index requested: parsed and indexed again by the next run"
        return len(recs)


def stale_analyzer(db: Database) -> list[str]:
    """Documents whose points an older term analyzer encoded (``ANALYZER_VERSION``)."""
    with db.session() as s:
        return list(
            s.execute(
                select(DocumentRecord.id).where(
                    DocumentRecord.analyzer != ANALYZER_VERSION,
                    DocumentRecord.status.in_(("indexed", "stale")),
                )
            ).scalars()
        )
