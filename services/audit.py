"""The audit log (issue 8): who did what to which target, append-only.

Writes never fail the action they record: a database error is logged and swallowed, except
where the caller wants it raised (the CLI, which has nothing else to do).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import AuditEntry

log = logging.getLogger(__name__)


def record(
    db: Database,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    strict: bool = False,
) -> None:
    """Append one entry. ``strict`` raises database errors instead of logging them."""
    try:
        with db.session() as s:
            s.add(
                AuditEntry(
                    actor=actor[:128],
                    action=action,
                    target=(target or None) and target[:512],
                    detail=detail or {},
                    ip=ip,
                )
            )
    except Exception:
        if strict:
            raise
        log.exception("could not write the audit entry %s %s %s", actor, action, target)


def entries(
    db: Database,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest entries first, optionally filtered."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        q = q.where(AuditEntry.action == action)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if since:
        q = q.where(AuditEntry.at >= since)
    with db.session() as s:
        rows = s.execute(q).scalars().all()
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": r.detail,
            "ip": r.ip,
        }
        for r in rows
    ]


# The append-only triggers of migration 0004, lifted for the length of one purge transaction.
_PG_TRIGGER = (
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION kb_audit_log_append_only()"
)
_SQLITE_DELETE_TRIGGER = (
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
)


def purge(db: Database, *, days: int, actor: str, dry_run: bool = False) -> dict[str, Any]:
    """Delete audit entries older than ``days`` (issue 20), and record that it was done.

    The log is append-only in the database itself: the one way to shorten it is this
    explicit purge, which lifts the delete trigger, deletes, puts the trigger back and appends
    an ``audit.purge`` entry (who, the cut-off, how many), all in one transaction, so a
    failure leaves the log and its protection as they were.

    :returns: ``{"cutoff", "deleted", "dry_run"}``.
    """
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import delete, func, insert, text

    cutoff = datetime.now(UTC) - timedelta(days=days)
    old = AuditEntry.at < cutoff
    with db.engine.begin() as conn:
        count = int(
            conn.execute(select(func.count()).select_from(AuditEntry).where(old)).scalar_one()
        )
        result = {"cutoff": cutoff.isoformat(), "deleted": count, "dry_run": dry_run}
        if dry_run:
            return result
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(delete(AuditEntry).where(old))
        conn.execute(text(_PG_TRIGGER if postgres else _SQLITE_DELETE_TRIGGER))
        conn.execute(
            insert(AuditEntry).values(
                at=datetime.now(UTC),
                actor=actor[:128],
                action="audit.purge",
                target="audit_log",
                detail={"days": days, "cutoff": cutoff.isoformat(), "deleted": count},
            )
        )
    return result
