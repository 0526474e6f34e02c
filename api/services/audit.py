"""The audit log (issue 8): who did what to which target, append-only.

Writes never fail the action they record: a database error is logged and swallowed, except
where the caller wants it raised (the CLI, which has nothing else to do).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from db.engine import Database
from db.models import AuditEntry

log = logging.getLogger("kb.audit")

ACTIONS = (
    "access.denied",
    "ingest.start",
    "ingest.run",
    "document.upload",
    "document.replace",
    "document.delete",
    "document.groups",
    "answer.publish",
    "answer.edit",
    "answer.withdraw",
    "analytics.export",
    "token.create",
    "token.revoke",
    "token.widget",
    "user.add",
    "user.roles",
    "user.groups",
    "user.disable",
)
"""Every action the log records."""


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
