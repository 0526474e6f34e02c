"""The unanswered queue: questions the bot escalated, thumbs-down answers and user escalations,
grouped by need.

Grouping is by embedding similarity with the knowledge base's first embedder (multilingual
e5, query mode), so the same need asked in other words or another language lands in one group:
a new item joins the most similar **open** group when the cosine to that group's centroid is at
least ``support.group_similarity``; otherwise it starts a group. The centroid is the running
mean of the members' unit vectors, stored as JSON with the group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, select

from kb.db.engine import Database
from kb.db.models import DocumentRecord, Feedback, QueryLog, QueueGroup, QueueItem, utcnow
from kb.retrieval.errors import KBError, NotFoundError
from kb.retrieval.protocols import Embedder, SparseEncoder
from kb.retrieval.synonyms import SynonymTable
from kb.services.access import Access, Source, group_query_sources
from kb.services.conversations import conversation_turns_for_staff

Reason = Literal["escalated", "thumbs_down", "user_escalation"]
GroupState = Literal["open", "answered", "dismissed"]
MAX_VARIANTS = 50


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an item went: its group, whether it started it, and the cosine that decided."""

    group_id: int
    new_group: bool
    similarity: float


def unit(vector: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``vector`` scaled to length 1 (zero stays zero)."""
    arr = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm else arr


def best_group(
    vector: Sequence[float], centroids: Sequence[tuple[int, Sequence[float]]]
) -> tuple[int | None, float]:
    """The group whose centroid is most similar to ``vector`` and that cosine (``None``, -1.0
    when there is no group)."""
    best: tuple[int | None, float] = (None, -1.0)
    v = unit(vector)
    for group_id, centroid in centroids:
        if len(centroid) != len(v):  # another embedder's vector: not comparable
            continue
        sim = float(np.dot(v, unit(centroid)))
        if sim > best[1]:
            best = (group_id, sim)
    return best


def enqueue(
    db: Database,
    embedder: Embedder,
    query_id: str,
    reason: Reason,
    *,
    threshold: float,
    note: str | None = None,
    synonyms: SynonymTable | None = None,
    encoder: SparseEncoder | None = None,
) -> Placement:
    """Put a logged query in the queue (or add ``reason`` to its item when it is there).

    A follow-up is grouped by what was searched for it (the question resolved with its
    conversation), and with the staff vocabulary's first term of every set it names, so that
    "MFP" and "Aster MF-3400" questions group together (issue 23).

    :param note: already masked.
    :raises NotFoundError: no such query.
    """
    with db.session() as s:
        query = s.get(QueryLog, query_id)
        if query is None:
            raise NotFoundError(f"no query {query_id}")
        item = s.execute(select(QueueItem).where(QueueItem.query_id == query_id)).scalar()
        if item is not None:
            if reason not in item.reasons:
                item.reasons = [*item.reasons, reason]
            if note:
                item.note = note
            group = s.get(QueueGroup, item.group_id)
            if group is not None:
                group.last_seen = utcnow()
            return Placement(item.group_id, False, item.similarity)
        question, lang = query.question, query.lang
        text = query.rewritten or query.question
    if synonyms is not None and encoder is not None:
        text = synonyms.canonical(text, encoder)
    vector = unit(embedder.embed_query(text))
    with db.session() as s:
        open_groups = s.execute(
            select(QueueGroup.id, QueueGroup.centroid).where(QueueGroup.state == "open")
        ).all()
        group_id, sim = best_group(vector.tolist(), [(g[0], g[1]) for g in open_groups])
        now = utcnow()
        group = s.get(QueueGroup, group_id) if group_id is not None and sim >= threshold else None
        if group is None:
            group = QueueGroup(
                state="open",
                representative=question,
                lang=lang,
                centroid=vector.tolist(),
                members=1,
                first_seen=now,
                last_seen=now,
                updated_at=now,
            )
            s.add(group)
            s.flush()
            sim, new = 1.0, True
        else:
            n = group.members or 1
            group.centroid = ((np.asarray(group.centroid) * n + vector) / (n + 1)).tolist()
            group.members = n + 1
            group.last_seen = now
            new = False
        s.add(
            QueueItem(
                group_id=group.id,
                query_id=query_id,
                reasons=[reason],
                note=note,
                similarity=round(sim, 4),
                created_at=now,
            )
        )
        return Placement(group.id, new, sim)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _group_view(
    s: Any,
    group: QueueGroup,
    access: Access,
    sources: dict[str, list[Source]],
    db: Database | None = None,
) -> dict[str, Any] | None:
    """The group as ``access`` may see it: the questions it may read, a count of the others
    (``hidden``), and no text drawn from them; ``None`` when it may read none of them."""
    rows = s.execute(
        select(QueueItem, QueryLog, Feedback.helpful)
        .join(QueryLog, QueryLog.id == QueueItem.query_id)
        .outerjoin(Feedback, Feedback.query_id == QueueItem.query_id)
        .where(QueueItem.group_id == group.id)
        .order_by(QueueItem.created_at)
    ).all()
    shown = [r for r in rows if access.reads_all(sources.get(r[1].id, ()))]
    hidden = len(rows) - len(shown)
    if rows and not shown:
        return None
    reasons: dict[str, int] = {}
    for item, _q, _h in shown:
        for r in item.reasons:
            reasons[r] = reasons.get(r, 0) + 1
    # The representative is a question's words (or staff's rewording of them): with questions
    # hidden from the caller, the first question they may read stands for the group instead.
    representative = group.representative if not hidden else shown[0][1].question
    answer = group.answer
    if answer is not None and (hidden or not _answer_readable(s, group, access)):
        answer = None
    out: dict[str, Any] = {
        "id": group.id,
        "state": group.state,
        "assignee": group.assignee,
        "representative": representative,
        "lang": group.lang,
        "count": len(shown),
        "hidden": hidden,
        "users": len({q.user_id for _i, q, _h in shown}),
        "languages": sorted({q.lang for _i, q, _h in shown}),
        "reasons": reasons,
        "first_seen": _iso(group.first_seen),
        "last_seen": _iso(group.last_seen),
        "answer_document_id": group.answer_document_id if answer is not None else None,
        "answered_by": group.answered_by,
        "answered_at": _iso(group.answered_at),
        "answer": answer,
        "resolution": group.resolution,
        "linked_document_id": group.linked_document_id,
        "linked_chunk_id": group.linked_chunk_id,
        "variants": [
            {
                "query_id": q.id,
                "question": q.question,
                "lang": q.lang,
                "user_id": q.user_id,
                "department": q.department,
                "status": q.status,
                "confidence": round(q.confidence, 4),
                "reasons": list(item.reasons),
                "note": item.note,
                "similarity": item.similarity,
                "asked_at": _iso(q.created_at),
                "conversation_id": q.conversation_id,
                "rewritten": q.rewritten,
                "rewrite_mode": q.rewrite_mode,
                "memory": q.memory or [],
                # A queued follow-up shows the turns before it (those the viewer may read).
                "earlier_turns": (
                    conversation_turns_for_staff(db, access, q.conversation_id, q.id)
                    if q.conversation_id and db is not None
                    else []
                ),
            }
            for item, q, _h in shown[-MAX_VARIANTS:]
        ],
    }
    return out


def _answer_readable(s: Any, group: QueueGroup, access: Access) -> bool:
    if not group.answer_document_id:
        return True
    rec = s.get(DocumentRecord, group.answer_document_id)
    return rec is None or access.reads(rec.groups)


def list_groups(
    db: Database, access: Access, *, state: GroupState | None = "open", limit: int = 100
) -> list[dict[str, Any]]:
    """Groups, largest and most recent first, each with the variants ``access`` may read;
    groups it may read nothing of are left out."""
    with db.session() as s:
        counts = (
            select(QueueItem.group_id, func.count(QueueItem.id).label("n"))
            .group_by(QueueItem.group_id)
            .subquery()
        )
        stmt = select(QueueGroup).outerjoin(counts, counts.c.group_id == QueueGroup.id)
        if state is not None:
            stmt = stmt.where(QueueGroup.state == state)
        stmt = stmt.order_by(
            func.coalesce(counts.c.n, 0).desc(), QueueGroup.last_seen.desc(), QueueGroup.id
        )
        out: list[dict[str, Any]] = []
        # Read in pages until ``limit`` visible groups are found: hidden ones do not count.
        offset, page = 0, max(limit, 50)
        while len(out) < limit:
            groups = s.execute(stmt.offset(offset).limit(page)).scalars().all()
            if not groups:
                break
            offset += page
            sources = group_query_sources(db, [g.id for g in groups])
            for g in groups:
                view = _group_view(s, g, access, sources.get(g.id, {}), db)
                if view is not None:
                    out.append(view)
        return out[:limit]


def get_group(db: Database, group_id: int, access: Access) -> dict[str, Any]:
    """One group with the variants ``access`` may read.

    :raises NotFoundError: no such group, or the caller may read none of its questions.
    """
    with db.session() as s:
        group = s.get(QueueGroup, group_id)
        view = None
        if group is not None:
            sources = group_query_sources(db, [group_id]).get(group_id, {})
            view = _group_view(s, group, access, sources, db)
        if view is None:
            raise NotFoundError(f"no queue group {group_id}")
        return view


def check_group_write(db: Database, group_id: int, access: Access) -> list[list[Source]]:
    """Allow changing a group (state, assignee, representative, its answer): the caller must
    read every question in it. :returns: the sources of its questions.

    :raises NotFoundError: no such group, or the caller may read none of its questions.
    :raises KBError: ``FORBIDDEN`` when some of its questions are hidden from the caller.
    """
    view = get_group(db, group_id, access)
    if view["hidden"]:
        raise KBError(
            f"queue group {group_id} holds {view['hidden']} question(s) you may not read: "
            "someone with access to their sources must handle it",
            code="FORBIDDEN",
        )
    return list(group_query_sources(db, [group_id]).get(group_id, {}).values())


def update_group(
    db: Database,
    group_id: int,
    access: Access,
    *,
    state: GroupState | None = None,
    assignee: str | None = None,
    clear_assignee: bool = False,
    representative: str | None = None,
) -> dict[str, Any]:
    """Change a group's state, assignee or representative question (``representative`` must be
    masked by the caller).

    :raises NotFoundError: no such group, or the caller may read none of its questions.
    :raises KBError: ``FORBIDDEN`` when some of its questions are hidden from the caller;
        ``VALIDATION_ERROR`` for ``answered`` without a published answer.
    """
    check_group_write(db, group_id, access)
    sources = group_query_sources(db, [group_id]).get(group_id, {})
    with db.session() as s:
        group = s.get(QueueGroup, group_id)
        if group is None:
            raise NotFoundError(f"no queue group {group_id}")
        if state is not None:
            if state == "answered" and not group.answer_document_id:
                raise KBError(
                    "a group becomes answered by publishing an answer:"
                    f" POST /api/queue/{group_id}/answer",
                    code="VALIDATION_ERROR",
                )
            group.state = state
        if clear_assignee:
            group.assignee = None
        elif assignee is not None:
            group.assignee = assignee
        if representative is not None:
            group.representative = representative
        group.updated_at = utcnow()
        s.flush()
        view = _group_view(s, group, access, sources, db)
        assert view is not None
        return view
