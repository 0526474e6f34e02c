"""Ingestion runs: start a sync of a server-side folder in the background, follow its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from kb.api.deps import AuditDep, DBDep, RunnerDep, WriterDep
from kb.api.responses import IngestRunOut, RunQueued
from kb.db.models import DocumentRecord, IngestRun
from kb.ingest.runner import run_json
from kb.ingest.sources import walk_source
from kb.retrieval.errors import KBError, NotFoundError
from kb.services.access import Access, document_groups

router = APIRouter(prefix="/api/ingest", tags=["ingest"])


class IngestRequest(BaseModel):
    """A folder (or one file) on the server to sync, as an absolute path."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)
    reindex: bool = False
    """Parse and index every file again, unchanged ones too (after an upgrade that changes
    parsing or chunking); answers keep working while each document is replaced."""


@router.post(
    "",
    status_code=202,
    response_model=RunQueued,
    responses={403: {}, 422: {}},
    response_model_exclude_unset=True,
)
def start_run(
    body: IngestRequest, identity: WriterDep, runner: RunnerDep, db: DBDep, audit: AuditDep
) -> dict[str, object]:
    """Queue a sync of a server-side folder; follow it at ``/api/ingest/runs/{run_id}``.

    A sync writes every document of the folder (adds, replaces, deletes, regroups): the caller
    must be a member of every group those documents have, now and in the folder's metadata."""
    anywhere = identity.via == "service"  # `kb ingest` handing its run over
    _check_sync(identity.access, db, runner.check_path(Path(body.path), anywhere=anywhere))
    run_id = runner.submit(
        Path(body.path), created_by=identity.user_id, reindex=body.reindex, anywhere=anywhere
    )
    audit(identity, "ingest.start", body.path, run_id=run_id, reindex=body.reindex)
    return {"run_id": run_id, "status": "queued", "url": f"/api/ingest/runs/{run_id}"}


@router.get("/runs", response_model=list[IngestRunOut], response_model_exclude_unset=True)
def list_runs(
    db: DBDep, identity: WriterDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, object]]:
    """Recent runs, newest first, with their counts."""
    with db.session() as s:
        runs = (
            s.execute(select(IngestRun).order_by(IngestRun.started_at.desc()).limit(limit))
            .scalars()
            .all()
        )
    return [_visible_run(run_json(r, files=False), db, identity.access) for r in runs]


@router.get("/runs/{run_id}", response_model=IngestRunOut, response_model_exclude_unset=True)
def get_run(run_id: str, db: DBDep, identity: WriterDep) -> dict[str, object]:
    """One run: status, counts, durations and every file's outcome with its reason."""
    with db.session() as s:
        run = s.get(IngestRun, run_id)
    if run is None:
        raise NotFoundError(f"no ingestion run {run_id}")
    return _visible_run(run_json(run, files=True), db, identity.access)


def _check_sync(access: Access, db: DBDep, root: Path) -> None:
    """Refuse a sync that would write a document outside the caller's groups (issue 19)."""
    if access.admin:
        return
    with db.session() as s:
        current = s.execute(
            select(DocumentRecord.groups).where(DocumentRecord.source == str(root))
        ).scalars()
        groups = {g for gs in current for g in gs or ()}
    try:
        groups |= {g for sf in walk_source(root) for g in sf.groups}
    except KBError:
        pass  # a malformed metadata file: the run reports it
    missing = sorted(g for g in groups if not access.member_of_all([g]))
    if missing:
        raise KBError(
            f"{root} holds documents restricted to {', '.join(missing)}: syncing it needs "
            "membership of every group its documents have",
            code="FORBIDDEN",
        )


def _visible_run(data: dict[str, object], db: DBDep, access: Access) -> dict[str, object]:
    """A run's report without the files (names, errors, flagged excerpts) of documents the
    caller may not read; ``hidden_files`` counts them."""
    files = data.get("files")
    if not isinstance(files, list) or access.admin:
        return data
    catalog = document_groups(db, (str(f.get("document_id")) for f in files))
    shown = [f for f in files if access.reads(catalog.get(str(f.get("document_id")), ()))]
    return {**data, "files": shown, "hidden_files": len(files) - len(shown)}
