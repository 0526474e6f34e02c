"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from kb.api.errors import error_response
from kb.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"description": "not ready"}})
def readyz(request: Request) -> object:
    """The store and the database answer, and documents are indexed."""
    state = request.app.state
    if getattr(state, "kb", None) is None:
        return error_response("NOT_READY", "the knowledge base is still loading")
    try:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any driver error means not ready
        return error_response(
            "DATABASE_UNAVAILABLE", f"database unavailable: {exc.__class__.__name__}"
        )
    points = state.kb.store.count()
    return Health(status="ok", detail={"points": points})
