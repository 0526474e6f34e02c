"""The staff vocabulary (issue 23): sets of equivalent terms applied to every question."""

from __future__ import annotations

from fastapi import APIRouter, Response

from kb.api.deps import AuditDep, DBDep, WriterDep
from kb.api.schemas import RowId, SynonymSetRequest, SynonymSetResponse
from kb.services import synonyms as service

router = APIRouter(prefix="/api", tags=["synonyms"])


@router.get("/synonyms", response_model=list[SynonymSetResponse])
def list_synonyms(identity: WriterDep, db: DBDep) -> list[SynonymSetResponse]:  # noqa: ARG001
    """Content owner: every set of equivalent terms."""
    return [SynonymSetResponse.model_validate(s) for s in service.list_sets(db)]


@router.post("/synonyms", response_model=SynonymSetResponse, status_code=201)
def add_synonyms(
    body: SynonymSetRequest, identity: WriterDep, db: DBDep, audit: AuditDep
) -> SynonymSetResponse:
    """Content owner: add a set of equivalent terms; it applies to the next question."""
    view = service.add_set(db, body.terms, created_by=identity.user_id)
    audit(identity, "synonyms.added", str(view["id"]), terms=view["terms"])
    return SynonymSetResponse.model_validate(view)


@router.delete("/synonyms/{synonym_id}", status_code=204)
def delete_synonyms(synonym_id: RowId, identity: WriterDep, db: DBDep, audit: AuditDep) -> Response:
    """Content owner: remove a set; it stops applying at the next question."""
    view = service.delete_set(db, synonym_id)
    audit(identity, "synonyms.deleted", str(synonym_id), terms=view["terms"])
    return Response(status_code=204)
