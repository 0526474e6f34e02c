"""Popular questions for the widget's suggestions (issue 6)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import DBDep
from db.models import Feedback, QueryLog

router = APIRouter(prefix="/api", tags=["ask"])

RECENT = 2000
"""How many recent answered questions are counted."""
MIN_USERS = 2
"""A question is suggested only once this many people asked it: no one's one-off question."""


@router.get("/suggestions")
def suggestions(
    db: DBDep,
    lang: Literal["ja", "en"] | None = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> list[dict[str, object]]:
    """Questions many people asked and got a helpful answer to (already masked)."""
    with db.session() as s:
        rows = s.execute(
            select(QueryLog.id, QueryLog.question, QueryLog.user_id, QueryLog.groups, QueryLog.lang)
            .where(QueryLog.status == "answered")
            .order_by(QueryLog.created_at.desc())
            .limit(RECENT)
        ).all()
        unhelpful = set(s.execute(select(Feedback.query_id).where(~Feedback.helpful)).scalars())
    users: defaultdict[str, set[str]] = defaultdict(set)
    shown: dict[str, str] = {}
    for qid, question, user_id, groups, qlang in rows:
        # Only questions answered from public documents (the asker had no groups), so a
        # suggestion never names what a restricted document is about.
        if groups or qid in unhelpful or (lang and qlang != lang) or "[" in question:
            continue
        key = " ".join(question.split()).lower()
        users[key].add(user_id)
        shown.setdefault(key, " ".join(question.split()))
    counts = Counter({k: len(v) for k, v in users.items() if len(v) >= MIN_USERS})
    return [{"question": shown[k], "users": n} for k, n in counts.most_common(limit)]
