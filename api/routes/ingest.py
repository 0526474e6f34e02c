"""Ingestion runs: start a sync of a server-side folder in the background, follow its report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import AuditDep, DBDep, RunnerDep, WriterDep
from db.models import IngestRun
from ingest.runner import run_json
from retrieval.errors import NotFoundError

router = APIRouter(prefix="/api/ingest", tags=["ingest"])


class IngestRequest(BaseModel):
    """A folder (or one file) on the server to sync, as an absolute path."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)
    reindex: bool = False
    """Parse and index every file again, unchanged ones too (after an upgrade that changes
    parsing or chunking); answers keep working while each document is replaced."""


@router.post("", status_code=202, responses={403: {}, 422: {}})
def start_run(
    body: IngestRequest, identity: WriterDep, runner: RunnerDep, audit: AuditDep
) -> dict[str, object]:
    """Queue a sync of a server-side folder; follow it at ``/api/ingest/runs/{run_id}``."""
    run_id = runner.submit(Path(body.path), created_by=identity.user_id, reindex=body.reindex)
    audit(identity, "ingest.start", body.path, run_id=run_id, reindex=body.reindex)
    return {"run_id": run_id, "status": "queued", "url": f"/api/ingest/runs/{run_id}"}


@router.get("/runs")
def list_runs(
    db: DBDep, _identity: WriterDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, object]]:
    """Recent runs, newest first, with their counts."""
    with db.session() as s:
        runs = (
            s.execute(select(IngestRun).order_by(IngestRun.started_at.desc()).limit(limit))
            .scalars()
            .all()
        )
    return [run_json(r, files=False) for r in runs]


@router.get("/runs/{run_id}")
def get_run(run_id: str, db: DBDep, _identity: WriterDep) -> dict[str, object]:
    """One run: status, counts, durations and every file's outcome with its reason."""
    with db.session() as s:
        run = s.get(IngestRun, run_id)
    if run is None:
        raise NotFoundError(f"no ingestion run {run_id}")
    return run_json(run, files=True)
