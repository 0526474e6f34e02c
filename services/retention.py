"""Retention: questions older than ``support.retention_days`` go, with everything tied to them
(feedback, queue items), plus old policy hits and queue groups left with no question."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select

from kb.db.engine import Database
from kb.db.models import (
    Conversation,
    Feedback,
    Notification,
    PolicyHit,
    QueryLog,
    QueueGroup,
    QueueItem,
)


def purge_logs(
    db: Database, *, days: int, now: datetime | None = None, dry_run: bool = False
) -> dict[str, int]:
    """Delete what is older than ``days`` days; :returns: rows deleted (or due) per table.

    Conversation turns are query-log rows and go with them; a conversation with no turn left
    goes too, and so do the notification deliveries of deleted questions.

    Answered groups stay (they own a published answer); open and dismissed groups with no
    question left are removed.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    old = select(QueryLog.id).where(QueryLog.created_at < cutoff)
    counts: dict[str, int] = {}
    with db.session() as s:
        counts["feedback"] = s.execute(
            select(func.count()).select_from(Feedback).where(Feedback.query_id.in_(old))
        ).scalar_one()
        counts["queue_items"] = s.execute(
            select(func.count()).select_from(QueueItem).where(QueueItem.query_id.in_(old))
        ).scalar_one()
        counts["queries"] = s.execute(
            select(func.count()).select_from(QueryLog).where(QueryLog.created_at < cutoff)
        ).scalar_one()
        counts["policy_hits"] = s.execute(
            select(func.count()).select_from(PolicyHit).where(PolicyHit.created_at < cutoff)
        ).scalar_one()
        counts["notifications"] = s.execute(
            select(func.count()).select_from(Notification).where(Notification.query_id.in_(old))
        ).scalar_one()
        if dry_run:
            return counts
        # Explicit deletes rather than ON DELETE CASCADE alone: the rule must not depend on
        # the SQLite connection having foreign keys switched on.
        s.execute(delete(Feedback).where(Feedback.query_id.in_(old)))
        s.execute(delete(QueueItem).where(QueueItem.query_id.in_(old)))
        s.execute(delete(Notification).where(Notification.query_id.in_(old)))
        s.execute(delete(QueryLog).where(QueryLog.created_at < cutoff))
        # A conversation goes with its last turn (issue 23).
        gone = select(Conversation.id).where(
            ~select(QueryLog.id).where(QueryLog.conversation_id == Conversation.id).exists(),
            Conversation.updated_at < cutoff,
        )
        conv_ids = list(s.execute(gone).scalars())
        if conv_ids:
            s.execute(delete(Conversation).where(Conversation.id.in_(conv_ids)))
        counts["conversations"] = len(conv_ids)
        s.execute(delete(PolicyHit).where(PolicyHit.created_at < cutoff))
        empty = select(QueueGroup.id).where(
            QueueGroup.state != "answered",
            ~select(QueueItem.id).where(QueueItem.group_id == QueueGroup.id).exists(),
        )
        ids = list(s.execute(empty).scalars())
        if ids:
            s.execute(delete(QueueGroup).where(QueueGroup.id.in_(ids)))
        counts["queue_groups"] = len(ids)
    return counts
