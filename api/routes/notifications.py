"""The delivery log of escalation notifications (issue 23)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kb.api.deps import DBDep, StaffDep
from kb.api.schemas import NotificationEntry
from kb.services.notifications import delivery_log

router = APIRouter(prefix="/api", tags=["notifications"])


@router.get("/notifications", response_model=list[NotificationEntry])
def notifications(
    identity: StaffDep, db: DBDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[NotificationEntry]:
    """Support, admin: the newest webhook and e-mail deliveries, with attempts and errors."""
    return [
        NotificationEntry.model_validate(n) for n in delivery_log(db, identity.access, limit=limit)
    ]
