"""Request limits (issue 8): token buckets per user and per client address, body size.

A request is counted against its authenticated user first (issue 20): one with credentials
passes the address bucket here and is held to its user's bucket once they are checked
(:func:`api.deps.get_identity`), and to the address bucket only when they fail; a request
without credentials is held to its client address (the real one: :mod:`api.proxies`). So a
shared office address does not throttle its users, and invented addresses buy nothing.

Without ``KB_REDIS_URL`` the buckets live in this process: with several workers (or replicas)
each has its own, so the effective limit is the configured one times their number. With
``KB_REDIS_URL`` every process and machine shares each bucket in Redis (:class:`RedisBucket`,
issue 24); while Redis does not answer, each process falls back to its own bucket.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from kb.api.messages import error_body
from kb.retrieval.settings import Settings
from kb.retrieval.telemetry import record_error

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_KEYS = 50_000
"""Buckets kept before full (idle) ones are dropped: bounded memory under many addresses."""


class TokenBucket:
    """``per_minute`` requests a minute on average, ``burst`` at once, per key. 0: unlimited."""

    remote = False

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Spend one token of ``key``: ``None`` if allowed, else seconds until the next one."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._state[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._state[key] = (tokens - 1.0, now)
            if len(self._state) > MAX_KEYS:
                self._prune(now)
            return None

    def _prune(self, now: float) -> None:
        for key, (tokens, last) in list(self._state.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._state[key]


class Bucket(Protocol):
    """A rate limit per key: :meth:`take` spends one request."""

    remote: bool
    """``True`` when :meth:`take` does network I/O (run it off the event loop)."""

    def take(self, key: str) -> float | None:
        """Spend one request of ``key``: ``None`` if allowed, else seconds until allowed."""
        ...


# GCRA, the token bucket as one timestamp per key (the "theoretical arrival time"), atomic in
# Redis and timed by Redis' clock, so that every process and machine agrees. A bucket of
# ``burst`` refilled at one request every ``interval``: a request is allowed when the new
# arrival time is at most ``burst * interval`` ahead of now.
_GCRA = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000000 + tonumber(now_t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local over = new_tat - now - capacity
if over > 0 then return math.ceil(over) end
local ttl = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl)
return 0
"""


class RedisBucket:
    """:class:`TokenBucket` semantics, shared through Redis (``KB_REDIS_URL``).

    When Redis fails, the request is counted by a bucket of this process instead (limits hold
    per process, as without Redis) and a warning is logged at most once a minute.
    """

    remote = True

    def __init__(self, client: Any, name: str, per_minute: int, burst: int) -> None:
        self.name = name
        self.interval_us = 60_000_000 / per_minute if per_minute > 0 else 0.0
        self.capacity_us = self.interval_us * burst
        self._client = client
        self._script = client.register_script(_GCRA) if per_minute > 0 else None
        self._local = TokenBucket(per_minute, burst)
        self._warned = 0.0

    def take(self, key: str) -> float | None:
        """See :meth:`Bucket.take`."""
        if self._script is None:
            return None
        try:
            over = int(
                self._script(keys=[f"{self.name}:{key}"], args=[self.interval_us, self.capacity_us])
            )
        except Exception as exc:  # any client or server error: count here instead
            now = time.monotonic()
            if now - self._warned > 60:
                self._warned = now
                log.warning("rate limits: Redis unavailable (%s), counting per process", exc)
            record_error("RATE_LIMIT_STORE_UNAVAILABLE")
            return self._local.take(key)
        return over / 1_000_000 if over > 0 else None


def _redis(settings: Settings) -> Any | None:
    if settings.redis_url is None:
        return None
    import redis

    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=0.5, socket_connect_timeout=0.5
    )


def address_bucket(settings: Settings) -> Bucket:
    """The per-address bucket of one app (shared by the middleware and the identity check)."""
    limits = settings.limits
    return _bucket(settings, "address", limits.address_per_minute, limits.address_burst)


def user_bucket(settings: Settings) -> Bucket:
    """The per-user bucket of one app."""
    limits = settings.limits
    return _bucket(settings, "user", limits.user_per_minute, limits.user_burst)


def _bucket(settings: Settings, kind: str, per_minute: int, burst: int) -> Bucket:
    """Shared through Redis when ``KB_REDIS_URL`` is set, else this process's own."""
    client = _redis(settings)
    if client is not None:
        return RedisBucket(client, f"{settings.redis_prefix}:rate:{kind}", per_minute, burst)
    return TokenBucket(per_minute, burst)


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def _is_upload(scope: Scope) -> bool:
    return scope["method"] in ("POST", "PUT") and scope["path"].startswith("/api/documents")


class LimitsMiddleware:
    """Per-address rate limit on ``/api`` and the body size limit, before any route runs."""

    def __init__(self, app: ASGIApp, settings: Settings, bucket: Bucket) -> None:
        self.app = app
        self.limits = settings.limits
        self.dev_headers = settings.auth.dev_headers
        self.bucket = bucket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        headers = dict(scope.get("headers") or [])
        credentials = b"authorization" in headers or (self.dev_headers and b"x-user-id" in headers)
        wait = None
        if not credentials:
            take = self.bucket.take
            wait = await run_in_threadpool(take, address) if self.bucket.remote else take(address)
        if not credentials:  # counted here: the identity check does not count it again
            scope.setdefault("state", {})["address_counted"] = True
        if wait is not None:
            await _error(
                send,
                429,
                "RATE_LIMITED",
                f"too many requests from {address}: retry in {retry_after(wait)} s",
                {"retry-after": retry_after(wait)},
            )
            return
        if _is_upload(scope):  # the upload path has its own limit (max_file_bytes)
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > limit:
            await _too_large(send, limit)
            return
        # Read the (small) body here, counting, so a chunked body cannot exceed the limit.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await _too_large(send, limit)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    await _error(
        send,
        413,
        "PAYLOAD_TOO_LARGE",
        f"request body over {limit} bytes (KB_LIMITS__MAX_BODY_BYTES)",
        {},
    )


async def _error(send: Send, status: int, code: str, detail: str, headers: dict[str, str]) -> None:
    record_error(code)
    body = json.dumps(error_body(code, detail), ensure_ascii=False).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
