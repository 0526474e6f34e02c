"""Feedback on answers and "I need a person" escalations; both feed the unanswered queue."""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import Feedback, QueryLog, utcnow
from kb.retrieval.errors import KBError, NotFoundError
from kb.retrieval.protocols import Embedder, SparseEncoder
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.synonyms import SynonymTable
from kb.services import memory
from kb.services.access import Access, citation_sources, document_groups
from kb.services.queue import Placement, enqueue


def _own_query(db: Database, query_id: str, user_id: str) -> QueryLog:
    with db.session() as s:
        query = s.get(QueryLog, query_id)
    # Someone else's question is reported exactly like one that does not exist.
    if query is None or query.user_id != user_id:
        raise NotFoundError(f"no query {query_id}")
    return query


class Grouping(TypedDict, total=False):
    """The staff vocabulary for queue grouping (:func:`services.queue.enqueue`)."""

    synonyms: SynonymTable
    encoder: SparseEncoder


def give_feedback(
    db: Database,
    embedder: Embedder,
    *,
    query_id: str,
    user_id: str,
    helpful: bool,
    comment: str | None,
    threshold: float,
    grouping: Grouping | None = None,
    kb: KnowledgeBase | None = None,
    citation: int | None = None,
) -> dict[str, Any]:
    """Record (or replace) the asker's verdict; a thumbs-down puts the question in the queue.

    With ``kb``, the verdict teaches the question memory (issue 22): a thumbs-up makes the
    question and the passage that answered it (the citation the asker named, else the first
    cited) a confirmed pair; a thumbs-down withdraws the asker's own pair and demotes the
    entries that chose the passage.

    :param comment: already masked.
    :param citation: ``[n]`` of the source that answered, with a thumbs-up only.
    :raises NotFoundError: no such query of this user.
    :raises KBError: ``citation`` with a thumbs-down, or not one of the answer's
        (code ``VALIDATION_ERROR``); nothing is recorded.
    """
    query = _own_query(db, query_id, user_id)
    if citation is not None:
        if not helpful:
            raise KBError(
                "citation names the source that answered, so it goes with helpful: true only",
                code="VALIDATION_ERROR",
            )
        memory.cited_passage(query, citation)
    with db.session() as s:
        row = s.execute(select(Feedback).where(Feedback.query_id == query_id)).scalar()
        if row is None:
            row = Feedback(query_id=query_id, user_id=user_id, helpful=helpful)
            s.add(row)
        row.helpful, row.comment, row.created_at = helpful, comment, utcnow()
    if kb is not None:
        if helpful:
            memory.confirm_helpful(db, kb, query_id, user_id, citation)
        else:
            memory.on_thumbs_down(db, query_id)
    placement: Placement | None = None
    if not helpful:
        placement = enqueue(
            db, embedder, query_id, "thumbs_down", threshold=threshold, **(grouping or {})
        )
    return {
        "query_id": query_id,
        "helpful": helpful,
        "queued": placement is not None,
        "group_id": placement.group_id if placement else None,
    }


def escalate(
    db: Database,
    embedder: Embedder,
    *,
    query_id: str,
    user_id: str,
    note: str | None,
    threshold: float,
    grouping: Grouping | None = None,
) -> dict[str, Any]:
    """ "This did not help, I need a person": put the question in the support queue.

    :param note: already masked.
    :raises NotFoundError: no such query of this user.
    """
    _own_query(db, query_id, user_id)
    placement = enqueue(
        db, embedder, query_id, "user_escalation", threshold=threshold, note=note,
        **(grouping or {}),
    )  # fmt: skip
    return {"query_id": query_id, "queued": True, "group_id": placement.group_id}


def history(db: Database, access: Access, *, limit: int = 50) -> list[dict[str, Any]]:
    """The caller's own questions, newest first, with their feedback; documents the caller
    may no longer read (a group removed since) are not named."""
    user_id = access.user_id
    with db.session() as s:
        rows = s.execute(
            select(QueryLog, Feedback.helpful)
            .outerjoin(Feedback, Feedback.query_id == QueryLog.id)
            .where(QueryLog.user_id == user_id)
            .order_by(QueryLog.created_at.desc())
            .limit(limit)
        ).all()
    catalog = document_groups(db, (c["document_id"] for q, _h in rows for c in q.citations))
    return [
        {
            "query_id": q.id,
            "question": q.question,
            "status": q.status,
            "confidence": round(q.confidence, 4),
            "lang": q.lang,
            "cited_documents": sorted(
                {
                    c["document_id"]
                    for c in q.citations
                    if access.reads_all(citation_sources([c], catalog))
                }
            ),
            "helpful": helpful,
            "asked_at": q.created_at.isoformat(),
        }
        for q, helpful in rows
    ]
