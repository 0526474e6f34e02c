"""Confirmed answers and gaps for staff (issue 22): the console's list, removal and counts.

An entry is readable when the caller may read its passage and every source of its question
(the passages it was answered from): the confirmed question's words are shown to no one else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from kb.db.engine import Database
from kb.db.models import MemoryEntry as EntryRow
from kb.db.models import utcnow
from kb.retrieval.errors import KBError, NotFoundError
from kb.services.access import Access, source_of


def _readable(access: Access, row: EntryRow) -> bool:
    return access.reads(row.groups) and access.reads_all(source_of(s) for s in row.sources or [])


def list_entries(
    db: Database,
    access: Access,
    *,
    state: str | None = "active",
    kind: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Confirmed pairs and gaps the caller may read (its passage and its question's sources),
    newest first; ``hidden`` counts the others on each page."""
    out: list[dict[str, Any]] = []
    with db.session() as s:
        stmt = select(EntryRow).order_by(EntryRow.updated_at.desc(), EntryRow.id.desc())
        if state is not None:
            stmt = stmt.where(EntryRow.state == state)
        if kind is not None:
            stmt = stmt.where(EntryRow.kind == kind)
        for row in s.execute(stmt.limit(limit * 5)).scalars():
            if _readable(access, row):
                out.append(_view(row))
            if len(out) >= limit:
                break
    return out


def _view(row: EntryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "how": row.how,
        "question": row.question,
        "lang": row.lang,
        "query_id": row.query_id,
        "document_id": row.document_id,
        "chunk_id": row.chunk_id,
        "version": row.version,
        "groups": list(row.groups or []),
        "confirmed_by": row.confirmed_by,
        "staff": row.staff,
        "state": row.state,
        "negatives": row.negatives,
        "note": row.note,
        "citation": row.citation,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def remove_entry(db: Database, entry_id: int, access: Access, *, user_id: str) -> dict[str, Any]:
    """Take an entry out of the memory (kept, as ``removed``, for the record).

    :raises NotFoundError: no such entry, or the caller may not read it.
    """
    with db.session() as s:
        row = s.get(EntryRow, entry_id)
        if row is None or not _readable(access, row):
            raise NotFoundError(f"no memory entry {entry_id}")
        if row.state == "removed":
            raise KBError(f"memory entry {entry_id} is already removed", code="CONFLICT")
        row.state, row.note, row.updated_at = "removed", f"removed by {user_id}", utcnow()
        return _view(row)


def stats(db: Database) -> dict[str, int]:
    """Entries by kind and state (for analytics)."""
    with db.session() as s:
        rows = s.execute(
            select(EntryRow.kind, EntryRow.state, func.count(EntryRow.id)).group_by(
                EntryRow.kind, EntryRow.state
            )
        ).all()
    return {f"{kind}_{state}": int(n) for kind, state, n in rows}
