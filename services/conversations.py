"""Conversations (issue 23): a user's questions in a row, kept as turns in the query log.

A conversation belongs to the user who started it: another user's id is refused exactly like an
unknown one (``404 NOT_FOUND``), so ids cannot be probed. Turns are query-log rows (masked) and
expire with them (:mod:`services.retention`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from kb.db.engine import Database
from kb.db.models import Conversation, DocumentRecord, QueryLog, utcnow
from kb.retrieval.conversation import MAX_TURNS, Turn
from kb.retrieval.errors import KBError, NotFoundError
from kb.services.access import Access, query_sources

MAX_CONVERSATION_TURNS = 100
"""Questions one conversation may hold; then the asker starts a new one."""


def new_conversation_id() -> str:
    """A fresh conversation id."""
    return str(uuid.uuid4())


def earlier_turns(db: Database, access: Access, conversation_id: str | None) -> list[Turn]:
    """The latest turns of the caller's conversation, oldest first (none for a new one).

    Titles are those of the documents each answer cited that the caller may still read.

    :raises NotFoundError: no such conversation, or it is another user's.
    :raises KBError: ``VALIDATION_ERROR`` when the conversation is full.
    """
    if conversation_id is None:
        return []
    with db.session() as s:
        conv = s.get(Conversation, conversation_id)
        if conv is None or conv.user_id != access.user_id:
            raise NotFoundError(f"no conversation {conversation_id}")
        count = s.execute(
            select(func.count())
            .select_from(QueryLog)
            .where(QueryLog.conversation_id == conversation_id)
        ).scalar_one()
        if count >= MAX_CONVERSATION_TURNS:
            raise KBError(
                f"conversation {conversation_id} holds {count} questions, the most one may: "
                "start a new conversation",
                code="VALIDATION_ERROR",
            )
        rows = list(
            s.execute(
                select(QueryLog)
                .where(QueryLog.conversation_id == conversation_id)
                .order_by(QueryLog.created_at.desc())
                .limit(MAX_TURNS)
            ).scalars()
        )[::-1]
        doc_ids = {str(c.get("document_id")) for q in rows for c in q.citations or ()}
        catalog = {
            d.id: (d.title, d.groups)
            for d in s.execute(
                select(DocumentRecord).where(DocumentRecord.id.in_(sorted(doc_ids)))
            ).scalars()
        }
    turns = []
    for q in rows:
        titles = []
        for c in sorted(q.citations or (), key=lambda c: int(c.get("n") or 0)):
            doc = catalog.get(str(c.get("document_id")))
            if doc and access.reads(doc[1]) and access.reads(c.get("groups")) and doc[0]:
                titles.append(doc[0])
        turns.append(Turn(q.question, q.rewritten or q.question, tuple(dict.fromkeys(titles))))
    return turns


def ensure_conversation(s: Any, conversation_id: str, user_id: str) -> None:
    """Create the conversation row in session ``s`` when it is new; touch it otherwise."""
    conv = s.get(Conversation, conversation_id)
    now = utcnow()
    if conv is None:
        s.add(Conversation(id=conversation_id, user_id=user_id, created_at=now, updated_at=now))
    else:
        conv.updated_at = now


def conversation_turns_for_staff(
    db: Database, access: Access, conversation_id: str, before_query: str
) -> list[dict[str, Any]]:
    """The turns of a conversation before one of its questions, as staff see them in the
    queue: only the turns whose every source ``access`` may read (the others are left out)."""
    with db.session() as s:
        target = s.get(QueryLog, before_query)
        if target is None:
            return []
        rows = list(
            s.execute(
                select(QueryLog)
                .where(
                    QueryLog.conversation_id == conversation_id,
                    QueryLog.created_at < target.created_at,
                )
                .order_by(QueryLog.created_at)
            ).scalars()
        )
    sources = query_sources(db, ((q.id, q.citations) for q in rows))
    return [
        {
            "query_id": q.id,
            "question": q.question,
            "rewritten": q.rewritten,
            "status": q.status,
            "asked_at": q.created_at.isoformat() if q.created_at else None,
        }
        for q in rows
        if access.reads_all(sources.get(q.id, ()))
    ]
