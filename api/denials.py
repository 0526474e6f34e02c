"""Refused requests in the audit log (issue 8), at a bounded rate (issue 20).

Used by the dependencies that refuse a caller (:mod:`api.deps`) and by the error handler that
turns a service's ``FORBIDDEN`` into a response (:mod:`api.errors`).
"""

from __future__ import annotations

import threading

from fastapi import Request

from kb.api.limits import TokenBucket
from kb.db.engine import Database
from kb.services.audit import record


class DenialLimiter:
    """How many refused requests of one source the audit log records (issue 20): at most
    ``per_minute`` a minute (burst as many); :meth:`admit` counts the others."""

    def __init__(self, per_minute: int) -> None:
        self._bucket = TokenBucket(per_minute, max(1, per_minute))
        self._skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, source: str) -> int | None:
        """``None``: do not record this one; else record it, with how many were skipped."""
        with self._lock:
            if self._bucket.take(source) is not None:
                if len(self._skipped) > 50_000:  # bounded, like the rate-limit buckets
                    self._skipped.clear()
                self._skipped[source] = self._skipped.get(source, 0) + 1
                return None
            return self._skipped.pop(source, 0)


def client_ip(request: Request) -> str | None:
    """The address of the request's peer (after :mod:`api.proxies`), if any."""
    return request.client.host if request.client else None


def record_denial(request: Request, actor: str, status: int, reason: str) -> None:
    """Record a refused request in the audit log (never fails the request), once.

    At most ``audit_denials_per_minute`` entries a minute per source (the client address of
    an anonymous caller, else the user): the log is append-only, so a flood of refused
    requests must not fill it (issue 20). The refusals skipped are counted in the source's
    next entry (``suppressed``).
    """
    state = request.app.state
    db: Database | None = getattr(state, "db", None)
    request.state.denial_recorded = True
    if db is None:
        return
    limiter: DenialLimiter | None = getattr(state, "denial_limiter", None)
    if limiter is None:
        limiter = state.denial_limiter = DenialLimiter(state.settings.audit_denials_per_minute)
    ip = client_ip(request)
    source = f"ip:{ip}" if actor == "anonymous" else f"user:{actor}"
    suppressed = limiter.admit(source)
    if suppressed is None:
        return
    detail: dict[str, object] = {"status": status, "reason": reason[:300]}
    if suppressed:
        detail["suppressed"] = suppressed
    record(
        db,
        actor=actor,
        action="access.denied",
        target=f"{request.method} {request.url.path}",
        detail=detail,
        ip=ip,
    )
