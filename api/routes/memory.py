"""Question memory for support staff (issue 22): confirmed pairs and gaps, and the passage
picker used to link a queued question to an existing passage."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from kb.api.deps import AuditDep, DBDep, KBDep, StaffDep
from kb.api.schemas import MemoryEntryOut, MemoryLearningOut, PassageOut
from kb.retrieval.errors import KBError
from kb.services import memory_admin as service
from kb.services import memory_read

router = APIRouter(prefix="/api/memory", tags=["memory"])


@router.get("", response_model=list[MemoryEntryOut])
def list_entries(
    staff: StaffDep,
    db: DBDep,
    state: Literal["active", "demoted", "stale", "removed", "all"] = "active",
    kind: Literal["pair", "gap"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[MemoryEntryOut]:
    """Confirmed questions you may read (their passage and their sources), newest first."""
    entries = service.list_entries(
        db, staff.access, state=None if state == "all" else state, kind=kind, limit=limit
    )
    return [MemoryEntryOut.model_validate(e) for e in entries]


@router.get("/learning", response_model=MemoryLearningOut)
def learning(_staff: StaffDep, db: DBDep, kb: KBDep) -> MemoryLearningOut:
    """What the confirmed answers have taught: the ranker learned from them, and how it
    ranks confirmed questions it was not fitted on against the search alone."""
    return MemoryLearningOut.model_validate(memory_read.learning(db, kb))


@router.delete("/{entry_id}", response_model=MemoryEntryOut)
def remove_entry(entry_id: int, staff: StaffDep, db: DBDep, audit: AuditDep) -> MemoryEntryOut:
    """Take a confirmed pair or gap out of the memory (kept as ``removed``)."""
    entry = service.remove_entry(db, entry_id, staff.access, user_id=staff.user_id)
    audit(staff, "memory.remove", f"memory_entry:{entry_id}")
    return MemoryEntryOut.model_validate(entry)


@router.get("/passages", response_model=list[PassageOut])
def find_passages(
    staff: StaffDep,
    kb: KBDep,
    q: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
    document_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[PassageOut]:
    """Passages you may read that match ``q`` (or every passage of ``document_id``): the
    picker for "answered by ..."."""
    if not q and not document_id:
        raise KBError("give q (words to search for) or document_id", code="VALIDATION_ERROR")
    if document_id:
        found = [
            p for p in kb.store.document_chunks(document_id) if staff.acl.permits(p.chunk.groups)
        ][:limit]
    else:
        found, _ = kb.search(q or "", acl=staff.acl, top_k=limit)
    return [
        PassageOut(
            document_id=p.chunk.document_id,
            chunk_id=p.chunk.point_id,
            title=p.chunk.title,
            location=p.chunk.location.label(),
            snippet=p.chunk.text[:400],
            score=round(p.score, 6),
        )
        for p in found
    ]
