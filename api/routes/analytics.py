"""Analytics for support and admins: the summary and the masked CSV export of the log."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from kb.api.deps import AuditDep, DBDep, GuidelinesDep, StaffDep
from kb.api.responses import AnalyticsSummary
from kb.services import analytics as service

router = APIRouter(prefix="/api/analytics", tags=["analytics"])

FromQuery = Annotated[date | None, Query(alias="from", description="First day (UTC), inclusive.")]
ToQuery = Annotated[date | None, Query(alias="to", description="Last day (UTC), inclusive.")]


@router.get("/summary", response_model=AnalyticsSummary, response_model_exclude_unset=True)
def summary(
    staff: StaffDep, db: DBDep, start: FromQuery = None, end: ToQuery = None
) -> dict[str, Any]:
    """Questions, deflection, escalations, helpful share; per day, department, language; top
    questions and unanswered groups; most and never cited documents; most active users."""
    return service.summary(db, *service.window(start, end), staff.access)


@router.get("/export.csv", response_class=StreamingResponse)
def export_csv(
    staff: StaffDep,
    db: DBDep,
    guidelines: GuidelinesDep,
    audit: AuditDep,
    start: FromQuery = None,
    end: ToQuery = None,
) -> StreamingResponse:
    """The query log of the period as CSV, masked."""
    lo, hi = service.window(start, end)
    audit(staff, "analytics.export", "query_log", start=lo.isoformat(), end=hi.isoformat())
    name = f"kb-queries-{lo.date().isoformat()}-{hi.date().isoformat()}.csv"
    return StreamingResponse(
        service.export_csv(db, guidelines, lo, hi, staff.access),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
