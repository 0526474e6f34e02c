"""Request limits (issue 8): token buckets per user and per client address, body size.

A request is counted against its authenticated user first (issue 20): one with credentials
passes the address bucket here and is held to its user's bucket once they are checked
(:func:`api.deps.get_identity`), and to the address bucket only when they fail; a request
without credentials is held to its client address (the real one: :mod:`api.proxies`). So a
shared office address does not throttle its users, and invented addresses buy nothing.

The buckets live in this process: with several workers each has its own, so the effective
limit is the configured one times the number of workers.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from api.messages import error_body
from retrieval.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_KEYS = 50_000
"""Buckets kept before full (idle) ones are dropped: bounded memory under many addresses."""


class TokenBucket:
    """``per_minute`` requests a minute on average, ``burst`` at once, per key. 0: unlimited."""

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


def address_bucket(settings: Settings) -> TokenBucket:
    """The per-address bucket of one app (shared by the middleware and the identity check)."""
    return TokenBucket(settings.limits.address_per_minute, settings.limits.address_burst)


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def _is_upload(scope: Scope) -> bool:
    return scope["method"] in ("POST", "PUT") and scope["path"].startswith("/api/documents")


class LimitsMiddleware:
    """Per-address rate limit on ``/api`` and the body size limit, before any route runs."""

    def __init__(self, app: ASGIApp, settings: Settings, bucket: TokenBucket) -> None:
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
        wait = None if credentials else self.bucket.take(address)
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
    body = json.dumps(error_body(code, detail), ensure_ascii=False).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
