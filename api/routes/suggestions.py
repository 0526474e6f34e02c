"""Suggested questions for the widget (issue 6): :mod:`services.suggestions`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from kb.api.deps import DBDep, EmployeeDep, KBDep
from kb.api.responses import Suggestion
from kb.services.suggestions import suggestions as suggest

router = APIRouter(prefix="/api", tags=["ask"])


@router.get("/suggestions", response_model=list[Suggestion], response_model_exclude_unset=True)
def suggestions(
    identity: EmployeeDep,
    db: DBDep,
    kb: KBDep,
    lang: Literal["ja", "en"] | None = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
    starters: bool = False,
) -> list[dict[str, Any]]:
    """Questions several people asked, with answers confirmed helpful and not contradicted,
    from documents the caller may read (already masked); with ``starters``, the rest up to
    ``limit`` from the knowledge base's own Q&A entries the caller may read."""
    return suggest(db, kb, identity, lang=lang, limit=limit, starters=starters)
