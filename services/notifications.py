"""Escalation notifications (issue 23): a signed webhook and e-mail, delivered from a background
worker so that no answer waits for them.

Each escalation (by the bot or by the asker) writes its deliveries to ``notifications`` (an
outbox: the CLI's escalations are delivered by the service's worker too). The worker, started
and stopped in the FastAPI lifespan, claims due rows one at a time (a row claimed by one worker
process is not sent by another), sends them, and on failure retries with exponential backoff
(``notify.retry_base_s``, doubled per attempt) until ``notify.max_attempts``; every attempt's
outcome is kept in the row, the delivery log the console shows.

Webhook: ``POST`` of a JSON body ``{"event": "question.escalated", "query_id", "question" (masked),
"group_id", "group", "reason", "lang", "console_url", "at"}`` with header
``X-KB-Signature: sha256=<hex HMAC-SHA256 of the raw body with notify.webhook_secret>``.
E-mail: one message per escalation, or with ``notify.digest_s`` one digest per recipient.
Only masked text leaves: the question as the query log holds it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import select, update

from kb.db.engine import Database
from kb.db.models import Notification, QueryLog, QueueGroup, aware, utcnow
from kb.retrieval.ops_settings import NotifySettings
from kb.retrieval.settings import Settings
from kb.services.access import Access, query_sources

log = logging.getLogger(__name__)

EVENT = "question.escalated"
MAX_BACKOFF_S = 3600.0


def sign(secret: str, body: bytes) -> str:
    """The ``X-KB-Signature`` header value of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def console_link(settings: Settings, group_id: int | None) -> str:
    """Where staff open the escalation's queue group."""
    base = settings.public_base_url.rstrip("/")
    return f"{base}/console#group-{group_id}" if group_id is not None else f"{base}/console"


