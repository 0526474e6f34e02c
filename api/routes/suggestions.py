"""Popular questions for the widget's suggestions (issue 6)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import DBDep, EmployeeDep, KBDep
from api.responses import Suggestion
from db.models import Feedback, QueryLog
from retrieval.models import AccessFilter
from retrieval.service import KnowledgeBase
from services.access import PUBLIC, query_sources

router = APIRouter(prefix="/api", tags=["ask"])

RECENT = 2000
"""How many recent answered questions are counted."""
MIN_USERS = 2
"""A question is suggested only once this many people asked it: no one's one-off question."""


@router.get("/suggestions", response_model=list[Suggestion], response_model_exclude_unset=True)
def suggestions(
    _identity: EmployeeDep,
    db: DBDep,
    kb: KBDep,
    lang: Literal["ja", "en"] | None = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> list[dict[str, object]]:
    """Questions many people asked and got a helpful answer to (already masked)."""
    with db.session() as s:
        rows = s.execute(
            select(
                QueryLog.id,
                QueryLog.question,
                QueryLog.user_id,
                QueryLog.groups,
                QueryLog.lang,
                QueryLog.citations,
            )
            .where(QueryLog.status == "answered")
            .order_by(QueryLog.created_at.desc())
            .limit(RECENT)
        ).all()
        unhelpful = set(s.execute(select(Feedback.query_id).where(~Feedback.helpful)).scalars())
    users: defaultdict[str, set[str]] = defaultdict(set)
    shown: dict[str, str] = {}
    sources = query_sources(db, ((r[0], r[5]) for r in rows))
    for qid, question, user_id, groups, qlang, _cites in rows:
        # Only questions answered from public documents (the asker had no groups, and every
        # cited passage is public now), so a suggestion never names what a restricted
        # document is about.
        if groups or qid in unhelpful or (lang and qlang != lang) or "[" in question:
            continue
        if not PUBLIC.reads_all(sources[qid]):
            continue
        key = " ".join(question.split()).lower()
        users[key].add(user_id)
        shown.setdefault(key, " ".join(question.split()))
    counts = Counter({k: len(v) for k, v in users.items() if len(v) >= MIN_USERS})
    out: list[dict[str, object]] = []
    restricted: tuple[str, ...] | None = None
    for key, n in counts.most_common():
        if len(out) >= limit:
            break
        if restricted is None:
            # From the index, not the catalog: a Q&A sheet restricts single rows.
            restricted = tuple(sorted(kb.store.access_groups()))
        # Someone without access may have typed (pasted) a restricted passage: a suggestion is
        # shown to everyone, so it must not repeat one (issue 8, leak suite).
        if restricted and _quotes_restricted(kb, shown[key], restricted):
            continue
        out.append({"question": shown[key], "users": n})
    return out


def _grams(text: str) -> set[str]:
    flat = " ".join(text.lower().split())
    return {flat[i : i + 3] for i in range(max(0, len(flat) - 2))}


def _quotes_restricted(kb: KnowledgeBase, question: str, groups: tuple[str, ...]) -> bool:
    """Whether ``question`` mostly repeats a restricted passage (character trigrams)."""
    passages, _ = kb.search(question, acl=AccessFilter(groups=groups), top_k=5)
    wanted = _grams(question)
    if not wanted:
        return False
    for p in passages:
        if p.chunk.groups and len(wanted & _grams(p.chunk.text)) >= 0.6 * len(wanted):
            return True
    return False
