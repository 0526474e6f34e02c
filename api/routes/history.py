"""History: employees see their own questions, and only theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kb.api.deps import DBDep, EmployeeDep
from kb.api.schemas import HistoryItem
from kb.services.feedback import history as own_history

router = APIRouter(prefix="/api/history", tags=["history"])


@router.get("", response_model=list[HistoryItem])
def history(
    identity: EmployeeDep, db: DBDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[HistoryItem]:
    """Your own questions, newest first, with their outcome and your feedback."""
    return [HistoryItem.model_validate(h) for h in own_history(db, identity.access, limit=limit)]