def _safe_target(url: str) -> str:
    """A URL without its credentials, for the delivery log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def on_escalation(
    db: Database, settings: Settings, query_id: str, group_id: int | None, reason: str
) -> int:
    """Write the deliveries of one escalation; :returns: how many (0 when nothing is set up)."""
    cfg = settings.notify
    if not cfg.webhook_url and not cfg.smtp_url:
        return 0
    with db.session() as s:
        query = s.get(QueryLog, query_id)
        if query is None:
            return 0
        sent = s.execute(select(Notification.payload).where(Notification.query_id == query_id))
        if any((p or {}).get("reason") == reason for p in sent.scalars()):
            return 0  # the same escalation again (a second click): notified once
        group = s.get(QueueGroup, group_id) if group_id is not None else None
        payload: dict[str, Any] = {
            "event": EVENT,
            "query_id": query_id,
            "question": query.question,
            "lang": query.lang,
            "reason": reason,
            "group_id": group_id,
            "group": group.representative if group else None,
            "console_url": console_link(settings, group_id),
            "at": utcnow().isoformat(),
        }
        cited_groups = sorted({g for c in query.citations or () for g in (c.get("groups") or ())})
        now = utcnow()
        rows = []
        if cfg.webhook_url:
            rows.append(("webhook", cfg.webhook_url))
        if cfg.smtp_url:
            routed = [a for g in cited_groups for a in cfg.group_emails.get(g, ())]
            for address in dict.fromkeys(routed or cfg.email_to):
                rows.append(("email", address))
        for channel, target in rows:
            s.add(
                Notification(
                    query_id=query_id,
                    event=EVENT,
                    channel=channel,
                    target=target,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        return len(rows)


class DeliveryError(Exception):
    """One attempt failed (the reason is logged and kept with the delivery)."""


class Notifier:
    """The background worker that delivers the outbox. ``start()`` and ``stop()`` in the
    lifespan; :meth:`wake` makes it look at once (after an escalation in this process)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.cfg: NotifySettings = settings.notify
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """Whether any channel is configured."""
        return bool(self.cfg.webhook_url or self.cfg.smtp_url)

    def start(self) -> None:
        """Start the worker thread (nothing when no channel is configured)."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="kb-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker; undelivered rows stay for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.deliver_due() and not self._stop.is_set():
                    pass
            except Exception:  # the worker must outlive a database hiccup
                log.exception("notification worker error")
            self._wake.wait(self.cfg.poll_s)
            self._wake.clear()

    # -- one pass ---------------------------------------------------------------------------

    def deliver_due(self, now: datetime | None = None) -> int:
        """Send what is due; :returns: deliveries attempted."""
        now = now or utcnow()
        with self.db.session() as s:
            due = list(
                s.execute(
                    select(Notification.id, Notification.channel, Notification.target)
                    .where(Notification.status == "pending", Notification.next_attempt_at <= now)
                    .order_by(Notification.id)
                    .limit(50)
                ).all()
            )
        done = 0
        digest_targets: set[str] = set()
        for row_id, channel, target in due:
            if channel == "email" and self.cfg.digest_s > 0:
                digest_targets.add(target)
                continue
            if self._claim([row_id]):
                self._attempt([row_id])
                done += 1
        for target in digest_targets:
            done += self._digest(target, now)
        return done

    def _digest(self, target: str, now: datetime) -> int:
        with self.db.session() as s:
            rows = list(
                s.execute(
                    select(Notification.id, Notification.created_at)
                    .where(
                        Notification.status == "pending",
                        Notification.channel == "email",
                        Notification.target == target,
                    )
                    .order_by(Notification.id)
                ).all()
            )
        if not rows:
            return 0
        oldest = min(aware(r[1]) for r in rows)
        if (now - oldest).total_seconds() < self.cfg.digest_s:
            return 0
        ids = [r[0] for r in rows]
        if not self._claim(ids):
            return 0
        self._attempt(ids)
        return len(ids)

    def _claim(self, ids: Sequence[int]) -> bool:
        """Mark ``ids`` as being sent by this worker; False when another worker has them."""
        with self.db.session() as s:
            result = s.execute(
                update(Notification)
                .where(Notification.id.in_(list(ids)), Notification.status == "pending")
                .values(status="sending")
            )
            if result.rowcount != len(ids):  # type: ignore[attr-defined]
                s.rollback()
                return False
        return True

    def _attempt(self, ids: Sequence[int]) -> None:
        with self.db.session() as s:
            rows = list(
                s.execute(
                    select(Notification)
                    .where(Notification.id.in_(list(ids)))
                    .order_by(Notification.id)
                ).scalars()
            )
            channel, target = rows[0].channel, rows[0].target
            payloads = [r.payload for r in rows]
        error: str | None = None
        try:
            if channel == "webhook":
                self._post(target, payloads[0])
            else:
                self._mail(target, payloads)
        except Exception as exc:  # every failure is a retry, logged with its reason
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = utcnow()
        with self.db.session() as s:
            for row in s.execute(
                select(Notification).where(Notification.id.in_(list(ids)))
            ).scalars():
                row.attempts += 1
                if error is None:
                    row.status, row.delivered_at, row.last_error = "delivered", now, None
                    continue
                row.last_error = error
                if row.attempts >= self.cfg.max_attempts:
                    row.status = "failed"
                    log.error(
                        "notification %s to %s failed for good: %s", row.id, row.channel, error
                    )
                else:
                    wait = min(self.cfg.retry_base_s * 2 ** (row.attempts - 1), MAX_BACKOFF_S)
                    row.status, row.next_attempt_at = "pending", now + timedelta(seconds=wait)
                    log.warning(
                        "notification %s to %s failed (attempt %s, retry in %.0f s): %s",
                        row.id, row.channel, row.attempts, wait, error,
                    )  # fmt: skip

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        secret = self.cfg.webhook_secret
        assert secret is not None
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "kb-assistant",
            "X-KB-Event": EVENT,
            "X-KB-Signature": sign(secret.get_secret_value(), body),
        }
        resp = httpx.post(url, content=body, headers=headers, timeout=self.cfg.timeout_s)
        if not 200 <= resp.status_code < 300:
            raise DeliveryError(f"HTTP {resp.status_code}")

    def _mail(self, to: str, payloads: Sequence[dict[str, Any]]) -> None:
        assert self.cfg.smtp_url is not None
        msg = EmailMessage()
        msg["From"] = self.cfg.email_from
        msg["To"] = to
        if len(payloads) == 1:
            p = payloads[0]
            msg["Subject"] = f"[KB] Escalated question: {_short(p['question'])}"
            msg.set_content(_email_body(p))
        else:
            msg["Subject"] = f"[KB] {len(payloads)} escalated questions"
            msg.set_content("\n\n---\n\n".join(_email_body(p) for p in payloads))
        url = urlsplit(self.cfg.smtp_url.get_secret_value())
        host, port = url.hostname or "127.0.0.1", url.port
        smtp: smtplib.SMTP
        if url.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, port or 465, timeout=self.cfg.timeout_s)
        else:
            smtp = smtplib.SMTP(host, port or 25, timeout=self.cfg.timeout_s)
        with smtp:
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(msg)


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _email_body(p: dict[str, Any]) -> str:
    return (
        f"A question was escalated to support ({p.get('reason')}).\n\n"
        f"Question: {p['question']}\n"
        f"Queue group: {p.get('group') or '-'}\n"
        f"Open it in the console: {p['console_url']}\n"
        f"Query id: {p['query_id']}\n"
    )


def delivery_log(db: Database, access: Access, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest deliveries whose question ``access`` may read (the question's text is not
    shown here; the queue shows it)."""
    with db.session() as s:
        rows = list(
            s.execute(
                select(Notification).order_by(Notification.id.desc()).limit(limit * 3)
            ).scalars()
        )
        cites: dict[str, list[Any]] = dict(
            s.execute(
                select(QueryLog.id, QueryLog.citations).where(
                    QueryLog.id.in_(sorted({r.query_id for r in rows}))
                )
            ).all()
        )
    sources = query_sources(db, cites.items())
    out = []
    for r in rows:
        if r.query_id in cites and not access.reads_all(sources.get(r.query_id, ())):
            continue
        out.append(
            {
                "id": r.id,
                "query_id": r.query_id,
                "event": r.event,
                "channel": r.channel,
                "target": _safe_target(r.target) if r.channel == "webhook" else r.target,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "group_id": (r.payload or {}).get("group_id"),
                "created_at": r.created_at.isoformat() if r.created_at else None,
                "next_attempt_at": r.next_attempt_at.isoformat() if r.next_attempt_at else None,
                "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            }
        )
    return out[:limit]
